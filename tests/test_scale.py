"""Scaling out: streamed folders (decode cache), --memory-budget, torchrun/DDP training."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aestudio import cli
from aestudio.core.datasets import DatasetError, is_streamed, load_dataset
from aestudio.core.datasets import stream
from aestudio.core.datasets.stream import Prefetcher, parse_size

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (root / c).mkdir()
        for i in range(40):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            if c == "c":
                pixels[:] = pixels[..., :1]  # gray files in an otherwise colour folder
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"not a png")
    return root


def streamed(path, tmp_path, **kw):
    notes = []
    data = load_dataset(str(path), image_size=8, memory_budget=1, decode_cache_dir=tmp_path / "cache",
                        note=notes.append, **kw)
    return data, notes


# ---- sizes ------------------------------------------------------------------------------------
def test_parse_size():
    assert parse_size("512MB") == 512 * 10**6 and parse_size("4GB") == 4 * 10**9
    assert parse_size("1.5GiB") == int(1.5 * 2**30) and parse_size("800m") == 800 * 10**6
    assert parse_size("1024") == 1024
    for bad in ("", "lots", "-1GB", "0", "4 parsecs"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_cli_rejects_a_bad_memory_budget(capsys, tmp_path):
    rc = cli.main(["train", "--data", "digits", "--memory-budget", "a lot", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("aestudio: error: ") and "--memory-budget" in err[-1]
    assert not (tmp_path / "r").exists()


# ---- the decode cache ---------------------------------------------------------------------------
def test_streamed_folder_equals_the_in_memory_one(folder, tmp_path):
    ref = load_dataset(str(folder), image_size=8)
    data, notes = streamed(folder, tmp_path)
    assert is_streamed(data) and not is_streamed(ref) and "streaming" in notes[0]
    assert np.array_equal(np.asarray(data.images), ref.images) and data.shape == ref.shape == (3, 8, 8)
    assert np.array_equal(data.labels, ref.labels) and data.class_names == ref.class_names
    assert [s[0] for s in data.skipped] == [s[0] for s in ref.skipped] and data.files == ref.files
    idx = np.array([7, 3, 4, 5, 119, 0, 0])
    assert np.array_equal(data.read_rows(idx), ref.images[idx])
    batches = [np.arange(i, min(i + 16, data.n)) for i in range(0, data.n, 16)]
    got = np.concatenate(list(Prefetcher(data, batches, depth=2)))
    assert np.array_equal(got, ref.images)
    again, notes = streamed(folder, tmp_path)  # the second load reads the cache, decodes nothing
    assert "using the decode cache" in notes[-1] and np.array_equal(np.asarray(again.images), ref.images)


def test_streamed_high_bit_folder_reads_at_the_same_depth(tmp_path):
    root = tmp_path / "twelve"
    root.mkdir()
    for i in range(12):
        Image.fromarray(np.full((9, 9), 300 * i + 500, np.uint16)).save(root / f"{i:02d}.png")  # up to 3,800
    ref = load_dataset(str(root), image_size=8)
    data, _ = streamed(root, tmp_path)
    assert ref.high_bits == data.high_bits == 12 and np.array_equal(np.asarray(data.images), ref.images)
    again, notes = streamed(root, tmp_path)
    assert "using the decode cache" in notes[-1] and again.high_bits == 12


def test_gray_folder_is_cached_as_one_channel(tmp_path):
    root = tmp_path / "gray"
    root.mkdir()
    for i in range(10):
        Image.fromarray(np.full((9, 9), i * 20, np.uint8)).save(root / f"{i}.png")
    data, _ = streamed(root, tmp_path)
    ref = load_dataset(str(root), image_size=8)
    assert data.shape == ref.shape == (1, 8, 8) and np.array_equal(np.asarray(data.images), ref.images)


def test_small_folders_keep_the_in_memory_path(folder, tmp_path):
    data = load_dataset(str(folder), image_size=8, memory_budget=10**9, decode_cache_dir=tmp_path / "c")
    assert not is_streamed(data) and not (tmp_path / "c").exists()


def test_stale_cache_is_rebuilt_after_files_change(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), 10 * i, np.uint8)).save(root / f"{i}.png")
    first, _ = streamed(root, tmp_path)
    assert first.n == 6
    Image.fromarray(np.full((8, 8), 250, np.uint8)).save(root / "0.png")  # changed
    os.utime(root / "0.png", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(root / "9.png")  # added
    data, notes = streamed(root, tmp_path)
    assert any("out of date" in n for n in notes)
    assert data.n == 7 and int(np.asarray(data.images)[0].max()) == 250


def test_unwritable_cache_folder_is_one_clear_error(folder, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match=r"Cannot create the decode cache .*--cache-dir"):
        load_dataset(str(folder), image_size=8, memory_budget=1, decode_cache_dir=blocker / "cache")
    rc = cli.main(["train", "--data", str(folder), "--image-size", "8", "--memory-budget", "1",
                   "--cache-dir", str(blocker / "cache"), "--epochs", "1", "--out", str(tmp_path / "run")])
    assert rc == 2 and not (tmp_path / "run").exists()


def test_read_only_cache_folder_is_one_clear_error(folder, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders (the test above covers an unwritable place)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DatasetError, match=r"Cannot (create|write) the decode cache .*--cache-dir"):
            load_dataset(str(folder), image_size=8, memory_budget=1, decode_cache_dir=ro / "cache")
    finally:
        ro.chmod(0o700)


def test_full_cache_folder_is_refused_before_decoding(folder, tmp_path, monkeypatch):
    class Usage:
        free = 1000

    monkeypatch.setattr(stream.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(DatasetError, match="Not enough space for the decode cache"):
        streamed(folder, tmp_path)
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".npy" in p.name]


def test_disk_full_while_writing_leaves_no_cache(folder, tmp_path, monkeypatch):
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "w" in mode and str(path).endswith(".npy.building") else f

    monkeypatch.setattr(stream, "open", fake_open, raising=False)
    with pytest.raises(DatasetError, match="No space left on device.*free some space"):
        streamed(folder, tmp_path)
    left = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert left == []
    monkeypatch.undo()
    data, notes = streamed(folder, tmp_path)  # the next load builds a complete cache
    assert data.n == 120 and "streaming" in notes[0]


# ---- the studio ---------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_studio_streams_a_folder_over_the_budget_and_trains_on_it(qtbot, folder, tmp_path, monkeypatch):
    from aestudio.app import create_window
    from aestudio.core.config import ModelConfig, TrainConfig

    monkeypatch.setenv("AESTUDIO_FOLDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stream, "default_budget", lambda device=None: 1)  # every folder is "too large"
    w = create_window("digits")
    qtbot.addWidget(w)
    formats = []
    real = w.data_panel.progress.setFormat
    monkeypatch.setattr(w.data_panel.progress, "setFormat", lambda text: (formats.append(text), real(text)))
    with qtbot.waitSignal(w.data_panel.loaded, timeout=30000):
        w.data_panel.load(str(folder), image_size=8, channels=3)
    data = w.state.dataset
    assert is_streamed(data) and data.n == 120 and "streamed from a decode cache" in data.summary()
    assert any(f.startswith("Building the decode cache") for f in formats), formats
    w.builder.set_config(ModelConfig(arch="dense", latent=2, hidden=[16], input_shape=(3, 8, 8)))
    w.training_panel.set_config(TrainConfig(epochs=2, batch_size=32, device="cpu"))
    with qtbot.waitSignal(w.state.training.finished, timeout=60000) as blocker:
        w.state.start_training()
    assert blocker.args[0].reason == "completed"
    qtbot.waitUntil(lambda: w.state.snapshot is not None and len(w.latent_map.points) > 0, timeout=20000)
    assert len(w.loss_curves.curve_data("total", "val")[0]) == 2
    w.close()


def test_the_stream_and_the_loader_share_cache_entries(folder, tmp_path, monkeypatch):
    from aestudio.core.datasets import folder as folder_module

    data, _ = streamed(folder, tmp_path)  # built by the stream
    monkeypatch.setenv("AESTUDIO_FOLDER_CACHE", str(tmp_path / "cache"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the shared cache entry")

    monkeypatch.setattr(folder_module, "_decode_all", no_decoding)
    in_memory = load_dataset(str(folder), image_size=8)  # the loader reads the stream's entry
    assert not is_streamed(in_memory) and np.array_equal(in_memory.images, np.asarray(data.images))
    assert [s[0] for s in in_memory.skipped] == [s[0] for s in data.skipped]
