"""The decoded-folder cache (core/datasets/cache.py) and decoding in worker processes."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aestudio.core.datasets.folder as folder_mod
from aestudio.core.datasets import load_dataset
from aestudio.core.datasets.cache import ArrayCache, cache_root, folder_key


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("AESTUDIO_FOLDER_CACHE", str(path))
    return path


def make_folder(root: Path, count: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        (root / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(root / f"c{i % 3}" / f"{i}.png")
    (root / "c0" / "broken.png").write_bytes(b"not a png")
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[2:8, 2:8] = (200, 10, 10, 255)
    Image.fromarray(rgba, "RGBA").save(root / "c1" / "icon.png")
    Image.fromarray(np.full((10, 10), 3000, np.uint16)).save(root / "c2" / "deep.png")  # 12 bits used
    (root / "notes.txt").write_text("not an image")
    return root


def same_set(a, b) -> None:
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels, b.labels) and a.class_names == b.class_names
    assert a.files == b.files and a.skipped == b.skipped
    assert a.transparent_fraction == b.transparent_fraction and a.background == b.background
    assert a.high_bits == b.high_bits


def no_decoding(monkeypatch) -> None:
    def fail(*_args, **_kwargs):
        raise AssertionError("decoded although the cache holds this folder")

    monkeypatch.setattr(folder_mod, "_decode_all", fail)


def test_reopening_an_unchanged_folder_reads_the_cache(tmp_path, cache_dir, monkeypatch):
    root = make_folder(tmp_path / "data")
    first = load_dataset(str(root), image_size=8)
    assert len(list(cache_dir.glob("*.npy"))) == 1 and len(list(cache_dir.glob("*.json"))) == 1
    no_decoding(monkeypatch)
    calls = []
    again = load_dataset(str(root), image_size=8, progress=lambda d, t: calls.append((d, t)))
    same_set(first, again)
    assert again.images.flags.writeable  # a copy in memory, not the read-only map
    assert calls[-1] == (first.n + 1, first.n + 1)  # the broken file counts as a file too
    assert any("broken.png" in path for path, _ in again.skipped)


def test_each_option_has_its_own_entry(tmp_path, cache_dir):
    root = make_folder(tmp_path / "data")
    gray = load_dataset(str(root), image_size=8, channels=1)
    white = load_dataset(str(root), image_size=8, background="white")
    black = load_dataset(str(root), image_size=8, background="black")
    assert gray.channels == 1 and white.channels == 3
    assert not np.array_equal(white.images, black.images)
    assert len(list(cache_dir.glob("*.npy"))) == 3


def test_a_changed_or_added_file_is_decoded_again(tmp_path, cache_dir, monkeypatch):
    root = make_folder(tmp_path / "data")
    first = load_dataset(str(root), image_size=8)
    target = root / "c2" / "2.png"
    stat = target.stat()
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the change time still differs
    changed = load_dataset(str(root), image_size=8)
    k = changed.files.index(str(target))
    assert (changed.images[k] == 255).all() and not np.array_equal(first.images[k], changed.images[k])
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "c0" / "new.png")
    added = load_dataset(str(root), image_size=8)
    assert added.n == first.n + 1 and str(root / "c0" / "new.png") in added.files
    no_decoding(monkeypatch)
    same_set(added, load_dataset(str(root), image_size=8))  # and that state is cached in turn


def test_an_unwritable_cache_folder_only_switches_caching_off(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("AESTUDIO_FOLDER_CACHE", str(blocker / "cache"))
    monkeypatch.setattr("aestudio.core.datasets.cache._broken", set())
    root = make_folder(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="aestudio.core.datasets.cache"):
        a = load_dataset(str(root), image_size=8)
        b = load_dataset(str(root), image_size=8)
    same_set(a, b)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "not caching decoded folders" in notes[0] and str(blocker) in notes[0]


def test_a_load_with_unreadable_files_is_not_cached(tmp_path, cache_dir, monkeypatch):
    root = make_folder(tmp_path / "data", count=6)
    real = folder_mod._load_one

    def flaky(path, *args, **kwargs):
        if path.endswith("3.png"):
            return folder_mod._Skip("file not readable (Input/output error)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(folder_mod, "_load_one", flaky)
    data = load_dataset(str(root), image_size=8)
    assert any(reason.startswith("file not readable") for _, reason in data.skipped)
    assert not list(cache_dir.glob("*.npy"))


def test_switched_off_and_tampered_entries_are_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("AESTUDIO_FOLDER_CACHE", "off")
    assert cache_root() is None and ArrayCache("k").load() is None and not ArrayCache("k").store(np.zeros(1), {})
    cache = ArrayCache({"files": ["a", "b"]}, root=tmp_path)
    assert cache.store(np.arange(6, dtype=np.uint8).reshape(2, 3), {"note": "x"})
    array, meta = cache.load()
    assert array.tolist() == [[0, 1, 2], [3, 4, 5]] and meta == {"note": "x"} and not array.flags.writeable
    side = json.loads(cache.meta_path.read_text())
    side["shape"] = [3, 2]
    cache.meta_path.write_text(json.dumps(side))
    assert cache.load() is None  # sidecar and data disagree
    assert ArrayCache({"files": ["a", "c"]}, root=tmp_path).load() is None  # another key
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_folder_key_follows_the_files_and_options(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    key = folder_key([str(a), str(b)], size=8)
    assert key == folder_key([str(a), str(b)], size=8)
    assert key != folder_key([str(a), str(b)], size=9) != folder_key([str(a)], size=8)
    b.write_bytes(b"22")
    assert key != folder_key([str(a), str(b)], size=8)


def test_worker_processes_give_the_serial_result(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "data", count=150)
    monkeypatch.setattr(folder_mod, "USE_PROCESSES", False)
    serial = load_dataset(str(root), image_size=8)
    monkeypatch.setattr(folder_mod, "USE_PROCESSES", True)
    monkeypatch.setattr(folder_mod, "PROCESS_MIN_FILES", 50)
    monkeypatch.setattr(folder_mod, "PROCESS_MAX_S", 10.0)
    monkeypatch.setattr(folder_mod.os, "cpu_count", lambda: 2)
    used = {"processes": 0, "threads_after": 0}
    real_processes, real_rest = folder_mod._decode_in_processes, folder_mod._decode_rest_in_threads

    def processes(*args, **kwargs):
        used["processes"] += 1
        return real_processes(*args, **kwargs)

    def rest(*args, **kwargs):
        used["threads_after"] += 1
        return real_rest(*args, **kwargs)

    monkeypatch.setattr(folder_mod, "_decode_in_processes", processes)
    monkeypatch.setattr(folder_mod, "_decode_rest_in_threads", rest)
    real_one = folder_mod._load_one

    def slow_probe(*args, **kwargs):  # the probing thread (in this process) must not finish the folder alone
        time.sleep(0.003)
        return real_one(*args, **kwargs)

    monkeypatch.setattr(folder_mod, "_load_one", slow_probe)
    calls = []
    parallel = load_dataset(str(root), image_size=8, progress=lambda d, t: calls.append((d, t)))
    assert used == {"processes": 1, "threads_after": 0}  # the processes decoded everything after the probe
    same_set(serial, parallel)
    assert calls[-1] == (serial.n + 1, serial.n + 1)


def test_files_the_processes_cannot_decode_go_to_the_threads(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "data", count=120)
    monkeypatch.setattr(folder_mod, "USE_PROCESSES", False)
    serial = load_dataset(str(root), image_size=8)

    def no_pool(_workers):
        raise OSError("no processes in this sandbox")

    monkeypatch.setattr(folder_mod, "USE_PROCESSES", True)
    monkeypatch.setattr(folder_mod, "PROCESS_MIN_FILES", 50)
    monkeypatch.setattr(folder_mod, "PROCESS_MAX_S", 10.0)
    monkeypatch.setattr(folder_mod.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(folder_mod, "_process_pool", no_pool)
    same_set(serial, load_dataset(str(root), image_size=8))


def test_an_unchanged_listing_is_reused_and_a_rename_is_seen(tmp_path, cache_dir, monkeypatch):
    root = make_folder(tmp_path / "data", count=9)
    first = load_dataset(str(root), image_size=8)
    listed = []
    real = folder_mod._scan_folder
    monkeypatch.setattr(folder_mod, "_scan_folder", lambda *a: (listed.append(1), real(*a))[1])
    same_set(first, load_dataset(str(root), image_size=8))
    assert not listed  # nothing changed: the folder was not listed again
    os.rename(root / "c1" / "4.png", root / "c1" / "40.png")
    renamed = load_dataset(str(root), image_size=8)
    assert listed == [1] and str(root / "c1" / "40.png") in renamed.files
    assert str(root / "c1" / "4.png") not in renamed.files and renamed.n == first.n
