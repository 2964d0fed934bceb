"""MNIST-format sets: the bundled ``fashion-10k`` and the full ``mnist`` / ``fashion-mnist``.

The full sets are looked up, in order, in

1. the user cache, ``<cache root>/<name>/`` where the cache root is the ``cache_dir`` argument
   or ``platformdirs.user_cache_dir("aestudio")``;
2. system copies listed in :data:`SYSTEM_DIRS` (Debian's ``dataset-fashion-mnist`` package
   installs ``/usr/share/datasets/fashion-mnist/``);
3. otherwise they are downloaded into the user cache from :data:`MIRRORS`, each file written
   to a temporary name, checked against the published MD5 in :data:`RESOURCES`, then renamed.

A folder qualifies when it holds all four IDX files, each gzip-compressed (``.gz``) or not.
Checksums are verified only on downloads: distributions may recompress their copies.
The returned set is the 60,000 training images followed by the 10,000 official test images.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from functools import lru_cache
from http.client import HTTPException
from importlib import resources
from pathlib import Path

import numpy as np
import platformdirs

from .base import DatasetError, ImageSet
from .idx import parse_idx, read_idx

__all__ = [
    "FASHION_CLASSES",
    "MIRRORS",
    "RESOURCES",
    "SYSTEM_DIRS",
    "load_fashion10k",
    "load_mnist_family",
]

Progress = Callable[[int, int], None]

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGIT_CLASSES = [str(d) for d in range(10)]

_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_CLASSES = {"mnist": DIGIT_CLASSES, "fashion-mnist": FASHION_CLASSES}
_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Base URLs tried in order for each set (each ends with "/").
MIRRORS: dict[str, list[str]] = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

#: Published files: (file name, MD5 of the download, approximate size in bytes for progress).
RESOURCES: dict[str, list[tuple[str, str, int]]] = {
    "mnist": [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542),
    ],
    "fashion-mnist": [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29_515),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4_422_102),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5_148),
    ],
}

#: Read-only system-wide copies, searched after the user cache.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "mnist": [Path("/usr/share/datasets/mnist")],
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}

#: Seconds without data before a download attempt is abandoned.
DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 16


# -- bundled fashion-10k -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _fashion10k_arrays() -> tuple[np.ndarray, np.ndarray]:
    folder = resources.files("aestudio") / "data" / "fashion10k"
    arrays = []
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        entry = folder / f"{stem}.gz"
        try:
            data = entry.read_bytes()
        except OSError:
            raise DatasetError(f"The bundled Fashion-MNIST file {stem}.gz is missing; reinstall aestudio.") from None
        arrays.append(parse_idx(data, f"bundled {stem}.gz"))
    images, labels = arrays
    images = images[:, None]
    labels = labels.astype(np.int64)
    _check_pair(images, labels, "the bundled fashion-10k files")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_fashion10k() -> ImageSet:
    """The 10,000-image Fashion-MNIST test split shipped with aestudio (decoded once per process)."""
    images, labels = _fashion10k_arrays()
    return ImageSet(
        name="fashion-10k",
        images=images.copy(),
        labels=labels.copy(),
        class_names=list(FASHION_CLASSES),
        source="bundled",
    )


# -- full MNIST / Fashion-MNIST ------------------------------------------------------------


def load_mnist_family(
    name: str,
    *,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
    progress: Progress | None = None,
) -> ImageSet:
    """``mnist`` or ``fashion-mnist``: 60,000 training then 10,000 test images, 1x28x28.

    ``progress(bytes_done, bytes_total)`` is called while downloading.  It may raise to abort
    the download; no partial file is left behind.
    """
    cache = Path(cache_dir if cache_dir is not None else platformdirs.user_cache_dir("aestudio"))
    cache = cache.expanduser() / name
    folder = next(
        (d for d in (cache, *SYSTEM_DIRS[name]) if _find_files(d) is not None),
        None,
    )
    if folder is None:
        if not allow_download:
            raise DatasetError(f"{_TITLES[name]} is not installed: {_install_hint(name, cache)}")
        _download(name, cache, progress)
        folder = cache
    files = _find_files(folder)
    assert files is not None
    images, labels, n_train = _read_set(name, files, in_cache=folder == cache)
    return ImageSet(
        name=name,
        images=images.copy(),
        labels=labels.copy(),
        class_names=list(_CLASSES[name]),
        source=f"{folder} (train {n_train:,} + test {len(images) - n_train:,})",
    )


def _find_files(folder: Path) -> tuple[Path, ...] | None:
    """The four IDX files in ``folder`` (``.gz`` preferred), or None when any is missing."""
    found = []
    for stem in _STEMS:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return tuple(found)


def _read_set(name: str, files: tuple[Path, ...], in_cache: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Read-only train+test images and labels, and the number of training images."""
    try:
        stamps = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        return _decode_files(stamps)
    except OSError as exc:
        raise DatasetError(f"Cannot read {_TITLES[name]} from {files[0].parent}: {exc.strerror or exc}.") from None
    except DatasetError as exc:
        hint = " Delete it so that it is downloaded again." if in_cache else ""
        raise DatasetError(f"{str(exc).rstrip('.')} ({_TITLES[name]}).{hint}") from None


