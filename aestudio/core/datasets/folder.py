"""Loading a folder of image files, safely.

Layout
    If the folder has subfolders holding images, each top-level subfolder is a class (labels
    follow the subfolder names in natural sort order, ``"2"`` before ``"10"``) and is searched
    recursively; image files directly in the folder are then skipped as "not inside a class
    folder".  Otherwise the folder is flat and unlabelled.  Hidden files and folders (name
    starting with ".") and ``__MACOSX`` folders are ignored; every other file that is not
    loaded is listed in ``ImageSet.skipped`` with the reason.

Reads stay inside the folder
    Only regular files are opened: named pipes, sockets and devices are skipped and reported
    without being opened (so a FIFO called ``a.png`` cannot block loading).  A symlink is
    followed only when its target resolves inside the loaded folder; one pointing outside
    (``zz -> /usr``, ``zz -> /``) is skipped and reported, and the walk never descends into
    it.  Symlink loops inside the folder are walked once.  Files are opened with
    ``O_NONBLOCK`` and checked again with ``fstat`` after opening.

Decoding is allow-listed and bounded
    Files with the extensions in :data:`IMAGE_EXTENSIONS` (any case) are decoded with Pillow
    restricted to :data:`IMAGE_FORMATS` (PNG, JPEG, BMP, GIF, TIFF, WebP), whatever their name
    says, so PostScript/EPS/PDF (which Pillow would hand to Ghostscript) is never decoded.  An
    image with more than :data:`MAX_IMAGE_PIXELS` pixels is refused from its header, before
    decoding (JPEGs are measured after choosing a reduced decoding scale); images decoded at
    once share a memory budget of :data:`DECODE_BUDGET_BYTES`.  Each file must be read and
    decoded within :data:`FILE_TIMEOUT_S` seconds, else it is skipped as timed out; after
    :data:`MAX_TIMEOUTS` such files the load stops with a :class:`DatasetError`.  Listing the
    folder is limited to :data:`SCAN_TIMEOUT_S`.  All reading and decoding happens on daemon
    worker threads: the calling thread only waits, calling ``progress`` at least every
    :data:`HEARTBEAT_S` seconds, so a ``progress`` that raises aborts a load within a fraction
    of a second even while a large file is being decoded.

Pixels
    Turned upright as the EXIF orientation tag says (phone photos are stored sideways with one).
    First frame of animations.  Palette, 1-bit and CMYK images are converted.

Bit depth
    16-bit and 32-bit integer images (and float images whose maximum is above 1) are scaled
    to 8 bits by the bit depth their values use, not by their container's: scientific and
    machine-vision cameras store 10-, 12- or 14-bit values in 16-bit files, and 0..4,095
    divided as if it were 0..65,535 is a near-black picture.  The depth is decided once per
    folder, not per image (a dark image stays dark next to bright ones): the smallest even
    number of bits, at least 8, that holds the brightest value of any such image; a folder of
    12-bit images reads 4,095 as white, one of 8-bit values saved as 16-bit reads 255 as white.
    ``ImageSet.high_bits`` records the depth.  Scaling is integer arithmetic, a block of rows at
    a time; float images with a maximum of at most 1 are read as 0..1.  16-bit colour files are
    not covered: Pillow decodes them as 8-bit RGB from each value's high byte.

Transparency
    Images with alpha are resized with premultiplied alpha and then composited onto the
    ``background``: ``"auto"``, ``"white"``, ``"black"`` or any colour Pillow's ``ImageColor``
    knows (``"#rrggbb"``, ``"gray"``, ...).  ``"auto"`` is decided once per folder, not per
    image: when most opaque pixels (alpha >= 128) of the images with alpha are dark (luma below
    128) the background is white, otherwise black (also when nothing is opaque), so content
    always contrasts with its background.  ``ImageSet.transparent_fraction`` records the
    fraction of all pixels (at the loaded size, over every image) whose alpha was below 128,
    ``None`` when no image has alpha; ``ImageSet.background`` names the background used.

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
    The first files are therefore decoded by one worker and timed.  When many files are left
    (:data:`PROCESS_MIN_FILES`) and each is quick, the rest are decoded in chunks by worker
    processes (a pool started from a fork server, kept for the next folder), with the same
    rules in each; a chunk that makes no progress for :data:`FILE_TIMEOUT_S`, or a broken pool,
    hands its files back to the threads.  Otherwise more threads join when the median image
    takes longer than :data:`THREAD_THRESHOLD_S`.

Cache
    The decoded uint8 images are kept in the user cache (:mod:`.cache`), keyed by the image
    files' paths, sizes, modification and change times and the size, channels, background and
    pixel-limit options.  Opening the same unchanged folder again reads them back instead of
    decoding; a changed, added, removed or renamed file gives a new key.  A load during which
    files timed out or could not be read is not cached.  ``cache=False`` (or
    ``AESTUDIO_FOLDER_CACHE=off``) switches the cache off.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import re
import stat
import sys
import threading
import time
import types
from concurrent import futures
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageColor, ImageOps, UnidentifiedImageError

from .base import DatasetError, ImageSet, resample_filter, to_grayscale

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "MAX_IMAGE_PIXELS",
    "background_name",
    "load_folder",
    "parse_background",
]

Progress = Callable[[int, int], None]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
#: The only formats Pillow may decode (never EPS/PS/PDF or anything calling another program).
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
DEFAULT_IMAGE_SIZE = 28
#: Larger images are refused from their header, before decoding.
MAX_IMAGE_PIXELS = 40_000_000
#: Estimated bytes of the images being decoded at the same time (one image may exceed it alone).
DECODE_BUDGET_BYTES = 1 << 30
#: Seconds one file may take to be read and decoded before it is skipped.
FILE_TIMEOUT_S = 30.0
#: After this many timed-out files the whole load stops with a DatasetError.
MAX_TIMEOUTS = 3
#: Seconds listing the folder may take.
SCAN_TIMEOUT_S = 120.0
#: The calling thread calls ``progress`` at least this often while it waits.
HEARTBEAT_S = 0.2
#: Mean seconds per image above which more decoding threads join.
THREAD_THRESHOLD_S = 120e-6
#: Files left after the probe from which worker processes decode the rest (when each is quick).
PROCESS_MIN_FILES = 1000
#: Median seconds per probed image up to which worker processes are used (slower images: threads).
PROCESS_MAX_S = 0.005
#: Worker processes may be switched off (then only threads decode).
USE_PROCESSES = True
_PROBE = 32  # images decoded by one worker (and timed) before choosing the number of workers
_BATCH = 32  # more workers are worth it only with more than this many files left
_POLL_S = 0.05
_PROBE_POLL_S = 0.002
_GRAY_TOLERANCE = 2
_IGNORED_DIRS = {"__MACOSX"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_MAGIC = ((b"%!PS", "PostScript"), (b"\xc5\xd0\xd3\xc6", "PostScript"), (b"%PDF", "PDF"))
_BACKGROUND_HELP = "use auto, white, black, a colour name such as gray, or #rrggbb"


class _Skip(Exception):
    """A file that is not loaded; the message is the reason recorded in ``skipped``."""


class _Deep(NamedTuple):
    """A 16/32-bit or float image at the target size, scaled to 8 bits from its own bit depth; the
    folder's images are brought to one depth afterwards (:func:`_harmonize_depth`)."""

    array: np.ndarray  # (size, size) uint8: value * 255 / (2 ** bits - 1)
    bits: int


