"""Loading a folder of image files.

Layout
    If the folder has subfolders holding images, each top-level subfolder is a class (labels
    follow the subfolder names in natural sort order, ``"2"`` before ``"10"``) and is searched
    recursively; image files directly in the folder are then skipped as "not inside a class
    folder".  Otherwise the folder is flat and unlabelled.  Hidden files and folders (name
    starting with ".") and ``__MACOSX`` folders are ignored; every other file that is not
    loaded is listed in ``ImageSet.skipped`` with the reason.

Pixels
    Files with the extensions in :data:`IMAGE_EXTENSIONS` (any case) are decoded with Pillow
    (first frame of animations).  Transparent images are composited onto black (the
    MNIST-like convention of bright strokes on a dark background); palette, 1-bit and CMYK
    images are converted; 16-bit and 32-bit integer images are scaled to 8 bits (a 32-bit
    image whose values all fit in 0..255 is kept as is); float images are read as 0..1 when
    their maximum is at most 1, else clipped to 0..255.

Size and channels
    Each image is centre-cropped to a square (the largest one fitting) and resized to
    ``image_size`` (default 28): LANCZOS when shrinking, BICUBIC when enlarging; JPEGs are
    decoded directly at a reduced scale when they are much larger.  With ``channels=None`` the
    set is RGB (3 channels) when any image has colour, that is a pixel whose R, G and B differ
    by more than 2 levels (tolerating JPEG rounding), and grayscale (1 channel) otherwise.
    Conversion to gray uses Pillow's ITU-R 601-2 luma.

Speed
    Tiny files are dominated by per-file Python work that holds the GIL, where threads only
    add contention; larger ones are dominated by decoding, which Pillow does without the GIL.
    The first files are therefore decoded sequentially and timed, and the rest go to a thread
    pool only when the median image takes longer than :data:`THREAD_THRESHOLD_S`.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import DatasetError, ImageSet, resample_filter, to_grayscale

__all__ = ["DEFAULT_IMAGE_SIZE", "IMAGE_EXTENSIONS", "load_folder"]

Progress = Callable[[int, int], None]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
DEFAULT_IMAGE_SIZE = 28
#: Mean seconds per image above which decoding continues in a thread pool.
THREAD_THRESHOLD_S = 120e-6
_PROBE = 32  # images decoded sequentially (and timed) before choosing the strategy
_BATCH = 32  # images per thread-pool task
_GRAY_TOLERANCE = 2
_IGNORED_DIRS = {"__MACOSX"}


class _Skip(Exception):
    """A file that is not loaded; the message is the reason recorded in ``skipped``."""


def load_folder(
    path: str | Path,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    channels: int | None = None,
    progress: Progress | None = None,
) -> ImageSet:
    """Load every image under ``path`` as described in the module documentation.

    ``progress(done, total)`` counts image files and is called from the calling thread; it
    may raise to abort loading.
    """
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise DatasetError(f"The folder {root} does not exist.")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder of images.")
    files, file_labels, class_names, skipped = _scan(root)
    results = _decode_all(files, image_size, channels, progress)

    kept = [i for i, result in enumerate(results) if isinstance(result, np.ndarray)]
    skipped += [(files[i], str(r)) for i, r in enumerate(results) if isinstance(r, _Skip)]
    if not kept:
        raise DatasetError(_nothing_loaded(root, skipped))
    arrays = [results[i] for i in kept]
    if channels is None:
        channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    images = np.empty((len(arrays), channels, image_size, image_size), dtype=np.uint8)
    for out, array in zip(images, arrays, strict=True):
        out[...] = array if array.ndim == 2 else array.transpose(2, 0, 1)
    return ImageSet(
        name=root.name or str(root),
        images=images,
        labels=None if class_names is None else np.asarray(file_labels, dtype=np.int64)[kept],
        class_names=class_names or [],
        skipped=sorted(skipped, key=lambda item: _natural_key(item[0])),
        source=str(root),
        files=[files[i] for i in kept],
    )


# -- scanning ------------------------------------------------------------------------------


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders digit runs numerically and letters case-insensitively."""
    return [(0, int(part)) if part.isdigit() else (1, part.casefold()) for part in re.split(r"(\d+)", text)]


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(folder: Path, skipped: list[tuple[str, str]]) -> list[str]:
    """Non-hidden files under ``folder``, recursively, in natural order; unreadable folders are skipped."""

    def on_error(exc: OSError) -> None:
        skipped.append((exc.filename or str(folder), f"folder not readable ({exc.strerror or exc})"))

    found = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _IGNORED_DIRS]
        found += [os.path.join(dirpath, f) for f in filenames if not f.startswith(".")]
    return sorted(found, key=_natural_key)


def _scan(root: Path) -> tuple[list[str], list[int], list[str] | None, list[tuple[str, str]]]:
    """Image files, their labels, the class names (None when flat) and the skipped files so far."""
    skipped: list[tuple[str, str]] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: _natural_key(e.name))
    except OSError as exc:
        raise DatasetError(f"Cannot read the folder {root}: {exc.strerror or exc}.") from None
    top_files = [e.path for e in entries if not e.name.startswith(".") and not e.is_dir()]
    subfolders = {
        e.name: _walk(Path(e.path), skipped)
        for e in entries
        if e.is_dir() and not e.name.startswith(".") and e.name not in _IGNORED_DIRS
    }
    classes = [name for name, paths in subfolders.items() if any(map(_is_image_name, paths))]

    files: list[str] = []
    labels: list[int] = []
    others = [p for paths in subfolders.values() for p in paths]
    if classes:
        for label, name in enumerate(classes):
            images = [p for p in subfolders[name] if _is_image_name(p)]
            files += images
            labels += [label] * len(images)
        skipped += [(p, "not inside a class folder") for p in top_files if _is_image_name(p)]
        top_files = [p for p in top_files if not _is_image_name(p)]
        others = [p for p in others if not _is_image_name(p)]
    else:
        files = [p for p in top_files if _is_image_name(p)]
        top_files = [p for p in top_files if not _is_image_name(p)]
    for p in top_files + others:
        extension = os.path.splitext(p)[1]
        skipped.append((p, f"unsupported file type '{extension}'" if extension else "no file extension"))
    return files, labels, classes or None, skipped


