"""Folders too large for memory: decoded once into a uint8 cache file, then streamed.

    budget = parse_size("4GB")                      # or default_budget()
    data = load_folder_budgeted("photos/", image_size=64, budget=budget, progress=cb)
    # an ordinary ImageSet when the folder fits the budget, else a StreamedImageSet:
    rows = data.read_rows(np.array([5, 17, 3]))    # (3, C, H, W) uint8, read from the cache file

The cache
    A folder is listed (as the folder loader does), and when its decoded images would not fit the
    memory budget they are decoded in chunks of :data:`CHUNK` files (by the folder loader's worker
    threads, with progress) and appended to one entry of the folder loader's own cache
    (:mod:`.cache`: ``<digest>.npy`` plus the ``<digest>.json`` sidecar, keyed by every file's path,
    size and times and by the options, exactly as ``load_folder`` keys it), so the loader and the
    stream share entries: a folder once streamed loads into memory from the same file, and the
    other way round. The ``.npy`` header is written first for all files and rewritten in place
    once the number of images that decoded is known; the entry is renamed into place and its
    sidecar written last, so an interrupted build is never read. When files are added, removed
    or changed the key changes: the old entry is deleted and the ``note`` callback says so. Builds
    of one entry are serialised by a lock, so the ranks of a torchrun job (or two studios) decode
    a folder once.

    The cache lives where the loader's does (``$AESTUDIO_FOLDER_CACHE``, else the user cache
    folder), or in the folder passed as ``cache_dir`` (the CLI's ``--cache-dir``). Unlike the
    in-memory loader, which goes on without a cache it cannot write, a streamed folder needs one:
    a folder that is read-only or has too little space gives one clear :class:`DatasetError`
    before decoding starts (free space is checked first) or as soon as a write fails, and the
    partial file is removed.

    With ``channels=None`` the entry is written in RGB and, when no image turned out to have
    colour, rewritten in gray at the end (the folder loader's rule). With ``background="auto"``
    the background is chosen from the first chunk holding transparent images and kept for the
    rest (the in-memory loader decides from all of them at once).

Streaming
    :class:`StreamedImageSet` is an :class:`ImageSet` whose ``images`` is a read-only memory map
    of the cache (indexing a few images works as usual). Training reads batches with
    :meth:`StreamedImageSet.read_rows` (plain ``pread`` calls into one buffer, so memory use does
    not grow with the data set) on the background thread of a :class:`Prefetcher`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import queue
import re
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError, ImageSet, to_grayscale
from .folder import (
    DEFAULT_IMAGE_SIZE,
    HEARTBEAT_S,
    _Alpha,
    _auto_background,
    _composite,
    _decode_all,
    _harmonize_depth,
    _natural_key,
    _nothing_loaded,
    _Skip,
    background_name,
    list_folder,
    parse_background,
)

__all__ = [
    "IN_MEMORY_BYTES_PER_PIXEL",
    "Prefetcher",
    "StreamedImageSet",
    "default_budget",
    "fmt_size",
    "in_memory_bytes",
    "is_streamed",
    "load_folder_budgeted",
    "parse_size",
]

#: Files decoded per chunk when building a cache (their pixels are held in memory at once).
CHUNK = 2048
#: Peak bytes per pixel of the in-memory training path: the decoded set, its copy on the device
#: (the same memory on a CPU) and the float statistics pass over the training split.
IN_MEMORY_BYTES_PER_PIXEL = 6
#: The default memory budget: this fraction of the memory available when loading starts.
DEFAULT_FRACTION = 0.5
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


# ---- sizes ----------------------------------------------------------------------------------
def parse_size(text: str | int) -> int:
    """Bytes from ``"512MB"``, ``"4GB"``, ``"1.5G"``, ``"800MiB"`` or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise ValueError(f"expected a size such as 512MB or 4GB, got {text!r}")
        unit = (m.group(2) or "").lower().rstrip("b") if (m.group(2) or "").lower() != "b" else ""
        value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ValueError(f"a memory budget must be more than 0 bytes, got {text!r}")
    return value