class _Alpha(NamedTuple):
    """A transparent image at the target size: premultiplied RGB and alpha, both uint8."""

    premultiplied: np.ndarray  # (size, size, 3)
    alpha: np.ndarray  # (size, size)


# -- backgrounds ---------------------------------------------------------------------------


def parse_background(value: Any) -> str | tuple[int, int, int]:
    """``"auto"`` or an ``(r, g, b)`` colour; anything else raises :class:`DatasetError`."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text:
            try:
                rgb = ImageColor.getrgb(text)
            except ValueError:
                pass
            else:
                return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    raise DatasetError(f"Unknown background {value!r}: {_BACKGROUND_HELP}.")


def background_name(rgb: tuple[int, int, int]) -> str:
    """``"white"``, ``"black"`` or ``"#rrggbb"``."""
    names = {(255, 255, 255): "white", (0, 0, 0): "black"}
    return names.get(tuple(rgb), "#{:02x}{:02x}{:02x}".format(*rgb))


# -- loading -------------------------------------------------------------------------------


def load_folder(
    path: str | Path,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    channels: int | None = None,
    progress: Progress | None = None,
    background: str = "auto",
    cache: bool = True,
    listing: "Listing | None" = None,
) -> ImageSet:
    """Load every image under ``path`` as described in the module documentation.

    ``progress(done, total)`` counts image files and is called from the calling thread, at
    least every :data:`HEARTBEAT_S` seconds while decoding (``(0, 0)`` while a slow folder is
    still being listed); it may raise to abort loading.  ``background`` is where transparent
    pixels are composited (see "Transparency").  ``cache`` reads and writes the decoded images
    in the user cache (see "Cache").  ``listing``: the folder's listing when the caller has just
    made it (``stream.load_folder_budgeted`` lists once for its memory check and the loading).
    """
    wanted = parse_background(background)
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise DatasetError(f"The folder {root} does not exist.")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder of images.")
    if listing is None:
        listing = list_folder(root, progress)
    files, file_labels, class_names, skipped, linked = _copy_listing(listing)
    store = _cache_for(files, image_size, channels, wanted) if cache else None
    hit = store.load() if store is not None else None
    if hit is not None:
        cached = _from_cache(root, hit, files, file_labels, class_names, skipped, progress)
        if cached is not None:
            return cached
    results = _decode_all(files, str(root), image_size, channels, progress, linked)

    kept = [i for i, result in enumerate(results) if not isinstance(result, _Skip)]
    skipped += [(files[i], str(r)) for i, r in enumerate(results) if isinstance(r, _Skip)]
    if not kept:
        raise DatasetError(_nothing_loaded(root, skipped))
    arrays: list[np.ndarray | _Alpha | _Deep] = [results[i] for i in kept]  # type: ignore[misc]
    fraction, used = _composite(arrays, wanted, image_size, channels)
    high_bits = _harmonize_depth(arrays)
    if channels is None:
        channels = 3 if any(a.ndim == 3 for a in arrays) else 1  # type: ignore[union-attr]
    images = np.empty((len(arrays), channels, image_size, image_size), dtype=np.uint8)
    for out, array in zip(images, arrays, strict=True):
        out[...] = array if array.ndim == 2 else array.transpose(2, 0, 1)  # type: ignore[union-attr]
    if store is not None:
        failed = [(i, str(r)) for i, r in enumerate(results) if isinstance(r, _Skip)]
        if not any(reason.startswith(_TRANSIENT) for _, reason in failed):
            store.store(images, {"kept": None if len(kept) == len(files) else kept, "failed": failed,
                                 "transparent_fraction": fraction, "background": used, "high_bits": high_bits})
    return _image_set(root, images, files, file_labels, kept, class_names, skipped, fraction, used, high_bits)


def _image_set(root: Path, images: np.ndarray, files: list[str], file_labels: list[int], kept: list[int],
               class_names: list[str] | None, skipped: list[tuple[str, str]], fraction: float | None,
               used: str | None, high_bits: int | None = None) -> ImageSet:
    """The ImageSet of a folder load: the kept files' images and labels, skipped files sorted by name."""
    return ImageSet(
        name=root.name or str(root),
        images=images,
        labels=None if class_names is None else np.asarray(file_labels, dtype=np.int64)[kept],
        class_names=class_names or [],
        skipped=sorted(skipped, key=lambda item: _natural_key(item[0])),
        source=str(root),
        files=[files[i] for i in kept],
        transparent_fraction=fraction,
        background=used,
        high_bits=high_bits,
    )


