"""Tests for aestudio.core.datasets: offline, deterministic, fixtures generated in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aestudio.core.datasets import (
    DatasetError,
    ImageSet,
    bundled_names,
    load_dataset,
    make_shapes,
    read_idx,
    split_indices,
)
from aestudio.core.datasets import folder as folder_mod
from aestudio.core.datasets import mnist as mnist_mod

# -- helpers -------------------------------------------------------------------------------


def save(path: Path, array: np.ndarray, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **params)
    return path


def gray(value: int, size: int = 28) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def rgb(r: int, g: int, b: int, size: int = 28) -> np.ndarray:
    return np.broadcast_to(np.array([r, g, b], dtype=np.uint8), (size, size, 3)).copy()


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = codes[dtype.str.lstrip("|")]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(dtype).tobytes()


def reasons(dataset: ImageSet) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in dataset.skipped}


# -- folders -------------------------------------------------------------------------------


@pytest.fixture
def mixed_flat(tmp_path: Path) -> Path:
    """A flat folder with one readable image per format/mode plus broken and foreign files."""
    root = tmp_path / "mixed"
    save(root / "a_gray.png", gray(100))
    save(root / "b_color.jpg", rgb(200, 30, 30), quality=95)
    save(root / "c_color.bmp", rgb(0, 0, 255))
    save(root / "d_palette.gif", rgb(0, 255, 0))  # saved as a palette image
    save(root / "e_16bit.tif", np.full((28, 28), 65535, dtype=np.uint16))
    save(root / "f_lossless.webp", rgb(10, 20, 30), lossless=True)
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[:, 14:, 3] = 255  # left half transparent, right half opaque white
    save(root / "g_alpha.png", rgba)
    save(root / "H_UPPER.PNG", gray(7))
    (root / "x_corrupt.png").write_bytes(np.random.default_rng(0).bytes(300))
    (root / "y_empty.png").write_bytes(b"")
    (root / "z_notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_flat_folder_loads_every_format_and_reports_skipped(mixed_flat: Path) -> None:
    ds = load_dataset(str(mixed_flat))
    assert ds.n == 8
    assert ds.labels is None and ds.class_names == []
    assert ds.images.dtype == np.uint8 and ds.shape == (3, 28, 28)  # colour present -> RGB
    assert ds.name == "mixed" and ds.source == str(mixed_flat.resolve())
    skipped = reasons(ds)
    assert set(skipped) == {"x_corrupt.png", "y_empty.png", "z_notes.txt"}  # hidden file ignored
    assert skipped["y_empty.png"] == "empty file (0 bytes)"
    assert skipped["x_corrupt.png"].startswith("not a readable image")
    assert skipped["z_notes.txt"] == "unsupported file type '.txt'"
    assert "3 files skipped" in ds.summary()

    images = ds.images.astype(int)  # files are loaded in natural name order
    assert (images[0] == 100).all()  # gray replicated into 3 channels
    assert abs(images[1, 0].mean() - 200) < 6 and images[1, 1].mean() < 40  # JPEG red
    assert (images[2, 2] == 255).all() and (images[2, :2] == 0).all()  # BMP blue
    assert (images[3, 1] == 255).all() and (images[3, [0, 2]] == 0).all()  # GIF palette green
    assert (images[4] == 255).all()  # 16-bit white
    assert (images[5].reshape(3, -1).T == [10, 20, 30]).all()  # lossless WebP
    assert (images[6][:, :, :14] == 0).all() and (images[6][:, :, 14:] == 255).all()  # alpha on black
    assert (images[7] == 7).all()  # upper-case extension


def test_per_class_folder_labels_nesting_and_natural_order(tmp_path: Path) -> None:
    root = tmp_path / "classes"
    for name, count in {"cats": 3, "dogs": 2, "10": 1, "2": 2}.items():
        for i in range(count):
            save(root / name / f"{i}.png", gray(10 * i))
    save(root / "dogs" / "puppies" / "deep.png", gray(1))  # nested: still a dog
    save(root / "stray.png", gray(5))  # not inside a class folder
    (root / "cats" / "readme.md").write_text("x")
    (root / "empty_class").mkdir()
    (root / "__MACOSX").mkdir()
    save(root / "__MACOSX" / "junk.png", gray(0))

    ds = load_dataset(str(root))
    assert ds.class_names == ["2", "10", "cats", "dogs"]
    assert ds.n == 9 and ds.channels == 1
    assert np.bincount(ds.labels).tolist() == [2, 1, 3, 3]
    assert ds.labels.dtype == np.int64
    assert reasons(ds) == {"stray.png": "not inside a class folder", "readme.md": "unsupported file type '.md'"}
    assert ds.summary() == "classes: 9 images 1x28x28, 4 classes, 2 files skipped"


def test_grayscale_only_folder_is_single_channel(tmp_path: Path) -> None:
    save(tmp_path / "a.png", gray(50))
    save(tmp_path / "b.png", rgb(90, 90, 90))  # RGB file with gray content
    save(tmp_path / "c.jpg", rgb(120, 120, 120))
    ds = load_dataset(str(tmp_path))
    assert ds.shape == (1, 28, 28)
    assert abs(int(ds.images[1].mean()) - 90) <= 1


def test_palette_transparency_16bit_png_and_modes(tmp_path: Path) -> None:
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 255, 255, 200, 0, 0] + [0] * 762)
    palette.paste(1, (4, 0, 8, 8))
    palette.info["transparency"] = 0  # index 0 (white) is transparent -> black
    palette.save(tmp_path / "p.png", transparency=0)
    save(tmp_path / "q16.png", np.full((8, 8), 32896, dtype=np.uint16))  # 32896 / 257 = 128
    Image.new("1", (8, 8), 1).save(tmp_path / "r_bilevel.png")
    Image.new("LA", (8, 8), (200, 255)).save(tmp_path / "s_la.png")
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "t_cmyk.tif")

    ds = load_dataset(str(tmp_path), image_size=8)
    assert ds.shape == (3, 8, 8) and not ds.skipped
    p = ds.images[0]
    assert (p[:, :, :4] == 0).all() and (p[:, :, 4:].reshape(3, -1).T == [200, 0, 0]).all()
    assert (ds.images[1] == 128).all()
    assert (ds.images[2] == 255).all()
    assert (ds.images[3] == 200).all()
    assert (ds.images[4] == 255).all()  # CMYK no ink = white


def test_high_bit_images_are_scaled_by_the_bits_their_folder_uses(tmp_path: Path) -> None:
    """12-bit camera values in 16-bit files (0..4,095) load as 0..255, not as a near-black 0..16;
    one depth per folder, so a dimmer image stays dimmer; float images above 1 follow the same rule."""
    twelve = tmp_path / "twelve"
    twelve.mkdir()
    ramp = np.tile(np.linspace(0, 4095, 16).round().astype(np.uint16), (16, 1))
    save(twelve / "a_ramp.png", ramp)
    save(twelve / "b_dim.png", np.full((16, 16), 1000, dtype=np.uint16))
    save(twelve / "c_float.tif", np.full((16, 16), 2047.5, dtype=np.float32))
    ds = load_dataset(str(twelve), image_size=16)
    assert ds.high_bits == 12 and "read as 12-bit (4,095 is white)" in ds.summary()
    assert ds.images[0].max() == 255 and ds.images[0].min() == 0
    assert (ds.images[1] == round(1000 * 255 / 4095)).all()  # 62: dim next to the ramp, not stretched alone
    assert (ds.images[2] == 128).all()

    alone = tmp_path / "alone"
    alone.mkdir()
    save(alone / "dim.png", np.full((16, 16), 1000, dtype=np.uint16))  # its own range: 10 bits
    assert load_dataset(str(alone), image_size=16).high_bits == 10

    sixteen = tmp_path / "sixteen"  # a 16-bit image sets the depth for a 12-bit one beside it
    sixteen.mkdir()
    save(sixteen / "a_full.png", np.full((16, 16), 65535, dtype=np.uint16))
    save(sixteen / "b_twelve.png", np.full((16, 16), 4095, dtype=np.uint16))
    ds = load_dataset(str(sixteen), image_size=16)
    assert ds.high_bits == 16 and ds.depth_note() is None and "bit" not in ds.summary()
    assert (ds.images[0] == 255).all() and (ds.images[1] == 16).all()  # 4,095 / 257 = 15.9

    eight = tmp_path / "eight"  # 8-bit values saved as 16-bit, and 8-bit files beside them
    eight.mkdir()
    save(eight / "a.png", np.full((16, 16), 200, dtype=np.uint16))
    save(eight / "b.png", gray(90, size=16))
    ds = load_dataset(str(eight), image_size=16)
    assert ds.high_bits == 8 and (ds.images[0] == 200).all() and (ds.images[1] == 90).all()
    assert ds.subset([0]).high_bits == 8


def test_folder_resize_centre_crop_and_channel_conversion(tmp_path: Path) -> None:
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, :20] = [255, 0, 0]
    wide[:, 20:40] = [0, 255, 0]
    wide[:, 40:] = [0, 0, 255]
    save(tmp_path / "wide.png", wide)
    save(tmp_path / "big.png", gray(200, size=100))

    ds = load_dataset(str(tmp_path), image_size=10)
    assert ds.shape == (3, 10, 10)
    centre = ds.images[1][:, :, 2:-2].reshape(3, -1).T.astype(int)  # LANCZOS may peek past the crop
    assert (abs(centre - [0, 255, 0]) <= 2).all()  # only the centre square survives
    assert (ds.images[0] == 200).all()

    as_gray = load_dataset(str(tmp_path), image_size=10, channels=1)
    assert as_gray.shape == (1, 10, 10)
    assert (abs(as_gray.images[1][:, :, 2:-2].astype(int) - 150) <= 2).all()  # luma of green: 0.587 * 255

    save(tmp_path / "more" / "x.png", gray(3))  # now the folder has a class subfolder...
    assert load_dataset(str(tmp_path / "more"), channels=3).shape == (3, 28, 28)


def test_threaded_decoding_matches_sequential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    for i in range(120):
        save(tmp_path / f"c{i % 3}" / f"{i}.png", rng.integers(0, 256, (12, 12), dtype=np.uint8))
    (tmp_path / "c0" / "bad.png").write_bytes(b"garbage")
    sequential = load_dataset(str(tmp_path), image_size=12)

    monkeypatch.setattr(folder_mod, "THREAD_THRESHOLD_S", 0.0)
    monkeypatch.setattr(folder_mod.os, "cpu_count", lambda: 4)
    calls: list[tuple[int, int]] = []
    caller = threading.get_ident()

    def progress(done: int, total: int) -> None:
        assert threading.get_ident() == caller
        calls.append((done, total))

    threaded = load_dataset(str(tmp_path), image_size=12, progress=progress)
    assert np.array_equal(threaded.images, sequential.images)
    assert np.array_equal(threaded.labels, sequential.labels)
    assert threaded.skipped == sequential.skipped and len(threaded.skipped) == 1
    assert calls[0] == (0, 121) and calls[-1] == (121, 121)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_progress_may_abort_folder_loading(tmp_path: Path) -> None:
    for i in range(5):
        save(tmp_path / f"{i}.png", gray(i))

    class Cancelled(Exception):
        pass

    def progress(done: int, total: int) -> None:
        if done >= 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        load_dataset(str(tmp_path), progress=progress)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="No images found in"):
        load_dataset(str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"No readable images in .*: 3 files skipped \(") as info:
        load_dataset(str(tmp_path))
    assert "empty file" in str(info.value) and "'.txt'" in str(info.value)
    with pytest.raises(DatasetError, match="Unknown dataset"):
        load_dataset(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        folder_mod.load_folder(tmp_path / "notes.txt")


# -- ImageSet and splits -------------------------------------------------------------------


def small_set() -> ImageSet:
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 1, 2, 2)
    return ImageSet("toy", images, np.array([0, 1, 2, 0, 1, 2]), ["zero", "One", "two"], source="test")


def test_imageset_properties_subset_and_float() -> None:
    ds = small_set()
    assert (ds.n, ds.channels, ds.height, ds.width, ds.shape) == (6, 1, 2, 2, (1, 2, 2))
    f = ds.as_float()
    assert f.dtype == np.float32 and f.shape == ds.images.shape
    assert f.max() == pytest.approx(23 / 255) and f.min() == 0.0
    sub = ds.subset([5, 0])
    assert sub.labels.tolist() == [2, 0] and sub.class_names == ds.class_names
    assert np.array_equal(sub.images, ds.images[[5, 0]]) and sub.source == "test"
    assert ds.subset(ds.labels == 1).n == 2
    assert ds.summary() == "toy: 6 images 1x2x2, 3 classes"


def test_filter_classes() -> None:
    ds = small_set()
    kept = ds.filter_classes(["one", 2])  # names match case-insensitively as a fallback
    assert kept.labels.tolist() == [1, 2, 1, 2] and kept.class_names == ds.class_names
    assert ds.filter_classes("zero").n == 2
    with pytest.raises(
        DatasetError, match=r"Unknown class 'three' for toy; valid classes are 0 'zero', 1 'One', 2 'two'"
    ):
        ds.filter_classes(["three"])
    with pytest.raises(DatasetError, match="Unknown class 7"):
        ds.filter_classes([7])
    with pytest.raises(DatasetError, match="No classes were selected"):
        ds.filter_classes([])
    unlabelled = ImageSet("flat", ds.images, None, [])
    with pytest.raises(DatasetError, match="has no classes"):
        unlabelled.filter_classes([0])
    assert unlabelled.summary() == "flat: 6 images 1x2x2, unlabelled"


def test_imageset_validates_arrays() -> None:
    with pytest.raises(ValueError):
        ImageSet("bad", np.zeros((2, 2, 4, 4), dtype=np.uint8), None, [])
    with pytest.raises(ValueError):
        ImageSet("bad", np.zeros((2, 1, 4, 4), dtype=np.float32), None, [])
    with pytest.raises(ValueError):
        ImageSet("bad", np.zeros((2, 1, 4, 4), dtype=np.uint8), np.array([0, 3]), ["a", "b"])


def test_split_indices() -> None:
    train, val = split_indices(100, 0.2, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert train.dtype == np.int64 and val.dtype == np.int64
    again = split_indices(100, 0.2, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, split_indices(100, 0.2, seed=4)[1])
    assert [len(part) for part in split_indices(2, 0.01)] == [1, 1]
    assert [len(part) for part in split_indices(5, 0.99)] == [1, 4]
    with pytest.raises(DatasetError, match="At least 2 images"):
        split_indices(1)
    with pytest.raises(DatasetError, match="between 0 and 1"):
        split_indices(10, 0.0)


# -- IDX -----------------------------------------------------------------------------------


def test_read_idx_raw_gzip_and_types(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    (tmp_path / "raw").write_bytes(idx_bytes(images))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "misnamed").write_bytes(gzip.compress(idx_bytes(images)))  # detected by content
    for name in ("raw", "packed.gz", "misnamed"):
        assert np.array_equal(read_idx(tmp_path / name), images)
    ints = np.array([[1, -2], [300000, 4]], dtype=np.int32)
    (tmp_path / "ints").write_bytes(idx_bytes(ints))
    loaded = read_idx(str(tmp_path / "ints"))
    assert loaded.dtype == np.int32 and np.array_equal(loaded, ints) and loaded.flags.writeable


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x99\x01\x00\x00\x00\x01\x05", "bad magic number 0x00009901"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "bad magic number"),
        (b"\x00\x00", "only 2 bytes long"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "header is incomplete"),
        (idx_bytes(np.zeros((3, 2), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((3, 2), np.uint8)) + b"\0", "longer than its header says"),
        (b"\x1f\x8b\x08\x00garbage", "damaged gzip file"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


# -- mnist / fashion-mnist -----------------------------------------------------------------

N_TRAIN, N_TEST = 6, 4


def write_mnist_files(folder: Path, compress: bool = True) -> dict[str, bytes]:
    """Four small MNIST-format files; returns their bytes by published (.gz) name."""
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(N_TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(N_TEST, dtype=np.uint8) + 6,
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for stem, array in arrays.items():
        data = gzip.compress(idx_bytes(array), mtime=0) if compress else idx_bytes(array)
        (folder / (f"{stem}.gz" if compress else stem)).write_bytes(data)
        written[f"{stem}.gz"] = data
    return written


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """A file:// mirror of small MNIST files with matching checksums; no system copies."""
    files = write_mnist_files(tmp_path / "mirror")
    table = [(name, hashlib.md5(data).hexdigest(), len(data)) for name, data in files.items()]
    for name in ("mnist", "fashion-mnist"):
        monkeypatch.setitem(mnist_mod.MIRRORS, name, [(tmp_path / "mirror").as_uri() + "/"])
        monkeypatch.setitem(mnist_mod.RESOURCES, name, list(table))
        monkeypatch.setitem(mnist_mod.SYSTEM_DIRS, name, [tmp_path / "no-system-copy"])
    return files