def _nothing_loaded(root: Path, skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        extensions = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        return f"No images found in {root} (looked for {extensions} files, subfolders included)."
    kinds = Counter(reason.split(" (")[0].split(":")[0] for _, reason in skipped)
    details = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
    files = "1 file" if len(skipped) == 1 else f"{len(skipped):,} files"
    return f"No readable images in {root}: {files} skipped ({details})."


# -- decoding ------------------------------------------------------------------------------


def _decode_all(
    files: Sequence[str], size: int, channels: int | None, progress: Progress | None
) -> list[np.ndarray | _Skip]:
    """Decode ``files`` in order: an array per image, or the :class:`_Skip` explaining a failure."""
    total = len(files)
    results: list[np.ndarray | _Skip] = [_Skip("not decoded")] * total  # all overwritten
    step = max(1, total // 100)
    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        if progress is not None and (done - reported >= step or done == total):
            reported = done
            progress(done, total)

    if progress is not None:
        progress(0, total)
    probe = min(_PROBE, total)
    durations = []
    for i in range(probe):
        started = time.perf_counter()
        results[i] = _load_one(files[i], size, channels)
        durations.append(time.perf_counter() - started)
        report(i + 1)
    # The median ignores one-off costs such as Pillow importing its format plugins.
    per_image = float(np.median(durations)) if durations else 0.0
    workers = min(16, os.cpu_count() or 1)
    if workers > 1 and per_image > THREAD_THRESHOLD_S and total - probe > _BATCH:
        _decode_threaded(files, probe, size, channels, workers, results, report)
    else:
        for i in range(probe, total):
            results[i] = _load_one(files[i], size, channels)
            report(i + 1)
    return results


def _decode_threaded(
    files: Sequence[str],
    start: int,
    size: int,
    channels: int | None,
    workers: int,
    results: list[np.ndarray | _Skip],
    report: Callable[[int], None],
) -> None:
    """Decode ``files[start:]`` in a thread pool, reporting progress from this thread."""

    def batch(lo: int, hi: int) -> tuple[int, list[np.ndarray | _Skip]]:
        return lo, [_load_one(files[i], size, channels) for i in range(lo, hi)]

    done = start
    pool = ThreadPoolExecutor(workers, thread_name_prefix="aestudio-decode")
    try:
        pending = {pool.submit(batch, lo, min(lo + _BATCH, len(files))) for lo in range(start, len(files), _BATCH)}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                lo, decoded = future.result()
                results[lo : lo + len(decoded)] = decoded
                done += len(decoded)
            report(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _load_one(path: str, size: int, channels: int | None) -> np.ndarray | _Skip:
    """One image as ``(size, size)`` or ``(size, size, 3)`` uint8, or the reason it was skipped."""
    try:
        return _decode(path, size, channels)
    except Image.DecompressionBombError as exc:
        return _Skip(f"image too large ({exc})")
    except UnidentifiedImageError:
        return _Skip(_empty_or(path, "not a readable image (unknown format or corrupt header)"))
    except FileNotFoundError:
        return _Skip("file disappeared while loading")
    except Exception as exc:  # Pillow raises many types on damaged data; none may abort loading
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return _Skip(_empty_or(path, f"corrupt or truncated image ({detail})"))


def _empty_or(path: str, reason: str) -> str:
    try:
        return "empty file (0 bytes)" if os.path.getsize(path) == 0 else reason
    except OSError as exc:
        return f"file not readable ({exc.strerror or exc})"


def _decode(path: str, size: int, channels: int | None) -> np.ndarray:
    with Image.open(path) as image:
        # JPEG only: decode at the smallest 1/2, 1/4 or 1/8 scale still covering the target.
        image.draft("L" if channels == 1 else None, (size, size))
        image = _to_8bit(image)
        if channels == 1 and image.mode == "RGB":
            image = image.convert("L")
        width, height = image.size
        if (width, height) != (size, size):
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.resize(
                (size, size),
                resample_filter((side, side), (size, size)),
                box=(left, top, left + side, top + side),
                reducing_gap=3.0,
            )
        array = np.asarray(image)
    if array.ndim == 3 and channels is None and _is_gray(array):
        return to_grayscale(array, axis=2)
    return array


def _to_8bit(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit "L" or "RGB", transparency composited onto black."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = values.max(initial=0.0)
        if mode == "F":
            values = np.nan_to_num(values) * (255.0 if peak <= 1.0 else 1.0)
        elif mode != "I" or peak > 255:
            values = values / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if mode in ("L", "RGB"):
        return image
    return image.convert("L" if mode == "1" else "RGB")


def _is_gray(rgb: np.ndarray) -> bool:
    signed = rgb.astype(np.int16)
    return bool(
        np.abs(signed[..., 0] - signed[..., 1]).max() <= _GRAY_TOLERANCE
        and np.abs(signed[..., 1] - signed[..., 2]).max() <= _GRAY_TOLERANCE
    )