#: Reasons a file was skipped that may not hold next time: such a load is not cached.
_TRANSIENT = ("timed out", "loading was stopped", "file disappeared", "file not readable", "image too large (out of memory")


def _cache_for(files: list[str], size: int, channels: int | None, wanted: str | tuple[int, int, int]):
    from .cache import ArrayCache, cache_root, folder_key

    if cache_root() is None:
        return None  # switched off: no need to stat every file for a key
    return ArrayCache(folder_key(files, size=size, channels=channels, background=wanted,
                                 max_pixels=MAX_IMAGE_PIXELS))


def _from_cache(
    root: Path, hit: tuple[np.ndarray, dict], files: list[str], file_labels: list[int],
    class_names: list[str] | None, skipped: list[tuple[str, str]], progress: Progress | None,
) -> ImageSet | None:
    """The ImageSet a load would give, from a cache entry; None when the entry does not fit the files."""
    array, meta = hit
    kept, failed = meta.get("kept"), meta.get("failed")
    try:
        kept = list(range(len(files))) if kept is None else [int(i) for i in kept]
        failed = [(int(i), str(reason)) for i, reason in failed]
        if (len(kept) != array.shape[0] or not kept or array.ndim != 4 or array.shape[1] not in (1, 3)
                or any(not 0 <= i < len(files) for i in kept + [i for i, _ in failed])):
            return None
        fraction = meta.get("transparent_fraction")
        fraction = None if fraction is None else float(fraction)
        used = meta.get("background")
        used = None if used is None else str(used)
        high_bits = meta.get("high_bits")
        high_bits = None if high_bits is None else int(high_bits)
    except (TypeError, ValueError):
        return None
    if progress is not None:
        progress(0, len(files))
        progress(len(files), len(files))
    images = np.array(array)  # into memory: callers may change their copy
    skipped = skipped + [(files[i], reason) for i, reason in failed]
    return _image_set(root, images, files, file_labels, kept, class_names, skipped, fraction, used, high_bits)


def _composite(
    arrays: list[np.ndarray | _Alpha], wanted: str | tuple[int, int, int], size: int, channels: int | None
) -> tuple[float | None, str | None]:
    """Replace each :class:`_Alpha` in ``arrays`` by its composite; (transparent fraction, background)."""
    which = [k for k, a in enumerate(arrays) if isinstance(a, _Alpha)]
    if not which:
        return None, None
    rgb = _auto_background([arrays[k] for k in which]) if wanted == "auto" else wanted  # type: ignore[misc]
    colour = np.asarray(rgb, dtype=np.uint16)
    transparent = 0
    for k in which:
        premultiplied, alpha = arrays[k]  # type: ignore[misc]
        transparent += int(np.count_nonzero(alpha < 128))
        under = (colour * (255 - alpha.astype(np.uint16))[..., None] + 127) // 255
        flat = np.minimum(premultiplied + under, 255).astype(np.uint8)
        if channels == 1 or (channels is None and _is_gray(flat)):
            arrays[k] = to_grayscale(flat, axis=2)
        else:
            arrays[k] = flat
    return transparent / (len(arrays) * size * size), background_name(rgb)  # type: ignore[arg-type]


def _auto_background(items: list[_Alpha]) -> tuple[int, int, int]:
    """White when most opaque pixels are dark (luma < 128), else black (also when none is opaque)."""
    dark = opaque = 0
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for premultiplied, alpha in items:
        mask = alpha >= 128
        n = int(np.count_nonzero(mask))
        if not n:
            continue
        luma = (premultiplied[mask].astype(np.float32) @ weights) * (255.0 / alpha[mask].astype(np.float32))
        dark += int(np.count_nonzero(luma < 128))
        opaque += n
    return (255, 255, 255) if 2 * dark > opaque else (0, 0, 0)


def list_folder(root: Path, progress: Progress | None = None) -> Listing:
    """The image files under the folder ``root`` (an absolute path), their labels, the class names,
    the files skipped while listing and those reached through a symlink; on a thread that a slow
    drive cannot hang (see :data:`SCAN_TIMEOUT_S`)."""
    stop = threading.Event()
    return _call_abortable(
        lambda: _scan(root, stop), stop, progress, SCAN_TIMEOUT_S,
        f"Listing the folder {root} took longer than {SCAN_TIMEOUT_S:g} s, so loading was stopped "
        "(is it on a drive that stopped responding?).",
    )