def test_download_verifies_and_caches(
    tmp_path: Path, mirror: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache", progress=lambda d, t: calls.append((d, t)))
    assert ds.n == N_TRAIN + N_TEST and ds.shape == (1, 28, 28)
    assert ds.labels.tolist() == list(range(10))  # train first, then test
    assert ds.class_names == [str(d) for d in range(10)]
    assert ds.source.endswith("(train 6 + test 4)")
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == sorted(mirror)  # the four files, no temporary leftovers
    total = sum(len(data) for data in mirror.values())
    assert calls[-1] == (total, total)

    monkeypatch.setitem(mnist_mod.MIRRORS, "mnist", ["file:///nonexistent/"])
    again = load_dataset("mnist", cache_dir=tmp_path / "cache", allow_download=False, image_size=14, channels=3)
    assert again.shape == (3, 14, 14) and again.n == 10


def test_download_falls_back_to_next_mirror(
    tmp_path: Path, mirror: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = mnist_mod.MIRRORS["fashion-mnist"][0]
    monkeypatch.setitem(mnist_mod.MIRRORS, "fashion-mnist", [(tmp_path / "void").as_uri() + "/", good])
    ds = load_dataset("fashion-mnist", cache_dir=tmp_path / "cache")
    assert ds.class_names[0] == "T-shirt/top" and ds.n == 10


def test_download_refuses_checksum_mismatch(
    tmp_path: Path, mirror: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = list(mnist_mod.RESOURCES["mnist"])
    name, _, size = table[2]
    table[2] = (name, "0" * 32, size)
    monkeypatch.setitem(mnist_mod.RESOURCES, "mnist", table)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", cache_dir=tmp_path / "cache")
    left = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert name not in left and not any(n.endswith(".part") for n in left)
    assert left == sorted(n for n, _, _ in table[:2])  # files verified before the bad one stay


def test_aborted_download_leaves_no_partial_file(tmp_path: Path, mirror: dict[str, bytes]) -> None:
    def progress(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_dataset("mnist", cache_dir=tmp_path / "cache", progress=progress)
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_offline_errors_name_the_fix(tmp_path: Path, mirror: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetError, match=r"apt install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist", cache_dir=tmp_path / "cache", allow_download=False)
    assert str(tmp_path / "cache" / "fashion-mnist") in str(info.value)
    monkeypatch.setitem(mnist_mod.MIRRORS, "mnist", [(tmp_path / "void").as_uri() + "/"])
    with pytest.raises(DatasetError, match=r"Could not download MNIST .*offline, put train-images-idx3-ubyte.gz"):
        load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "mnist").exists()  # no empty folder left behind


def test_system_copy_is_used_before_downloading(
    tmp_path: Path, mirror: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "usr-share" / "fashion-mnist"
    write_mnist_files(system, compress=False)  # uncompressed copies, no checksum needed
    monkeypatch.setitem(mnist_mod.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "elsewhere", system])
    monkeypatch.setitem(mnist_mod.MIRRORS, "fashion-mnist", [])
    ds = load_dataset("fashion-mnist", cache_dir=tmp_path / "cache", allow_download=False)
    assert ds.n == 10 and ds.source.startswith(str(system))
    assert not (tmp_path / "cache").exists()


def test_corrupt_cached_file_names_the_remedy(tmp_path: Path, mirror: dict[str, bytes]) -> None:
    cache = tmp_path / "cache" / "mnist"
    write_mnist_files(cache)
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x09" + b"\1" * 3))
    with pytest.raises(DatasetError, match=r"truncated.*Delete it so that it is downloaded again"):
        load_dataset("mnist", cache_dir=tmp_path / "cache", allow_download=False)


# -- named sets ----------------------------------------------------------------------------


def test_bundled_names() -> None:
    assert bundled_names() == ["fashion-10k", "digits", "shapes"]


def test_fashion10k() -> None:
    ds = load_dataset("fashion-10k")
    assert ds.summary() == "fashion-10k: 10,000 images 1x28x28, 10 classes"
    assert ds.images.dtype == np.uint8 and ds.labels.dtype == np.int64
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.source == "bundled"
    ds.images[:] = 0  # callers get their own copy of the cached arrays
    assert load_dataset("fashion-10k").images.max() == 255


def test_digits_and_resizing() -> None:
    ds = load_dataset("digits")
    assert ds.shape == (1, 8, 8) and ds.n == 1797
    assert ds.images.max() == 255 and ds.class_names == [str(d) for d in range(10)]
    big = load_dataset("digits", image_size=28, channels=3)
    assert big.shape == (3, 28, 28) and np.array_equal(big.labels, ds.labels)
    assert np.array_equal(big.images[:, 0], big.images[:, 2])
    assert abs(big.as_float().mean() - ds.as_float().mean()) < 0.02


def test_shapes_factors() -> None:
    ds = make_shapes(n=300, size=32, seed=5)
    assert ds.shape == (1, 32, 32) and ds.n == 300
    assert ds.class_names == ["square", "ellipse", "triangle"]
    assert ds.factor_names == ["shape", "scale", "rotation", "x", "y"]
    assert ds.factors.dtype == np.float32 and ds.factors.shape == (300, 5)
    assert np.array_equal(ds.labels, ds.factors[:, 0].astype(np.int64))
    scale, rotation, xy = ds.factors[:, 1], ds.factors[:, 2], ds.factors[:, 3:]
    assert scale.min() >= 0.5 and scale.max() < 1.0 and rotation.min() >= 0 and rotation.max() < 2 * np.pi
    assert xy.min() >= 0 and xy.max() < 1
    assert (ds.images[:, :, [0, -1], :] == 0).all() and (ds.images[:, :, :, [0, -1]] == 0).all()  # inside
    area = ds.as_float().sum(axis=(1, 2, 3))
    assert np.corrcoef(area, scale**2)[0, 1] > 0.8  # bigger scale -> more pixels
    _, xs = np.indices((32, 32))
    weights = ds.as_float()[:, 0]
    centre_x = (weights * xs).sum(axis=(1, 2)) / weights.sum(axis=(1, 2))
    assert np.corrcoef(centre_x, xy[:, 0])[0, 1] > 0.95  # x factor moves the shape right
    assert np.array_equal(make_shapes(n=300, size=32, seed=5).images, ds.images)
    assert not np.array_equal(make_shapes(n=300, size=32, seed=6).images, ds.images)
    sized = load_dataset("shapes", image_size=20)
    assert sized.shape == (1, 20, 20) and sized.n == 6000


def test_load_dataset_argument_errors() -> None:
    with pytest.raises(DatasetError, match="image size"):
        load_dataset("digits", image_size=0)
    with pytest.raises(DatasetError, match="channels"):
        load_dataset("digits", channels=2)
    with pytest.raises(DatasetError, match=r"Unknown dataset 'fashion10k'.*fashion-10k"):
        load_dataset("fashion10k")


def test_core_datasets_does_not_import_qt() -> None:
    code = (
        "import sys, aestudio.core.datasets; sys.exit(any(m.startswith(('PySide6', 'shiboken')) for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_folder_images_remember_their_files(tmp_path):
    from PIL import Image as _Image

    for name in ("b.png", "a.png"):
        _Image.new("L", (10, 10), 200 if name == "a.png" else 50).save(tmp_path / name)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    data = load_dataset(str(tmp_path), image_size=8)
    assert [Path(f).name for f in data.files] == ["a.png", "b.png"]
    assert data.images[0].mean() > data.images[1].mean()  # a.png is the bright one
    assert [Path(f).name for f in data.subset([1]).files] == ["b.png"]


@pytest.mark.parametrize("name", ["a.png", "a.PNG", ".png", "..png", "..a.png", "a.b.jpg", "noext", "y.tif", "a.",
                                  "a.txt", "q.jpeg", "a.png.txt", "a.tar.gz", ".hidden.jpg"])
def test_image_names_are_read_as_splitext_reads_them(name):
    from aestudio.core.datasets.folder import IMAGE_EXTENSIONS, _is_image_entry

    assert _is_image_entry(name) == (os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)


@pytest.mark.parametrize("names", [
    ["img10.png", "img2.png", "IMG1.png", "img1b.png"],
    ["1²2.png", "1².png", "12.png", "1.png"],  # "²" is no digit for int(): it sorts as text
    ["a٣.png", "a2.png", "a10.png"],  # Arabic-Indic three is a decimal digit
])
def test_folder_files_are_in_natural_order(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        save(tmp_path / name, gray(7, size=4))
    ds = load_dataset(str(tmp_path), image_size=4)
    got = [Path(f).name for f in ds.files]
    expected = {
        "img10.png": ["IMG1.png", "img1b.png", "img2.png", "img10.png"],
        "1²2.png": ["1.png", "1²2.png", "1².png", "12.png"],
        "a٣.png": ["a2.png", "a٣.png", "a10.png"],
    }[names[0]]
    assert got == expected


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_images_are_turned_upright_by_their_exif_orientation(tmp_path: Path, orientation: int) -> None:
    """A phone stores a photo taken upright sideways plus an EXIF tag; viewers turn it, so must we."""
    upright = np.zeros((40, 20, 3), dtype=np.uint8)  # tall: red top half, blue bottom half, a green corner
    upright[:20] = [255, 0, 0]
    upright[20:] = [0, 0, 255]
    upright[:6, :6] = [0, 255, 0]
    # what the camera writes: the pixels turned the other way, and the tag saying how to turn them back
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    stored = Image.fromarray(upright).transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    for name, options in (("a.png", {}), ("b.webp", {"lossless": True}), ("c.tiff", {}), ("d.jpg", {"quality": 98})):
        stored.save(tmp_path / name, exif=exif, **options)
    Image.fromarray(upright).save(tmp_path / "e_reference.png")

    ds = load_dataset(str(tmp_path), image_size=20)
    reference = ds.images[-1].astype(int)
    assert reference[0, 2, 10] == 255 and reference[2, 2, 10] == 0  # the centre crop keeps red above blue
    for image, name in zip(ds.images[:-1], ds.files[:-1]):
        error = np.abs(image.astype(int) - reference)
        if name.endswith(".jpg"):  # lossy: colour edges smear, but an unturned image is off by ~100 on average
            assert error.mean() < 8, name
        else:
            assert error.max() == 0, name


def test_a_damaged_exif_block_leaves_the_image_as_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (12, 12), (250, 0, 0)).save(tmp_path / "a.jpg", exif=exif, quality=95)

    def broken(self):
        raise SyntaxError("not a TIFF block")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    ds = load_dataset(str(tmp_path), image_size=12)
    assert ds.n == 1 and not ds.skipped and abs(int(ds.images[0][0].mean()) - 250) <= 6
