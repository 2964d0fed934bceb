"""Hostile image folders: disguised formats, special files, symlinks out, bombs, hangs, cancel, transparency.

Every fixture is generated in tmp_path; anything that could hang runs under a pytest-timeout marker.
"""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aestudio.core.datasets import DatasetError, ImageSet, load_dataset, parse_background
from aestudio.core.datasets import folder as folder_mod

pytestmark = pytest.mark.timeout(20)


# -- helpers -------------------------------------------------------------------------------


def save(path: Path, array: np.ndarray, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **params)
    return path


def gray(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def reasons(dataset: ImageSet) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in dataset.skipped}


def png_header_only(path: Path, width: int, height: int, bit_depth: int = 16) -> Path:
    """A PNG that claims ``width`` x ``height`` 16-bit gray pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> list:
    """Any attempt to start a program is recorded (and refused)."""
    started: list = []

    def refuse(*args, **kwargs):
        started.append(args[0] if args else kwargs)
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)
    monkeypatch.setattr(os, "execv", refuse)
    monkeypatch.setattr(os, "execve", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    return started


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path passed to os.open (and os.scandir) while loading."""
    paths: list[str] = []
    real_open, real_scandir = os.open, os.scandir

    def spy_open(path, *args, **kwargs):
        paths.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    def spy_scandir(path="."):
        paths.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "scandir", spy_scandir)
    return paths


@pytest.fixture
def release():
    """An event that stalled fake decoders wait on; set when the test ends so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


# -- disguised formats -----------------------------------------------------------------------


def test_disguised_eps_is_skipped_and_no_program_runs(tmp_path: Path, no_processes: list) -> None:
    save(tmp_path / "good.png", gray(9))
    Image.new("L", (8, 8), 200).save(tmp_path / "x.png", format="EPS")  # real PostScript named .png
    assert (tmp_path / "x.png").read_bytes().startswith(b"%!PS")

    ds = load_dataset(str(tmp_path))
    assert ds.n == 1 and (ds.images == 9).all()
    assert reasons(ds) == {"x.png": "PostScript file, not decoded (only PNG, JPEG, BMP, GIF, TIFF, WEBP images are read)"}
    assert no_processes == []


def test_allow_list_refuses_eps_even_without_the_magic_check(
    tmp_path: Path, no_processes: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow itself is restricted to raster formats: the EPS plugin never gets the file."""
    monkeypatch.setattr(folder_mod, "_MAGIC", ())
    save(tmp_path / "good.png", gray(9))
    Image.new("L", (8, 8), 200).save(tmp_path / "x.jpg", format="EPS")
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {"x.jpg": "not a readable image (unknown format or corrupt header)"}
    assert no_processes == []


# -- special files -----------------------------------------------------------------------------


def test_fifo_and_socket_are_skipped_and_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str]
) -> None:
    root = tmp_path / "flat"
    save(root / "good.png", gray(5))
    os.mkfifo(root / "a.png")  # opening this for reading would block forever
    monkeypatch.chdir(root)  # AF_UNIX paths are limited to ~100 bytes: bind a relative name
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("s.png")
    try:
        ds = load_dataset(str(root))
    finally:
        server.close()
    assert ds.n == 1 and ds.files == [str(root / "good.png")]
    assert reasons(ds) == {
        "a.png": "not a regular file (named pipe (FIFO)); not opened",
        "s.png": "not a regular file (socket); not opened",
    }
    assert str(root / "a.png") not in opened and str(root / "s.png") not in opened
    assert str(root / "good.png") in opened


def test_fifo_in_a_class_folder_and_only_special_files(tmp_path: Path) -> None:
    save(tmp_path / "cats" / "1.png", gray(1))
    os.mkfifo(tmp_path / "cats" / "2.png")
    os.mkfifo(tmp_path / "dogs.png")
    ds = load_dataset(str(tmp_path))
    assert ds.class_names == ["cats"] and ds.n == 1
    assert reasons(ds) == {
        "2.png": "not a regular file (named pipe (FIFO)); not opened",
        "dogs.png": "not a regular file (named pipe (FIFO)); not opened",
    }

    only = tmp_path / "only"
    only.mkdir()
    os.mkfifo(only / "a.png")
    with pytest.raises(DatasetError) as info:
        load_dataset(str(only))
    assert str(info.value) == f"No readable images in {only}: 1 file skipped (not a regular file: 1)."