def _call_abortable(
    fn: Callable[[], Any], stop: threading.Event, progress: Progress | None, timeout_s: float, timeout_message: str
) -> Any:
    """``fn()`` on a daemon thread; the caller waits, calling ``progress(0, 0)`` after the first 0.5 s."""
    box: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            box["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=target, name="aestudio-scan", daemon=True).start()
    started = time.monotonic()
    beat = started + 0.5
    try:
        while not finished.wait(_POLL_S):
            now = time.monotonic()
            if now - started > timeout_s:
                raise DatasetError(timeout_message)
            if progress is not None and now >= beat:
                beat = now + HEARTBEAT_S
                progress(0, 0)
    except BaseException:
        stop.set()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- scanning ------------------------------------------------------------------------------


_DIGIT_RUNS = re.compile(r"(\d+)")


def _natural_key(text: str) -> list[int | str]:
    """Sort key that orders digit runs numerically and letters case-insensitively.

    Splitting on digit runs puts text at the even places and digit runs at the odd ones, so two keys
    compare text with text and numbers with numbers place by place. Every run ``\\d`` matches is a
    decimal number ``int`` reads (a superscript such as "²" is not a digit run: it stays text)."""
    parts: list[int | str] = _DIGIT_RUNS.split(text.casefold())  # type: ignore[assignment]
    parts[1::2] = [int(p) for p in parts[1::2]]  # type: ignore[arg-type]
    return parts


def _is_image_entry(name: str) -> bool:
    """Whether a file name ends in an image extension, as ``os.path.splitext`` reads it (a leading dot is
    part of the name, not an extension)."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS and name[:dot].strip(".") != ""


def _inside(target: str, root: str) -> bool:
    return target == root or os.path.commonpath([target, root]) == root


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _not_regular(mode: int) -> str:
    return f"not a regular file ({_special_kind(mode)}); not opened"


def _outside(target: str) -> str:
    return f"symlink pointing outside the folder (to {target}); not followed"


def _classify(entry: os.DirEntry, root: str) -> tuple[str, str, tuple[int, int] | None]:
    """("dir" | "file" | "skip", reason when skipped, (device, inode) of a folder)."""
    try:
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not _inside(target, root):
                return "skip", _outside(target), None
            try:
                st = os.stat(entry.path)
            except OSError:
                return "skip", "broken symlink", None
        elif entry.is_file(follow_symlinks=False):
            return "file", "", None  # the directory entry's type says so: no stat call per file
        else:
            st = entry.stat(follow_symlinks=False)  # folders (their inode) and anything unusual
    except OSError as exc:
        return "skip", f"file not readable ({exc.strerror or exc})", None
    if stat.S_ISDIR(st.st_mode):
        return "dir", "", (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode):
        return "file", "", None
    return "skip", _not_regular(st.st_mode), None


def _entries(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return [e for e in it if not e.name.startswith(".")]


def _walk(
    folder: str, key: tuple[int, int], via_link: bool, root: str, root_key: tuple[int, int],
    skipped: list[tuple[str, str]], linked: set[str], stop: threading.Event, walked: list | None = None,
) -> tuple[list[str], list[str]]:
    """Regular files under ``folder`` (staying inside ``root``), recursively, in natural order: the image
    files (by their extension) and the others.

    Files whose path goes through a symlink are added to ``linked`` (checked again when opened);
    every folder listed is added to ``walked``."""
    found: list[str] = []
    other: list[str] = []
    visited = {root_key}
    stack = [(folder, key, via_link)]
    while stack:
        if stop.is_set():
            raise DatasetError("Loading was stopped.")
        current, current_key, current_link = stack.pop()
        if current_key in visited:
            continue  # a symlink loop, or a folder reached twice
        visited.add(current_key)
        if walked is not None:
            walked.append(_folder_stat(current))  # before listing: a change while listing shows later
        try:
            entries = _entries(current)
        except OSError as exc:
            skipped.append((exc.filename or current, f"folder not readable ({exc.strerror or exc})"))
            continue
        for entry in entries:
            kind, reason, dir_key = _classify(entry, root)
            link = current_link or entry.is_symlink()
            if kind == "dir":
                if entry.name not in _IGNORED_DIRS:
                    stack.append((entry.path, dir_key, link))  # type: ignore[arg-type]
            elif kind == "file":
                (found if _is_image_entry(entry.name) else other).append(entry.path)
                if link:
                    linked.add(entry.path)
            else:
                skipped.append((entry.path, reason))
    cut = len(folder) + 1  # every path found starts with folder + separator: sort on the rest (same order, fewer parts)
    return sorted(found, key=lambda p: _natural_key(p[cut:])), other


Listing = tuple[list[str], list[int], "list[str] | None", list[tuple[str, str]], set[str]]
#: Listings of folders scanned in this process: root -> (stats of every folder walked, listing).
_listings: dict[str, tuple[list[tuple[str, tuple[int, ...] | None]], Listing]] = {}
_listings_lock = threading.Lock()


def _folder_stat(path: str) -> tuple[str, tuple[int, ...] | None]:
    try:
        st = os.stat(path)
    except OSError:
        return path, None
    return path, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _copy_listing(listing: Listing) -> Listing:
    files, labels, classes, skipped, linked = listing
    return list(files), list(labels), None if classes is None else list(classes), list(skipped), set(linked)


def _scan(root: Path, stop: threading.Event) -> Listing:
    """Image files, their labels, the class names (None when flat), the skipped files so far, and the
    files reached through a symlink.

    With the folder cache on (see "Cache"), a folder listed before in this process is not listed
    again while none of the folders walked changed (same inode, modification and change times):
    adding, removing or renaming an entry changes its folder's times. Changes inside files do not
    touch the listing; the cache key (per-file sizes and times) sees those."""
    from .cache import cache_root

    top = str(root)
    if cache_root() is None:
        return _scan_folder(root, stop, None)
    with _listings_lock:
        known = _listings.get(top)
    if known is not None and [_folder_stat(p) for p, _ in known[0]] == known[0]:
        return _copy_listing(known[1])
    walked: list[tuple[str, tuple[int, ...] | None]] = []
    listing = _scan_folder(root, stop, walked)
    if all(stat is not None for _, stat in walked):
        with _listings_lock:
            _listings[top] = (walked, _copy_listing(listing))
    return listing


def _scan_folder(root: Path, stop: threading.Event, walked: list | None) -> Listing:
    skipped: list[tuple[str, str]] = []
    linked: set[str] = set()
    top = str(root)
    try:
        st = os.stat(top)
        entries = sorted(_entries(top), key=lambda e: _natural_key(e.name))
    except OSError as exc:
        raise DatasetError(f"Cannot read the folder {root}: {exc.strerror or exc}.") from None
    root_key = (st.st_dev, st.st_ino)
    if walked is not None:
        walked.append(_folder_stat(top))
    top_images: list[str] = []
    top_others: list[str] = []
    subfolders: dict[str, tuple[list[str], list[str]]] = {}  # name -> (image files, other files)
    for entry in entries:
        kind, reason, key = _classify(entry, top)
        if kind == "dir":
            if entry.name not in _IGNORED_DIRS and key != root_key:
                subfolders[entry.name] = _walk(
                    entry.path, key, entry.is_symlink(), top, root_key, skipped, linked, stop,  # type: ignore[arg-type]
                    walked,
                )
        elif kind == "file":
            (top_images if _is_image_entry(entry.name) else top_others).append(entry.path)
            if entry.is_symlink():
                linked.add(entry.path)
        else:
            skipped.append((entry.path, reason))
    classes = [name for name, (images, _) in subfolders.items() if images]

    files: list[str] = []
    labels: list[int] = []
    if classes:
        for label, name in enumerate(classes):
            images = subfolders[name][0]
            files += images
            labels += [label] * len(images)
        skipped += [(p, "not inside a class folder") for p in top_images]
    else:
        files = top_images
    for p in top_others + [p for _, others in subfolders.values() for p in others]:
        extension = os.path.splitext(p)[1]
        skipped.append((p, f"unsupported file type '{extension}'" if extension else "no file extension"))
    return files, labels, classes or None, skipped, linked


def _nothing_loaded(root: Path, skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        extensions = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        return f"No images found in {root} (looked for {extensions} files, subfolders included)."
    kinds = Counter(reason.split(" (")[0].split(";")[0].split(":")[0] for _, reason in skipped)
    details = ", ".join(f"{kind}: {count:,}" for kind, count in kinds.most_common())
    files = "1 file" if len(skipped) == 1 else f"{len(skipped):,} files"
    return f"No readable images in {root}: {files} skipped ({details})."


# -- decoding ------------------------------------------------------------------------------


class _Worker:
    __slots__ = ("current", "started", "abandoned")

    def __init__(self) -> None:
        self.current: int | None = None
        self.started: float | None = None
        self.abandoned = False


class _Budget:
    """Bytes of images being decoded at once; one image larger than the limit runs alone."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def acquire(self, amount: int, stop: threading.Event) -> bool:
        with self.cond:
            while self.used and self.used + amount > self.limit:
                if stop.is_set():
                    return False
                self.cond.wait(_POLL_S)
            self.used += amount
            return True

    def release(self, amount: int) -> None:
        with self.cond:
            self.used -= amount
            self.cond.notify_all()


class _Job:
    """Files decoded by daemon worker threads; the calling thread only watches (see ``_decode_all``)."""

    def __init__(self, files: Sequence[str], root: str, size: int, channels: int | None, linked: set[str]) -> None:
        self.files, self.root, self.size, self.channels, self.linked = files, root, size, channels, linked
        self.n = len(files)
        self.results: list[Any] = [None] * self.n
        self.next = self.done = self.timeouts = 0
        self.durations: list[float] = []
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.budget = _Budget(DECODE_BUDGET_BYTES)

    def spawn(self, count: int = 1) -> None:
        for _ in range(count):
            worker = _Worker()
            with self.lock:
                self.workers.append(worker)
            threading.Thread(target=self._work, args=(worker,), name="aestudio-decode", daemon=True).start()

    def _work(self, worker: _Worker) -> None:
        while True:
            with self.lock:
                if worker.abandoned or self.stop.is_set() or self.next >= self.n:
                    if worker in self.workers:
                        self.workers.remove(worker)
                    return
                i = self.next
                self.next += 1
                worker.current, worker.started = i, time.monotonic()
            started = time.perf_counter()
            path = self.files[i]
            result = _load_one(path, self.size, self.channels, self.root, self._acquire, path in self.linked)
            elapsed = time.perf_counter() - started
            with self.lock:
                if worker.abandoned:
                    return  # the watcher already recorded this file as timed out
                worker.current = worker.started = None
                self.results[i] = result
                self.done += 1
                if len(self.durations) < _PROBE:
                    self.durations.append(elapsed)
                if self.done >= self.n:
                    self.finished.set()

    def _acquire(self, amount: int) -> Callable[[], None] | None:
        """Reserve decoding memory; the release function, or None when loading stopped."""
        if not self.budget.acquire(amount, self.stop):
            return None
        return lambda: self.budget.release(amount)

    def wait_for(self, count: int, progress: Progress | None) -> None:
        """Wait until the first ``count`` files are done (the probing thread's file in hand)."""
        while True:
            with self.lock:
                if self.done >= count:
                    return
            self.check_timeouts()
            time.sleep(_POLL_S / 5)

    def check_timeouts(self) -> None:
        now = time.monotonic()
        hung = 0
        with self.lock:
            for worker in list(self.workers):
                started = worker.started
                if started is None or worker.abandoned or now - started <= FILE_TIMEOUT_S:
                    continue
                worker.abandoned = True
                self.workers.remove(worker)
                self.results[worker.current] = _Skip(  # type: ignore[index]
                    f"timed out (reading and decoding took longer than {FILE_TIMEOUT_S:g} s)"
                )
                self.done += 1
                self.timeouts += 1
                hung += 1
                if self.done >= self.n:
                    self.finished.set()
        if self.timeouts >= MAX_TIMEOUTS:
            raise DatasetError(
                f"Loading stopped: {self.timeouts:,} files took longer than {FILE_TIMEOUT_S:g} s each to read "
                "(is the folder on a drive that stopped responding?)."
            )
        if hung and not self.finished.is_set():
            self.spawn(hung)


def _decode_all(
    files: Sequence[str], root: str, size: int, channels: int | None, progress: Progress | None,
    linked: set[str] | None = None, processes: bool = True,
) -> list[np.ndarray | _Alpha | _Skip]:
    """Decode ``files`` in order: an array (or :class:`_Alpha`) per image, or the :class:`_Skip` explaining a failure."""
    total = len(files)
    if progress is not None:
        progress(0, total)
    if not total:
        return []
    job = _Job(files, root, size, channels, linked or set())
    step = max(1, total // 100)
    reported, last_call = 0, time.monotonic()
    scaled = False
    try:
        job.spawn()
        while True:
            # look often until the probe decided how to decode the rest: the other cores wait for it
            finished = job.finished.wait(_POLL_S if scaled else _PROBE_POLL_S)
            job.check_timeouts()
            if finished or job.finished.is_set():
                break
            with job.lock:
                done, durations = job.done, list(job.durations)
            if not scaled and len(durations) >= min(_PROBE, total):
                scaled = True
                # The median ignores one-off costs such as Pillow importing its format plugins.
                workers = min(16, os.cpu_count() or 1)
                median = float(np.median(durations))
                if processes and USE_PROCESSES and workers > 1 and median <= PROCESS_MAX_S and total - done > PROCESS_MIN_FILES:
                    with job.lock:
                        start, job.next = job.next, job.n  # the probing thread stops after its file in hand
                    _decode_in_processes(job, start, workers, progress)
                    job.wait_for(job.n, progress)
                    break
                if workers > 1 and median > THREAD_THRESHOLD_S and total - done > _BATCH:
                    job.spawn(workers - 1)
            now = time.monotonic()
            if progress is not None and (done - reported >= step or now - last_call >= HEARTBEAT_S):
                reported, last_call = done, now
                progress(done, total)
    except BaseException:
        job.stop.set()  # workers finish the file in hand and stop; nobody waits for them
        raise
    if progress is not None:
        progress(total, total)
    return job.results


# -- worker processes ------------------------------------------------------------------------

_pool: futures.ProcessPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()
#: Extra seconds the first chunk may take while the pool's processes start.
_STARTUP_S = 30.0


def _process_pool(workers: int) -> futures.ProcessPoolExecutor:
    """A pool of ``workers`` processes forked from a fork server that has imported this module
    (never forked from a process running Qt and torch threads), kept for the next folder."""
    global _pool, _pool_workers
    import multiprocessing

    with _pool_lock:
        if _pool is None or _pool_workers != workers or getattr(_pool, "_broken", False):
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload([__name__])
            if _pool is None and _pool_workers == 0:
                atexit.register(_shutdown_pool)  # once per process
            _pool, _pool_workers = futures.ProcessPoolExecutor(workers, mp_context=context), workers
        return _pool


def _shutdown_pool() -> None:
    """At exit: stop the worker processes while the interpreter is still whole."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _plain_main():
    """While worker processes start, ``__main__`` is an empty module: multiprocessing would otherwise
    make each worker run the caller's script again (a user's script without an
    ``if __name__ == "__main__":`` guard would load its folder once more in every worker)."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _decode_chunk(
    paths: list[str], linked: list[bool], root: str, size: int, channels: int | None, max_pixels: int, budget: int,
) -> list[np.ndarray | _Alpha | _Skip | None]:
    """Runs in a worker process: decode ``paths`` as ``_load_one`` does. An image whose decoding
    would need more than ``budget`` bytes is left (None) for the calling process's threads, which
    share one memory budget."""
    global MAX_IMAGE_PIXELS
    MAX_IMAGE_PIXELS = max_pixels  # the caller's limit (tests and users may change it)
    deferred = [False]

    def acquire(cost: int) -> Callable[[], None] | None:
        if cost > budget:
            deferred[0] = True
            return None
        return _no_release

    out: list[np.ndarray | _Alpha | _Skip | None] = []
    for path, link in zip(paths, linked):
        result = _load_one(path, size, channels, root, acquire, link)
        out.append(None if deferred[0] else result)
        deferred[0] = False
    return _pack(out)