@lru_cache(maxsize=2)
def _decode_files(stamps: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode train+test once per process per file version (read-only arrays, train count)."""
    train_x, train_y, test_x, test_y = (read_idx(path) for path, _, _ in stamps)
    _check_pair(train_x, train_y, stamps[0][0])
    _check_pair(test_x, test_y, stamps[2][0])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DatasetError(f"{stamps[2][0]} has images of another size than {stamps[0][0]}.")
    images = np.concatenate([train_x, test_x])[:, None]
    labels = np.concatenate([train_y, test_y]).astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels, len(train_x)


def _check_pair(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or labels.ndim != 1:
        raise DatasetError(f"{what} does not hold uint8 images with 1-D labels.")
    if len(images) != len(labels):
        raise DatasetError(f"{what} has {len(images):,} images but {len(labels):,} labels.")
    if len(labels) and labels.max() > 9:
        raise DatasetError(f"{what} has labels above 9.")


def _install_hint(name: str, cache: Path) -> str:
    files = ", ".join(f for f, _, _ in RESOURCES[name])
    hint = f"put {files} into {cache}"
    if name == "fashion-mnist":
        hint += " or run 'sudo apt install dataset-fashion-mnist' (Debian/Ubuntu)"
    return hint + "."


def _download(name: str, cache: Path, progress: Progress | None) -> None:
    """Fetch the files missing from ``cache``, verifying each MD5 before it gets its final name."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"Cannot create the download folder {cache}: {exc.strerror or exc}.") from None
    missing = [
        entry for entry in RESOURCES[name]
        if not any((cache / file).is_file() for file in (entry[0], entry[0].removesuffix(".gz")))
    ]  # fmt: skip
    total = sum(size for _, _, size in missing)
    done = 0
    for filename, md5, _ in missing:
        errors = [] if MIRRORS[name] else ["no download address is configured"]
        for mirror in MIRRORS[name]:
            url = mirror + filename
            try:
                done += _fetch(url, cache / filename, md5, progress, done, total)
                break
            except (OSError, ValueError, HTTPException) as exc:  # network errors, bad checksum
                errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        else:
            with contextlib.suppress(OSError):
                cache.rmdir()  # only succeeds when nothing was downloaded into it
            raise DatasetError(
                f"Could not download {_TITLES[name]} ({'; '.join(errors)}); "
                f"if this computer is offline, {_install_hint(name, cache)}"
            )


class _ChecksumError(ValueError):
    """A downloaded file does not match its published MD5."""


def _fetch(url: str, dest: Path, md5: str, progress: Progress | None, done: int, total: int) -> int:
    """Download ``url`` to ``dest`` via a temporary file; returns the byte count."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(done + size, max(total, done + size))
        if digest.hexdigest() != md5:
            raise _ChecksumError(f"checksum mismatch (MD5 {digest.hexdigest()}, expected {md5})")
        os.replace(tmp, dest)
        return size
    finally:
        tmp.unlink(missing_ok=True)