def fmt_size(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def default_budget(device: Any = None) -> int:
    """:data:`DEFAULT_FRACTION` of the free memory, and of the GPU's when training will run on CUDA
    (`device` None: when torch is loaded and CUDA is present, as `--device auto` then trains there)."""
    from ..resources import available_bytes

    free = available_bytes("cpu") or 8 * 10**9
    budget = int(free * DEFAULT_FRACTION)
    if device is None:
        import sys

        torch = sys.modules.get("torch")
        with contextlib.suppress(Exception):
            if torch is not None and torch.cuda.is_available():
                device = "cuda"
    kind = str(getattr(device, "type", device) or "cpu").split(":")[0]
    if kind == "cuda":
        dev_free = available_bytes(device)
        if dev_free:
            budget = min(budget, int(dev_free * DEFAULT_FRACTION))
    return max(budget, 1)


def in_memory_bytes(n: int, channels: int, size: int) -> int:
    """Peak memory of training on `n` images in memory (see IN_MEMORY_BYTES_PER_PIXEL)."""
    return int(n) * int(channels) * int(size) * int(size) * IN_MEMORY_BYTES_PER_PIXEL


# ---- the streamed set -----------------------------------------------------------------------
_PREADV = getattr(os, "preadv", None)


@dataclasses.dataclass(repr=False)
class StreamedImageSet(ImageSet):
    """An ImageSet whose images stay in a cache file (``images`` is a read-only memory map)."""

    cache_file: str = ""
    data_offset: int = 0  # bytes before the first image in cache_file (the .npy header)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fd: int | None = None
        self._fd_lock = threading.Lock()

    @property
    def row_bytes(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def _descriptor(self) -> int:
        with self._fd_lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.cache_file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                except OSError as e:
                    raise DatasetError(f"The decode cache {self.cache_file} cannot be read ({e.strerror or e}); "
                                       "load the folder again.") from None
            return self._fd

    def read_rows(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Images `idx` (any order, repeats allowed) as a new (len(idx), C, H, W) uint8 array,
        read with plain file reads (no memory map, so nothing stays resident afterwards)."""
        idx = np.asarray(idx, dtype=np.int64)
        n = len(idx)
        if out is None:
            out = np.empty((n, *self.shape), dtype=np.uint8)
        if n == 0:
            return out
        if idx.min() < 0 or idx.max() >= self.n:
            raise IndexError(f"image index out of range 0..{self.n - 1}")
        fd, row = self._descriptor(), self.row_bytes
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        flat = out.reshape(n, row)
        k = 0
        while k < n:
            j = k + 1  # merge rows that are neighbours both in the file and in `out`
            while j < n and s[j] == s[j - 1] + 1 and order[j] == order[j - 1] + 1:
                j += 1
            start = int(order[k])
            view = memoryview(flat[start:start + (j - k)]).cast("B")
            self._read_into(fd, view, self.data_offset + int(s[k]) * row)
            k = j
        return out

    def _read_into(self, fd: int, view: memoryview, offset: int) -> None:
        while len(view):
            try:
                if _PREADV is not None:
                    got = _PREADV(fd, [view], offset)
                else:  # pragma: no cover - platforms without preadv
                    data = os.pread(fd, len(view), offset)
                    view[:len(data)] = data
                    got = len(data)
            except OSError as e:
                raise DatasetError(f"Reading the decode cache {self.cache_file} failed ({e.strerror or e}).") from None
            if got <= 0:
                raise DatasetError(f"The decode cache {self.cache_file} is shorter than its header says; "
                                   "delete its folder and load the data again.")
            view, offset = view[got:], offset + got

    def summary(self) -> str:
        return super().summary() + "; streamed from a decode cache"

    def plain(self) -> ImageSet:
        """The same set as a plain ImageSet (its images still the memory map)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(ImageSet)}
        return ImageSet(**values)

    def subset(self, idx) -> ImageSet:  # type: ignore[override]
        """The selected images, in memory (an ordinary ImageSet), read with file reads: the memory map
        is not touched, so the pages of the whole file do not become resident."""
        sel = np.arange(self.n)[idx] if isinstance(idx, slice) else np.asarray(idx)
        if sel.dtype == np.bool_:
            sel = np.flatnonzero(sel)
        sel = sel.astype(np.intp, copy=False)
        return dataclasses.replace(
            self.plain(), images=self.read_rows(sel),
            labels=None if self.labels is None else self.labels[sel], class_names=list(self.class_names),
            factors=None if self.factors is None else self.factors[sel], factor_names=list(self.factor_names),
            skipped=list(self.skipped), files=None if self.files is None else [self.files[i] for i in sel],
        )

    def close(self) -> None:
        with self._fd_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fd"], state["_fd_lock"] = None, None
        return state


def is_streamed(data: Any) -> bool:
    return isinstance(data, StreamedImageSet)


class Prefetcher:
    """Reads the batches `index_batches` names from a StreamedImageSet on a background thread,
    `depth` batches ahead of the consumer, so reading overlaps with training. Iterate it once;
    `close()` (or leaving the loop) stops the thread. A reading error is raised in the consumer.

    `transform` (optional) runs on the thread too, e.g. `torch.from_numpy(a).pin_memory()`."""

    _END = object()

    def __init__(self, data: StreamedImageSet, index_batches: Iterable[np.ndarray], depth: int = 4,
                 transform: Callable[[np.ndarray], Any] | None = None):
        self.data, self.batches, self.transform = data, index_batches, transform
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, name="aestudio-prefetch", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for idx in self.batches:
                if self.stop.is_set():
                    return
                rows = self.data.read_rows(idx)
                if not self._put(self.transform(rows) if self.transform else rows):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(e)
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                item = self.q.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.q.get_nowait()


# ---- loading ---------------------------------------------------------------------------------
def load_folder_budgeted(
    path: str | Path,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    channels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    background: str = "auto",
    budget: int | None = None,
    cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
    force_stream: bool = False,
    loader: Callable[..., ImageSet] | None = None,
) -> ImageSet:
    """The folder in memory (`load_folder`) when training on it fits `budget` bytes (default:
    `default_budget()`), else a StreamedImageSet over its decode cache (built when missing or
    stale). `note(text)` hears about cache decisions (one line each)."""
    from .folder import load_folder as default_loader

    load_folder = loader or default_loader  # the in-memory path (load_dataset passes its own name for it)
    wanted = parse_background(background)
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        return load_folder(path, image_size=image_size, channels=channels, progress=progress, background=background)
    listing = list_folder(root, progress)
    files, file_labels, class_names, skipped, linked = listing
    budget = default_budget() if budget is None else int(budget)
    need = in_memory_bytes(len(files), channels or 3, image_size)
    if not force_stream and need <= budget:  # in memory, with the listing just made (not a second walk)
        return load_folder(path, image_size=image_size, channels=channels, progress=progress, background=background,
                           listing=listing)
    if note is not None:
        note(f"{root.name}: {len(files):,} images would need about {fmt_size(need)} in memory, more than the "
             f"budget of {fmt_size(budget)}; streaming them from a decode cache")
    cache = _Cache(root, image_size, channels, wanted, files, Path(cache_dir) if cache_dir else None)
    return cache.open_or_build(files, file_labels, class_names, skipped, linked, progress, note)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy (version 1.0) header for uint8 `shape`, always HEADER_BYTES long, so it can be rewritten in
    place once the number of images that decoded is known."""
    text = "{'descr': '|u1', 'fortran_order': False, 'shape': %s, }" % (tuple(int(v) for v in shape),)
    body = text.ljust(HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


HEADER_BYTES = 128


class _Cache:
    """A decode cache entry of the folder loader's cache (`cache.ArrayCache`: `<digest>.npy` + `<digest>.json`,
    keyed by the files and the options exactly as `load_folder` keys it), built a chunk at a time."""

    def __init__(self, root: Path, size: int, channels: int | None, wanted, files: list[str], base: Path | None):
        from .cache import ArrayCache, cache_root, folder_key
        from .folder import MAX_IMAGE_PIXELS

        self.root, self.size, self.channels = root, size, channels
        base = base if base is not None else cache_root()
        if base is None:
            raise DatasetError(f"{root.name} is too large for the memory budget and needs the decode cache, which is "
                               "switched off (AESTUDIO_FOLDER_CACHE); switch it on, or pass --cache-dir DIR.")
        key = folder_key(files, size=size, channels=channels, background=wanted, max_pixels=MAX_IMAGE_PIXELS)
        self.entry = ArrayCache(key, root=base)
        self.dir = base
        self.data_file = self.entry.data_path
        # which entry holds this folder with these options now (an older one is stale once files change)
        where = json.dumps([str(root), size, channels, wanted if isinstance(wanted, str) else list(wanted)])
        self.pointer = base / f"{hashlib.sha256(where.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.latest"

    def _fail(self, e: OSError, doing: str) -> DatasetError:
        reason = e.strerror or str(e)
        full = e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
        hint = ("free some space or choose another cache folder (--cache-dir)" if full
                else "choose a writable cache folder (--cache-dir)")
        return DatasetError(f"Cannot {doing} the decode cache in {self.dir} ({reason}); {hint}.")

    def open_or_build(self, files, file_labels, class_names, skipped, linked, progress, note):
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._fail(e, "create") from None
        with self._locked(progress):
            hit = self.entry.load()
            if hit is not None:
                opened = self._open(hit[0], hit[1], files, file_labels, class_names, skipped)
                if opened is not None:
                    if note is not None:
                        note(f"using the decode cache {self.data_file}")
                    self._point()
                    return opened
            self._forget_stale(note)
            self._build(files, class_names, linked, progress)
            self._point()
            hit = self.entry.load()
            opened = None if hit is None else self._open(hit[0], hit[1], files, file_labels, class_names, skipped)
            if opened is None:
                raise DatasetError(f"The decode cache {self.data_file} could not be read back after building it.")
            return opened

    def _forget_stale(self, note) -> None:
        """Delete the entry this folder had before its files changed (it would only take disk space)."""
        try:
            old = self.pointer.read_text(encoding="utf-8").strip()
        except OSError:
            return
        if not re.fullmatch(r"[0-9a-f]{32}", old) or old == self.entry.digest:
            return
        if note is not None:
            note(f"the decode cache of {self.root.name} is out of date (files were added, removed or changed "
                 "since it was built); decoding the folder again")
        for suffix in (".npy", ".json"):
            with contextlib.suppress(OSError):
                (self.dir / f"{old}{suffix}").unlink()

    def _point(self) -> None:
        with contextlib.suppress(OSError):
            tmp = self.pointer.with_name(self.pointer.name + ".tmp")
            tmp.write_text(self.entry.digest, encoding="utf-8")
            os.replace(tmp, self.pointer)

    @contextlib.contextmanager
    def _locked(self, progress):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock (one builder at a time is the user's job)
            yield
            return
        try:
            fd = os.open(self.dir / f".{self.entry.digest}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise self._fail(e, "write") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if progress is not None:
                        progress(0, 0)  # another process is building this cache: wait for it
                    time.sleep(HEARTBEAT_S)
            yield
        finally:
            os.close(fd)

    def _open(self, array, meta, files, file_labels, class_names, skipped) -> StreamedImageSet | None:
        """The StreamedImageSet of a cache entry; None when the entry does not fit the files (as the loader checks)."""
        try:
            kept, failed = meta.get("kept"), meta.get("failed")
            kept = list(range(len(files))) if kept is None else [int(i) for i in kept]
            failed = [(int(i), str(reason)) for i, reason in failed]
            if (len(kept) != array.shape[0] or not kept or array.ndim != 4 or array.shape[1] not in (1, 3)
                    or tuple(array.shape[2:]) != (self.size, self.size) or array.dtype != np.uint8
                    or any(not 0 <= i < len(files) for i in kept + [i for i, _ in failed])):
                return None
            fraction = meta.get("transparent_fraction")
            used = meta.get("background")
            high_bits = meta.get("high_bits")
            high_bits = None if high_bits is None else int(high_bits)
        except (TypeError, ValueError, AttributeError):
            return None
        return StreamedImageSet(
            name=self.root.name or str(self.root), images=array,
            labels=None if class_names is None else np.asarray(file_labels, dtype=np.int64)[kept],
            class_names=class_names or [],
            skipped=sorted(skipped + [(files[i], reason) for i, reason in failed], key=lambda it: _natural_key(it[0])),
            source=str(self.root), files=[files[i] for i in kept],
            transparent_fraction=None if fraction is None else float(fraction),
            background=None if used is None else str(used), high_bits=high_bits,
            cache_file=str(self.data_file), data_offset=int(array.offset),
        )

    def _build(self, files, class_names, linked, progress) -> dict:
        total = len(files)
        channels = self.channels or 3
        plane = self.size * self.size
        need = HEADER_BYTES + total * channels * plane
        try:
            free = shutil.disk_usage(self.dir).free
        except OSError:
            free = None
        if free is not None and free < need:
            raise DatasetError(f"Not enough space for the decode cache in {self.dir}: it needs about "
                               f"{fmt_size(need)} but {fmt_size(free)} is free; free some space or choose another "
                               "cache folder (--cache-dir).")
        tmp = self.dir / f".{self.entry.digest}.npy.building"
        kept: list[int] = []
        failed: list[tuple[int, str]] = []
        colour = self.channels is not None  # with channels=None: did any image have colour?
        bg = self.entry.key.get("background")
        bg = tuple(bg) if isinstance(bg, list) else bg
        transparent, with_alpha = 0.0, False
        high_bits: int | None = None  # like "auto", the first chunk with 16/32-bit images decides the depth
        try:
            with open(tmp, "wb") as out:
                out.write(_npy_header((total, channels, self.size, self.size)))
                for start in range(0, total, CHUNK):
                    chunk = files[start:start + CHUNK]

                    def chunk_progress(done: int, _total: int, start=start) -> None:
                        if progress is not None:
                            progress(start + done if _total else 0, total if _total else 0)

                    results = _decode_all(chunk, str(self.root), self.size, self.channels, chunk_progress, linked)
                    keep = [i for i, r in enumerate(results) if not isinstance(r, _Skip)]
                    failed += [(start + i, str(r)) for i, r in enumerate(results) if isinstance(r, _Skip)]
                    arrays = [results[i] for i in keep]
                    if bg == "auto" and any(isinstance(a, _Alpha) for a in arrays):
                        bg = _auto_background([a for a in arrays if isinstance(a, _Alpha)])
                    fraction, _used = _composite(arrays, bg, self.size, self.channels)
                    high_bits = _harmonize_depth(arrays, high_bits)
                    if fraction is not None:
                        with_alpha = True
                        transparent += fraction * len(arrays)
                    block = np.empty((len(arrays), channels, self.size, self.size), dtype=np.uint8)
                    for row, a in zip(block, arrays, strict=True):
                        if a.ndim == 2:
                            row[...] = a
                        else:
                            colour = True
                            row[...] = a.transpose(2, 0, 1) if channels == 3 else to_grayscale(a, axis=2)
                    out.write(block.tobytes())
                    kept += [start + i for i in keep]
                    del results, arrays, block
                if not kept:
                    raise DatasetError(_nothing_loaded(self.root, [(files[i], r) for i, r in failed]))
                out.seek(0)
                out.write(_npy_header((len(kept), channels, self.size, self.size)))
                out.truncate(HEADER_BYTES + len(kept) * channels * plane)
                out.flush()
                os.fsync(out.fileno())
            if self.channels is None and not colour:
                self._to_gray(tmp, len(kept))
                channels = 1
            meta = {"kept": None if len(kept) == total else kept, "failed": failed,
                    "transparent_fraction": (transparent / len(kept)) if with_alpha else None,
                    "background": (background_name(bg) if isinstance(bg, tuple) else None) if with_alpha else None,
                    "high_bits": high_bits}
            sidecar = json.dumps({"key": self.entry.key, "shape": [len(kept), channels, self.size, self.size],
                                  "dtype": "uint8", "meta": meta})
            os.replace(tmp, self.data_file)
            side_tmp = self.dir / f".{self.entry.digest}.json.building"
            with open(side_tmp, "w", encoding="utf-8") as f:
                f.write(sidecar)
                f.flush()
                os.fsync(f.fileno())
            os.replace(side_tmp, self.entry.meta_path)  # the sidecar last: a half-built entry is never read
            return meta
        except OSError as e:
            raise self._fail(e, "write") from None
        finally:
            for leftover in (tmp, self.dir / f".{self.entry.digest}.json.building", self.dir / f".{self.entry.digest}.gray"):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _to_gray(self, tmp: Path, n: int) -> None:
        """Rewrite an RGB entry whose images all turned out gray as one channel (a chunk at a time)."""
        plane = self.size * self.size
        gray = self.dir / f".{self.entry.digest}.gray"
        with open(tmp, "rb") as src, open(gray, "wb") as dst:
            src.seek(HEADER_BYTES)
            dst.write(_npy_header((n, 1, self.size, self.size)))
            for start in range(0, n, CHUNK):
                count = min(CHUNK, n - start)
                block = np.frombuffer(src.read(count * 3 * plane), dtype=np.uint8).reshape(count, 3, plane)
                dst.write(np.ascontiguousarray(block[:, 0]).tobytes())  # all three planes are equal
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(gray, tmp)