def _pack(results: list) -> list | np.ndarray:
    """A chunk of plain images of one shape as one array: one object to send back instead of hundreds."""
    first = results[0] if results else None
    if (isinstance(first, np.ndarray) and all(type(r) is np.ndarray and r.shape == first.shape and r.dtype == first.dtype
                                              for r in results)):
        return np.stack(results)
    return results


def _no_release() -> None:
    return None


def _decode_in_processes(job: _Job, start: int, workers: int, progress: Progress | None) -> None:
    """Decode files ``start:`` of ``job`` in worker processes (see "Speed"); files they cannot finish
    are decoded by threads afterwards. Results land in ``job.results``, counted in ``job.done``."""
    left = job.n - start
    chunk = max(16, min(256, left // (workers * 8) or 16))
    budget = max(1, DECODE_BUDGET_BYTES // workers)
    open_: set[int] = set(range(start, job.n))
    pending: dict[futures.Future, tuple[int, int]] = {}
    try:
        with _plain_main():  # the pool starts its processes during these submits
            pool = _process_pool(workers)
            for lo in range(start, job.n, chunk):
                hi = min(job.n, lo + chunk)
                paths = list(job.files[lo:hi])
                pending[pool.submit(_decode_chunk, paths, [p in job.linked for p in paths], job.root, job.size,
                                    job.channels, MAX_IMAGE_PIXELS, budget)] = (lo, hi)
    except (OSError, RuntimeError, ValueError, ImportError):
        pending = {}  # no processes here (a sandbox, a frozen app): threads do it all
    step = max(1, job.n // 100)
    reported, last_call = 0, time.monotonic()
    last_result = time.monotonic() + _STARTUP_S
    try:
        while pending:
            finished, _ = futures.wait(list(pending), timeout=_POLL_S, return_when=futures.FIRST_COMPLETED)
            now = time.monotonic()
            for future in finished:
                lo, hi = pending.pop(future)
                try:
                    chunk_results = future.result()
                except Exception:  # noqa: BLE001 - a broken pool: the threads take these files
                    continue
                last_result = now
                with job.lock:
                    for i, result in zip(range(lo, hi), chunk_results):  # rows of a packed chunk are views
                        if result is not None:
                            job.results[i] = result
                            job.done += 1
                            open_.discard(i)
            if not finished and now - last_result > FILE_TIMEOUT_S:
                break  # no chunk finished for FILE_TIMEOUT_S: a file hangs; threads (with per-file timeouts) take over
            if progress is not None:
                with job.lock:
                    done = job.done
                if done - reported >= step or now - last_call >= HEARTBEAT_S:
                    reported, last_call = done, now
                    progress(done, job.n)
    finally:
        for future in pending:
            future.cancel()
    if open_:
        _decode_rest_in_threads(job, sorted(open_), progress)


def _decode_rest_in_threads(job: _Job, indices: list[int], progress: Progress | None) -> None:
    base = job.done

    def sub_progress(done: int, _total: int) -> None:
        if progress is not None:
            progress(base + done, job.n)

    results = _decode_all([job.files[i] for i in indices], job.root, job.size, job.channels, sub_progress,
                          {job.files[i] for i in indices if job.files[i] in job.linked}, processes=False)
    with job.lock:
        for i, result in zip(indices, results):
            job.results[i] = result
            job.done += 1


def _load_one(
    path: str, size: int, channels: int | None, root: str, acquire: Callable[[int], Callable[[], None] | None],
    linked: bool = True,
) -> np.ndarray | _Alpha | _Deep | _Skip:
    """One image as ``(size, size)`` or ``(size, size, 3)`` uint8 or :class:`_Alpha`, or the reason it was skipped.

    ``linked``: the path goes through a symlink, so where it leads is checked again; other files are opened
    with ``O_NOFOLLOW`` (a file swapped for a symlink after the scan is not followed)."""
    try:
        return _decode(path, size, channels, root, acquire, linked)
    except _Skip as skip:
        return skip
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _Skip(f"image too large (Pillow refused it as a possible decompression bomb; "
                     f"the limit is {MAX_IMAGE_PIXELS:,} pixels)")
    except UnidentifiedImageError:
        return _Skip("not a readable image (unknown format or corrupt header)")
    except FileNotFoundError:
        return _Skip("file disappeared while loading")
    except MemoryError:
        return _Skip("image too large (out of memory while decoding)")
    except OSError as exc:
        if exc.errno is not None and exc.strerror:
            return _Skip(f"file not readable ({exc.strerror})")
        return _Skip(f"corrupt or truncated image ({' '.join(str(exc).split()) or type(exc).__name__})")
    except Exception as exc:  # Pillow raises many types on damaged data; none may abort loading
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return _Skip(f"corrupt or truncated image ({detail})")


def _decode(
    path: str, size: int, channels: int | None, root: str, acquire: Callable[[int], Callable[[], None] | None],
    linked: bool = True,
) -> np.ndarray | _Alpha:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    if linked:
        target = os.path.realpath(path)
        if not _inside(target, root):
            raise _Skip(_outside(target))
    else:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags), "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Skip(_not_regular(st.st_mode))
        if st.st_size == 0:
            raise _Skip("empty file (0 bytes)")
        head = fh.read(8)
        fh.seek(0)
        for magic, kind in _MAGIC:
            if head.startswith(magic):
                raise _Skip(f"{kind} file, not decoded (only {', '.join(IMAGE_FORMATS)} images are read)")
        with Image.open(fh, formats=IMAGE_FORMATS) as image:
            # JPEG only: decode at the smallest 1/2, 1/4 or 1/8 scale still covering the target.
            image.draft("L" if channels == 1 else None, (size, size))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _Skip(f"image too large ({width:,}×{height:,} pixels; the limit is {MAX_IMAGE_PIXELS:,})")
            cost = width * height * (_bytes_per_pixel(image.mode) + 8)
            release = acquire(cost)
            if release is None:
                raise _Skip("loading was stopped")
            try:
                return _convert(_upright(image), size, channels)
            finally:
                release()


#: formats whose EXIF block is read when the file is opened (PNG's only when it comes before the pixels)
_EXIF_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "TIFF"})


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation tag says (a phone's photo taken upright is stored sideways
    with a tag), so it looks as it does in every image viewer; unchanged when there is no such tag."""
    if image.format not in _EXIF_FORMATS and "exif" not in image.info:
        return image
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: the pixels may still be fine, as stored
        return image
    if orientation not in range(2, 9):
        return image
    return ImageOps.exif_transpose(image)


def _bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _fit(image: Image.Image, size: int) -> Image.Image:
    """Centre square of ``image`` resized to ``size`` x ``size``."""
    width, height = image.size
    if (width, height) == (size, size):
        return image
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.resize(
        (size, size),
        resample_filter((side, side), (size, size)),
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )


def _convert(image: Image.Image, size: int, channels: int | None) -> np.ndarray | _Alpha | _Deep:
    mode = image.mode
    if mode in _HIGH_MODES:
        image, bits = _high_to_8bit(image)
        if bits is not None:
            return _Deep(np.asarray(_fit(image, size)), bits)
    elif mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        premultiplied = _fit(rgba.convert("RGBa"), size)  # resizing premultiplied: no dark fringes
        array = np.asarray(premultiplied)
        return _Alpha(array[..., :3].copy(), array[..., 3].copy())
    elif mode not in ("L", "RGB"):
        image = image.convert("L" if mode == "1" else "RGB")
    if channels == 1 and image.mode == "RGB":
        image = image.convert("L")
    array = np.asarray(_fit(image, size))
    if array.ndim == 3 and channels is None and _is_gray(array):
        return to_grayscale(array, axis=2)
    return array


def _high_to_8bit(image: Image.Image) -> tuple[Image.Image, int | None]:
    """A 16/32-bit integer or float image as "L" scaled from the bit depth its values use
    (:func:`value_bits`), a block of rows at a time (no float64 copy), and that depth; None for a
    float image read as 0..1."""
    mode = image.mode
    values = np.asarray(image)
    del image
    out = np.empty(values.shape, dtype=np.uint8)
    rows = max(1, (1 << 18) // max(1, values.shape[1] if values.ndim == 2 else 1))
    if mode == "F":
        peak = float(np.max(values, where=np.isfinite(values), initial=0.0))
        # 0..1 (no depth), or integer-like values up to `peak` scaled by the bits they use
        bits = None if peak <= 1.0 else value_bits(math.ceil(peak))
        top = 1.0 if bits is None else 2.0**bits - 1
        for lo in range(0, values.shape[0], rows):
            block = np.nan_to_num(values[lo : lo + rows], nan=0.0, posinf=max(peak, 1.0), neginf=0.0)
            block *= np.float32(255.0 / top)
            np.rint(block, out=block)
            out[lo : lo + rows] = np.clip(block, 0, 255)
        return Image.fromarray(out), bits
    bits = value_bits(int(values.max(initial=0)))
    top = (1 << bits) - 1
    for lo in range(0, values.shape[0], rows):
        block = np.clip(values[lo : lo + rows].astype(np.int64), 0, None)
        out[lo : lo + rows] = (510 * block + top) // (2 * top)  # round(v * 255 / top), exact without floats
    return Image.fromarray(out), bits


def value_bits(peak: int) -> int:
    """The bit depth an image whose brightest value is ``peak`` is read at: the smallest even
    number of bits, at least 8, that holds it (4,095 -> 12, 1,000 -> 10, 65,535 -> 16, 200 -> 8)."""
    bits = max(8, int(peak).bit_length())
    return bits + (bits % 2)


def _harmonize_depth(arrays: list, bits: int | None = None) -> int | None:
    """Replace each :class:`_Deep` in ``arrays`` by its image at one bit depth: ``bits``, or (None)
    the deepest of them; returns that depth (None when there is none). An image read at a smaller
    depth is darkened by the ratio of the two ranges. An image deeper than a given ``bits`` (a
    streamed folder fixes the depth with its first images) keeps its own depth."""
    deep = [k for k, a in enumerate(arrays) if isinstance(a, _Deep)]
    if not deep:
        return bits
    if bits is None:
        bits = max(arrays[k].bits for k in deep)
    top = (1 << bits) - 1
    for k in deep:
        array, own = arrays[k]
        if own >= bits:
            arrays[k] = array
            continue
        mine = (1 << own) - 1
        arrays[k] = ((2 * mine * array.astype(np.int64) + top) // (2 * top)).astype(np.uint8)
    return bits


def _is_gray(rgb: np.ndarray) -> bool:
    signed = rgb.astype(np.int16)
    return bool(
        np.abs(signed[..., 0] - signed[..., 1]).max() <= _GRAY_TOLERANCE
        and np.abs(signed[..., 1] - signed[..., 2]).max() <= _GRAY_TOLERANCE
    )
