"""A small on-disk cache of decoded arrays: ``.npy`` data plus a JSON sidecar, written atomically.

    cache = ArrayCache(folder_key(files, image_size=28, channels=None, background="auto"))
    hit = cache.load()                  # (read-only memory map, metadata dict) or None
    if hit is None:
        images, meta = decode_everything()
        cache.store(images, meta)       # False (and one logged note) when the cache cannot be written

Where
    ``$AESTUDIO_FOLDER_CACHE`` when set (``off``, ``0`` or ``none`` disables caching), else
    ``platformdirs.user_cache_dir("aestudio")/folders``. Each entry is ``<digest>.npy`` and
    ``<digest>.json`` where the digest is a SHA-256 of the key.

Keys
    :func:`folder_key` hashes the folder's image files (path, size, modification and change times,
    inode), the loading options and the loader's format version, so a file that is changed, added,
    removed, renamed or made readable again gives a new key; the old entry is simply not used again.
    Any key made of JSON values works (a string, or a dict as :func:`folder_key` builds).

Safety
    Entries are plain ``.npy`` (read with ``allow_pickle=False``) and JSON; the sidecar repeats the
    key, the shape and the dtype, and an entry whose files disagree with it is ignored. Both files
    are written to temporary names and renamed into place, the sidecar last, so a half-written entry
    is never read. A cache folder that cannot be created or written (read-only, full) disables
    storing for the rest of the process with one logged note; loading never fails because of the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from array import array
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArrayCache", "CACHE_ENV", "cache_root", "folder_key"]

CACHE_ENV = "AESTUDIO_FOLDER_CACHE"
#: Bump when the decoded pixels of the same files and options change (a loader fix).
#: 2: images are turned upright by their EXIF orientation tag; 3: 16/32-bit images are scaled by the
#: bit depth their values use (folder.py, "Bit depth")
FORMAT = 3
_OFF = {"off", "0", "none", "no", "false"}
_MAX_SIDECAR_BYTES = 64 << 20
_log = logging.getLogger(__name__)
_broken: set[str] = set()  # cache roots found unwritable in this process (noted once each)


def cache_root() -> Path | None:
    """The cache folder, or None when caching is switched off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        if env.strip().lower() in _OFF:
            return None
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aestudio")) / "folders"


def folder_key(files: Sequence[str], **options: Any) -> dict[str, Any]:
    """A key for the decoded images of ``files`` with the loading ``options`` (JSON values).

    Every file's path, size, modification and change time (ns) and inode enter the key, so any
    change to the set of files or their contents (even one keeping size and mtime) gives a new key.
    """
    from ... import __version__

    h = hashlib.sha256()
    h.update("\0".join(files).encode("utf-8", "surrogateescape"))
    try:  # the usual case, every file there: one stat each and one hash update for all (reopening is mostly this)
        stats = [(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) for st in map(os.stat, files)]
        try:
            h.update(array("q", chain.from_iterable(stats)).tobytes())
        except OverflowError:  # an inode above 2**63: any integer fits in text
            h.update(repr(stats).encode())
    except OSError:
        for path in files:
            try:
                st = os.stat(path)
                h.update(f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
            except OSError as exc:
                h.update(f"missing {exc.errno}\n".encode())
    return {"format": FORMAT, "aestudio": __version__, "files": len(files), "fingerprint": h.hexdigest(),
            **{k: options[k] for k in sorted(options)}}


class ArrayCache:
    """One cache entry: an array and its metadata under ``key`` (see the module documentation)."""

    def __init__(self, key: Any, root: Path | str | None = None) -> None:
        self.key = json.loads(json.dumps(key))  # as it will read back (tuples become lists)
        text = json.dumps(self.key, sort_keys=True, separators=(",", ":"))
        self.digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        self.root = Path(root) if root is not None else cache_root()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    @property
    def data_path(self) -> Path | None:
        return None if self.root is None else self.root / f"{self.digest}.npy"

    @property
    def meta_path(self) -> Path | None:
        return None if self.root is None else self.root / f"{self.digest}.json"

    def load(self) -> tuple[np.ndarray, dict[str, Any]] | None:
        """``(read-only memory map, metadata)`` of a complete entry for this key, else None."""
        if self.root is None:
            return None
        try:
            with open(self.meta_path, "rb") as fh:  # type: ignore[arg-type]
                raw = fh.read(_MAX_SIDECAR_BYTES + 1)
            if len(raw) > _MAX_SIDECAR_BYTES:
                return None
            side = json.loads(raw)
            if not isinstance(side, dict) or side.get("key") != self.key or not isinstance(side.get("meta"), dict):
                return None
            array = np.load(self.data_path, mmap_mode="r", allow_pickle=False)  # type: ignore[arg-type]
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            return None
        if list(array.shape) != side.get("shape") or str(array.dtype) != side.get("dtype"):
            return None
        return array, side["meta"]

    def store(self, array: np.ndarray, meta: dict[str, Any]) -> bool:
        """Write the entry atomically; False (with one logged note per cache folder) when it cannot be written."""
        if self.root is None:
            return False
        root_text = str(self.root)
        if root_text in _broken:
            return False
        array = np.ascontiguousarray(array)
        sidecar = json.dumps({"key": self.key, "shape": list(array.shape), "dtype": str(array.dtype), "meta": meta})
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._write(self.data_path, lambda fh: np.save(fh, array, allow_pickle=False))  # type: ignore[arg-type]
            self._write(self.meta_path, lambda fh: fh.write(sidecar.encode("utf-8")))  # type: ignore[arg-type]
        except OSError as exc:
            _broken.add(root_text)
            _log.warning("aestudio: note: not caching decoded folders in %s (%s); folders are decoded each time",
                         root_text, exc.strerror or exc)
            return False
        return True

    def _write(self, path: Path, write) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