def test_fifo_swapped_in_after_the_scan_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The type is checked again on the opened descriptor (O_NONBLOCK: opening a FIFO never blocks)."""
    save(tmp_path / "good.png", gray(5))
    save(tmp_path / "late.png", gray(6))
    real_scan = folder_mod._scan

    def scan_then_swap(*args):
        found = real_scan(*args)
        os.remove(tmp_path / "late.png")
        os.mkfifo(tmp_path / "late.png")
        return found

    monkeypatch.setattr(folder_mod, "_scan", scan_then_swap)
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {"late.png": "not a regular file (named pipe (FIFO)); not opened"}


def test_file_swapped_for_a_symlink_after_the_scan_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str]
) -> None:
    outside = save(tmp_path / "secret.png", gray(200))
    root = tmp_path / "root"
    save(root / "good.png", gray(5))
    save(root / "late.png", gray(6))
    real_scan = folder_mod._scan

    def scan_then_swap(*args):
        found = real_scan(*args)
        os.remove(root / "late.png")
        os.symlink(outside, root / "late.png")
        return found

    monkeypatch.setattr(folder_mod, "_scan", scan_then_swap)
    ds = load_dataset(str(root))
    assert ds.n == 1 and (ds.images == 5).all()
    assert reasons(ds) == {"late.png": "file not readable (Too many levels of symbolic links)"}  # O_NOFOLLOW


# -- symlinks ------------------------------------------------------------------------------------


def test_symlinks_out_of_the_folder_are_not_followed(tmp_path: Path, opened: list[str]) -> None:
    outside = tmp_path / "outside"
    save(outside / "secret.png", gray(200))
    root = tmp_path / "root"
    save(root / "good.png", gray(10))
    os.symlink(root / "good.png", root / "inside.png")  # inside the folder: fine
    os.symlink(outside / "secret.png", root / "out.png")  # a file outside
    os.symlink(outside, root / "zz")  # a folder outside
    os.symlink("/", root / "disk")  # the whole disk
    os.symlink(root / "missing.png", root / "broken.png")

    ds = load_dataset(str(root))
    assert ds.n == 2 and (ds.images == 10).all()
    assert ds.labels is None  # links to outside folders do not become classes
    assert reasons(ds) == {
        "out.png": f"symlink pointing outside the folder (to {outside / 'secret.png'}); not followed",
        "zz": f"symlink pointing outside the folder (to {outside}); not followed",
        "disk": "symlink pointing outside the folder (to /); not followed",
        "broken.png": "broken symlink",
    }
    resolved = str(root.resolve())
    assert opened and all(os.path.realpath(p).startswith(resolved) for p in opened), opened


def test_symlinked_class_folders_inside_and_loops(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "root"
    save(root / "a" / "1.png", gray(1))
    save(root / "a" / "2.png", gray(2))
    os.symlink(root / "a", root / "b")  # a class reached through an inside symlink: followed
    (root / "c").mkdir()
    os.symlink(root, root / "c" / "loop")  # a loop back to the root: walked once
    os.symlink(root / "c", root / "c" / "self")
    os.symlink("/usr", root / "d")  # outside: not a class, not walked
    ds = load_dataset(str(root))
    assert ds.class_names == ["a", "b"] and ds.n == 4
    assert reasons(ds) == {"d": "symlink pointing outside the folder (to /usr); not followed"}
    assert not any(p.startswith("/usr") for p in opened)


# -- bombs and memory ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_16bit_images_are_refused_from_the_header(tmp_path: Path) -> None:
    save(tmp_path / "good.png", gray(3))
    png_header_only(tmp_path / "big16.png", 13_000, 13_000)  # 169 M pixels: above our limit
    png_header_only(tmp_path / "bomb.png", 20_000, 20_000)  # 400 M pixels: Pillow's own bomb check
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {
        "big16.png": "image too large (13,000×13,000 pixels; the limit is 40,000,000)",
        "bomb.png": "image too large (Pillow refused it as a possible decompression bomb; "
                    "the limit is 40,000,000 pixels)",
    }


def test_pixel_limit_applies_to_real_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folder_mod, "MAX_IMAGE_PIXELS", 10_000)
    save(tmp_path / "small.png", gray(4, size=100))  # exactly at the limit
    save(tmp_path / "wide16.png", np.zeros((50, 201), dtype=np.uint16))
    ds = load_dataset(str(tmp_path))
    assert ds.n == 1
    assert reasons(ds) == {"wide16.png": "image too large (201×50 pixels; the limit is 10,000)"}


def test_16bit_images_convert_without_float64_copies(tmp_path: Path) -> None:
    values = (np.arange(2000 * 2000, dtype=np.uint32) % 65536).astype(np.uint16).reshape(2000, 2000)
    save(tmp_path / "ramp.png", values, compress_level=1)
    save(tmp_path / "mid.png", np.full((8, 8), 32896, dtype=np.uint16))  # 32896 / 257 = 128
    save(tmp_path / "top.tif", np.full((8, 8), 65535, dtype=np.uint16))
    load_dataset(str(tmp_path), image_size=8)  # warm up Pillow's plugins
    tracemalloc.start()
    try:
        ds = load_dataset(str(tmp_path), image_size=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The 2000x2000 image is 8 MB of uint16; float64 conversion alone would need 32 MB.
    assert peak < 24 * 2**20, peak
    assert ds.n == 3 and (ds.images[0] == 128).all() and (ds.images[2] == 255).all()


def test_concurrent_decoding_stays_within_the_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(80):
        save(tmp_path / f"{i}.png", gray(i))
    monkeypatch.setattr(folder_mod, "THREAD_THRESHOLD_S", 0.0)
    monkeypatch.setattr(folder_mod.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(folder_mod, "DECODE_BUDGET_BYTES", 1)  # every image exceeds it: one at a time
    lock, state = threading.Lock(), {"now": 0, "max": 0, "threads": set()}
    real_convert = folder_mod._convert

    def tracked(*args):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["threads"].add(threading.get_ident())
        try:
            return real_convert(*args)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(folder_mod, "_convert", tracked)
    ds = load_dataset(str(tmp_path))
    assert ds.n == 80 and [int(a[0, 0, 0]) for a in ds.images] == list(range(80))
    assert state["max"] == 1


# -- time limits and cancel ------------------------------------------------------------------------


def stall(monkeypatch: pytest.MonkeyPatch, release: threading.Event, word: str, entered=None) -> None:
    """Files whose name contains ``word`` hang while decoding until ``release`` is set."""
    real_decode = folder_mod._decode

    def decode(path, *args):
        if word in os.path.basename(path):
            if entered is not None:
                entered.set()
            release.wait(60)
        return real_decode(path, *args)

    monkeypatch.setattr(folder_mod, "_decode", decode)


def test_a_file_that_hangs_is_skipped_after_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    for name in ("a.png", "slow.png", "z.png"):
        save(tmp_path / name, gray(7))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 0.3)
    stall(monkeypatch, release, "slow")
    ds = load_dataset(str(tmp_path))
    assert ds.n == 2 and [Path(f).name for f in ds.files] == ["a.png", "z.png"]
    assert reasons(ds) == {"slow.png": "timed out (reading and decoding took longer than 0.3 s)"}


def test_a_folder_that_cannot_finish_stops_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    for i in range(5):
        save(tmp_path / f"slow{i}.png", gray(i))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 0.2)
    stall(monkeypatch, release, "slow")
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    assert str(info.value) == (
        "Loading stopped: 3 files took longer than 0.2 s each to read "
        "(is the folder on a drive that stopped responding?)."
    )


class Cancelled(Exception):
    pass


def test_cancel_takes_effect_while_a_file_is_still_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    save(tmp_path / "a.png", gray(1))
    save(tmp_path / "big.png", gray(2))
    save(tmp_path / "c.png", gray(3))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 1000.0)
    entered = threading.Event()
    stall(monkeypatch, release, "big", entered)
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if entered.is_set():  # the user pressed cancel while big.png decodes
            raise Cancelled

    with pytest.raises(Cancelled):
        load_dataset(str(tmp_path), progress=progress)  # without heartbeats this would hang (timeout marker)
    assert calls[0] == (0, 3) and all(total == 3 for _, total in calls)


def test_ctrl_c_interrupts_a_load_while_a_file_is_still_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    import _thread

    save(tmp_path / "big.png", gray(2))
    monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 1000.0)
    entered = threading.Event()
    stall(monkeypatch, release, "big", entered)
    threading.Thread(target=lambda: entered.wait(10) and _thread.interrupt_main(), daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        load_dataset(str(tmp_path))


def test_a_listing_that_hangs_can_be_cancelled_and_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    save(tmp_path / "a.png", gray(1))
    monkeypatch.setattr(folder_mod, "_scan", lambda *args: release.wait(60))
    beats: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        beats.append((done, total))
        raise Cancelled

    with pytest.raises(Cancelled):
        load_dataset(str(tmp_path), progress=progress)
    assert beats == [(0, 0)]

    monkeypatch.setattr(folder_mod, "SCAN_TIMEOUT_S", 0.3)
    with pytest.raises(DatasetError, match=r"^Listing the folder .* took longer than 0\.3 s, so loading was stopped"):
        load_dataset(str(tmp_path))


# -- transparency ------------------------------------------------------------------------------------


def glyph(colour: tuple[int, int, int], size: int = 8, opaque_rows: int = 2) -> np.ndarray:
    """RGBA: the top ``opaque_rows`` rows opaque ``colour``, the rest fully transparent."""
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[:opaque_rows, :, 3] = 255
    return rgba


@pytest.fixture
def dark_icons(tmp_path: Path) -> Path:
    root = tmp_path / "dark"
    for i in range(3):
        save(root / f"{i}.png", glyph((20, 20, 20)))  # dark strokes, 75% transparent
    return root


def test_auto_background_contrasts_with_dark_content(dark_icons: Path) -> None:
    ds = load_dataset(str(dark_icons), image_size=8)
    assert ds.background == "white" and ds.shape == (1, 8, 8)
    assert ds.transparent_fraction == pytest.approx(0.75)
    assert (ds.images[:, 0, :2] == 20).all() and (ds.images[:, 0, 2:] == 255).all()
    assert ds.summary() == "dark: 3 images 1x8x8, unlabelled; 75% of pixels were transparent; composited onto white"
    assert ds.transparency_note() == "75% of pixels were transparent; composited onto white"


def test_auto_background_is_black_for_bright_content_and_decided_per_folder(tmp_path: Path) -> None:
    save(tmp_path / "a.png", glyph((240, 240, 240), opaque_rows=4))  # bright, the majority of opaque pixels
    save(tmp_path / "b.png", glyph((10, 10, 10), opaque_rows=2))  # dark, but the folder decides
    ds = load_dataset(str(tmp_path), image_size=8)
    assert ds.background == "black"
    assert (ds.images[1, 0, 2:] == 0).all() and (ds.images[0, 0, 4:] == 0).all()
    assert ds.transparent_fraction == pytest.approx((4 + 6) / 16)
    assert ds.summary().endswith("; 62% of pixels were transparent; composited onto black")


@pytest.mark.parametrize(
    ("background", "expected", "name"),
    [("white", (255, 255, 255), "white"), ("black", (0, 0, 0), "black"), ("#FF8800", (255, 136, 0), "#ff8800"),
     (" Orange ", (255, 165, 0), "#ffa500")],
)
def test_explicit_backgrounds(dark_icons: Path, background: str, expected: tuple, name: str) -> None:
    ds = load_dataset(str(dark_icons), image_size=8, background=background)
    assert ds.background == name
    transparent = ds.images[:, :, 2:]
    if expected[0] == expected[1] == expected[2]:
        assert ds.channels == 1 and (transparent == expected[0]).all()
    else:
        assert ds.channels == 3
        assert (transparent.transpose(0, 2, 3, 1).reshape(-1, 3) == expected).all()
    assert ds.summary().endswith(f"75% of pixels were transparent; composited onto {name}")


def test_partial_alpha_is_composited_from_premultiplied_colour(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[...] = (255, 0, 0, 128)
    save(tmp_path / "half.png", rgba)
    ds = load_dataset(str(tmp_path), image_size=8, background="white", channels=3)
    assert (ds.images[0].reshape(3, -1).T == [255, 127, 127]).all()
    assert ds.transparent_fraction == 0.0 and ds.transparency_note() is None


def test_fully_transparent_folder_loads_as_plain_background(tmp_path: Path) -> None:
    for i in range(4):
        save(tmp_path / "ghosts" / f"{i}.png", np.zeros((8, 8, 4), dtype=np.uint8))
    ds = load_dataset(str(tmp_path / "ghosts"), image_size=8)
    assert ds.n == 4 and ds.shape == (1, 8, 8) and (ds.images == 0).all()
    assert ds.transparent_fraction == 1.0 and ds.background == "black"
    assert ds.summary() == "ghosts: 4 images 1x8x8, unlabelled; every pixel was transparent, so the images are plain black"
    white = load_dataset(str(tmp_path / "ghosts"), image_size=8, background="white")
    assert (white.images == 255).all() and white.transparency_note().endswith("plain white")


def test_transparency_fields_survive_subset_filter_and_replace(tmp_path: Path) -> None:
    from dataclasses import replace

    for cls in ("a", "b"):
        save(tmp_path / cls / "1.png", glyph((0, 0, 0)))
    ds = load_dataset(str(tmp_path), image_size=8)
    for derived in (ds.subset([0]), ds.filter_classes("b"), replace(ds, images=ds.images.copy())):
        assert derived.transparent_fraction == ds.transparent_fraction == pytest.approx(0.75)
        assert derived.background == "white"


def test_sets_without_alpha_have_no_transparency(tmp_path: Path) -> None:
    save(tmp_path / "one.png", gray(3))
    ds = load_dataset(str(tmp_path), background="white")
    assert ds.transparent_fraction is None and ds.background is None
    assert ds.summary() == f"{tmp_path.name}: 1 image 1x28x28, unlabelled"  # "1 image", not "1 images"
    assert load_dataset("digits", background="#123456").transparent_fraction is None


@pytest.mark.parametrize("value", ["mauve-ish", "", "auto-ish", None, 3])
def test_unknown_background_is_one_clear_sentence(tmp_path: Path, value) -> None:
    save(tmp_path / "one.png", gray(3))
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path), background=value)
    assert str(info.value) == f"Unknown background {value!r}: use auto, white, black, a colour name such as gray, or #rrggbb."
    with pytest.raises(DatasetError):
        load_dataset("digits", background=value)  # checked for named sets too


def test_parse_background() -> None:
    assert parse_background("AUTO") == "auto"
    assert parse_background("white") == (255, 255, 255)
    assert parse_background("#102030") == (16, 32, 48)
    assert parse_background("gray") == (128, 128, 128)


# -- the studio ----------------------------------------------------------------------------------------


@pytest.fixture
def panel(qtbot):
    from aestudio.ui.data_panel import DataPanel
    from aestudio.ui.state import StudioState

    widget = DataPanel(StudioState())
    qtbot.addWidget(widget)
    return widget


def test_data_panel_background_choice_and_transparency_warning(
    qtbot, panel, dark_icons: Path, monkeypatch: pytest.MonkeyPatch, by_name
) -> None:
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QColorDialog, QComboBox

    combo = by_name(panel, "Background", QComboBox)
    assert combo is panel.background_combo and panel.folder_background() == "auto"
    panel.size_spin.setValue(8)
    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        panel.load(str(dark_icons))
    data = blocker.args[0]
    assert data.background == "white" and panel.state.dataset is data
    warning = by_name(panel, "Transparency warning")
    assert not warning.isHidden()
    assert warning.text() == "⚠ 75% of pixels were transparent; composited onto white."
    assert "<b>3</b> images" in panel.info.text()

    # "Custom colour…" asks for a colour and reloads the folder with it
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *args, **kwargs: QColor("#ff8800")))
    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        combo.activated.emit(combo.findData("custom"))
    assert blocker.args[0].background == "#ff8800" and panel.folder_background() == "#ff8800"
    assert combo.currentText() == "#ff8800"
    assert warning.text().endswith("composited onto #ff8800.")

    with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
        combo.activated.emit(combo.findData("black"))
    assert blocker.args[0].background == "black" and (blocker.args[0].images[:, :, 2:] == 0).all()

    # a cancelled colour dialog keeps the current choice and does not reload
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *args, **kwargs: QColor()))
    combo.activated.emit(combo.findData("custom"))
    assert panel.folder_background() == "black" and combo.currentData() == "black" and not panel.loading


def test_data_panel_says_one_image_and_hides_the_warning(qtbot, panel, tmp_path: Path) -> None:
    save(tmp_path / "solo" / "one.png", gray(3))
    with qtbot.waitSignal(panel.loaded, timeout=10000):
        panel.load(str(tmp_path / "solo"))
    assert "<b>1</b> image ·" in panel.info.text()
    assert panel.transparency.isHidden()


def test_hung_loads_neither_starve_the_pool_nor_delay_closing(
    qtbot, panel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    from PySide6.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    threads = pool.maxThreadCount()
    pool.setMaxThreadCount(2)  # as on a 2-core machine
    try:
        monkeypatch.setattr(folder_mod, "FILE_TIMEOUT_S", 1000.0)
        entered = threading.Event()
        stall(monkeypatch, release, "hang", entered)
        for name in ("one", "two"):
            save(tmp_path / name / "hang.png", gray(1))
            os.mkfifo(tmp_path / name / "a.png")
        panel.load(str(tmp_path / "one"))
        qtbot.waitUntil(entered.is_set, timeout=10000)
        entered.clear()
        panel.load(str(tmp_path / "two"))  # the first load is cancelled
        qtbot.waitUntil(entered.is_set, timeout=10000)
        with qtbot.waitSignal(panel.loaded, timeout=10000) as blocker:
            panel.load("digits")  # the second is cancelled, and digits still gets a pool thread
        assert blocker.args[0].name == "digits"

        entered.clear()
        panel.load(str(tmp_path / "one"))
        qtbot.waitUntil(entered.is_set, timeout=10000)
        panel.cancel()  # what closing the studio (or Ctrl-C) does
        assert pool.waitForDone(2000)  # every load returned although its decoder still hangs
    finally:
        pool.setMaxThreadCount(threads)


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_cli_background_is_checked_stored_and_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from aestudio.cli import main

    icons = tmp_path / "icons"
    for i in range(12):
        save(icons / f"{i}.png", glyph((20, 20, 20), size=8, opaque_rows=1 + i % 3))
    run = tmp_path / "run"
    assert main(["train", "--data", str(icons), "--background", "mauvish", "--out", str(run)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "aestudio: error: Unknown background 'mauvish': use auto, white, black, a colour name such as gray, or #rrggbb."
    ]
    assert not run.exists()

    used: list[str] = []
    real_load_folder = folder_mod.load_folder

    def spy(*args, **kwargs):
        used.append(kwargs["background"])
        return real_load_folder(*args, **kwargs)

    import aestudio.core.datasets as datasets_mod

    monkeypatch.setattr(datasets_mod, "load_folder", spy)
    argv = ["train", "--data", str(icons), "--image-size", "8", "--background", "#FF0000", "--out", str(run),
            "--arch", "dense", "--latent", "2", "--hidden", "8", "--epochs", "1", "--batch-size", "8",
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "icons: 12 images 3x8x8, unlabelled; 75% of pixels were transparent; composited onto #ff0000" in err
    assert json.loads((run / "config.json").read_text())["background"] == "#FF0000"
    assert main(["evaluate", str(run), "--device", "cpu", "--json", "--labels-per-class", "0"]) == 0
    assert used == ["#FF0000", "#FF0000"]  # evaluation reloaded the folder the way training did
    assert main(["evaluate", str(run), "--data", str(icons), "--background", "nope"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("aestudio: error: Unknown background 'nope': ")
