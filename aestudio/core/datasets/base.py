"""The :class:`ImageSet` container, :class:`DatasetError`, and array-level helpers.

Everything here works on uint8 arrays shaped ``(N, C, H, W)`` with ``C`` in ``{1, 3}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

__all__ = [
    "DatasetError",
    "ImageSet",
    "convert_channels",
    "resample_filter",
    "resize_images",
    "split_indices",
    "to_grayscale",
]


class DatasetError(Exception):
    """A dataset could not be loaded or used; the message is one sentence meant for users."""


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} " + (word if count == 1 else plural or word + "s")


@dataclass(repr=False)
class ImageSet:
    """A set of uint8 images with optional class labels and generative factors.

    ``images`` is ``(N, C, H, W)`` uint8 with ``C`` in ``{1, 3}``.  ``labels`` (int64, ``(N,)``)
    index into ``class_names``; it is ``None`` for unlabelled sets (then ``class_names`` is
    empty).  ``factors`` (float32, ``(N, F)``) holds known generative factors named by
    ``factor_names`` (only the procedural ``shapes`` set has them).  ``skipped`` lists
    ``(file path, reason)`` for every file of a folder that was not loaded; ``files`` names the
    file each image came from (folders only, else ``None``).  ``transparent_fraction`` is the
    fraction of all pixels that were transparent (alpha below 128) before compositing, ``None``
    for sets without alpha; ``background`` names what transparent pixels were composited onto
    (``"white"``, ``"black"`` or ``"#rrggbb"``; ``None`` when nothing was composited).
    ``high_bits`` is the bit depth the folder's 16/32-bit or float images were scaled from
    (12 when 4,095 became white; ``None`` when there were none).  All three are kept by
    :meth:`subset`, :meth:`filter_classes` and ``dataclasses.replace``.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray | None
    class_names: list[str]
    factors: np.ndarray | None = None
    factor_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    files: list[str] | None = None
    transparent_fraction: float | None = None
    background: str | None = None
    high_bits: int | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"ImageSet images must be uint8 (N, C, H, W) with C in {{1, 3}}, got {images.dtype} {images.shape}"
            )
        self.images = images
        n = images.shape[0]
        if self.labels is None:
            if self.class_names:
                raise ValueError("ImageSet without labels must have no class_names")
        else:
            labels = np.asarray(self.labels, dtype=np.int64)
            if labels.shape != (n,):
                raise ValueError(f"ImageSet labels must have shape ({n},), got {labels.shape}")
            if n and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise ValueError("ImageSet labels must index into class_names")
            self.labels = labels
        if self.factors is not None:
            factors = np.asarray(self.factors, dtype=np.float32)
            if factors.shape != (n, len(self.factor_names)):
                raise ValueError(
                    f"ImageSet factors must have shape ({n}, {len(self.factor_names)}), got {factors.shape}"
                )
            self.factors = factors

    # -- shape -------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def height(self) -> int:
        return int(self.images.shape[2])

    @property
    def width(self) -> int:
        return int(self.images.shape[3])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, self.height, self.width)

    # -- views -------------------------------------------------------------------------
    def as_float(self) -> np.ndarray:
        """The images as float32 in ``[0, 1]``, same shape (a new array)."""
        return np.multiply(self.images, np.float32(1.0 / 255.0), dtype=np.float32)

    def subset(self, idx: np.ndarray | Iterable[int] | slice) -> ImageSet:
        """The images selected by ``idx`` (integer indices, boolean mask or slice).

        Class and factor names, ``skipped`` and ``source`` are kept; labels and factors are
        sliced along with the images.
        """
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.dtype != np.bool_:
                idx = idx.astype(np.intp, copy=False)
        return replace(
            self,
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            class_names=list(self.class_names),
            factors=None if self.factors is None else self.factors[idx],
            factor_names=list(self.factor_names),
            skipped=list(self.skipped),
            files=None if self.files is None else list(np.asarray(self.files, dtype=object)[idx]),
        )

    def filter_classes(self, classes: Iterable[int | str] | int | str) -> ImageSet:
        """Only the images whose class is in ``classes`` (indices or class names).

        Names match exactly first, then case-insensitively.  Labels keep their original
        indices, so ``class_names`` is unchanged.  Raises :class:`DatasetError` for an
        unknown class, an unlabelled set, or a selection without images.
        """
        if self.labels is None:
            raise DatasetError(
                f"{self.name} has no classes (its images are not sorted into class folders), "
                "so it cannot be filtered by class."
            )
        if isinstance(classes, (str, int, np.integer)):
            classes = [classes]
        wanted = sorted({self._class_index(c) for c in classes})
        if not wanted:
            raise DatasetError(f"No classes were selected from {self.name}.")
        mask = np.isin(self.labels, wanted)
        if not mask.any():
            names = ", ".join(self.class_names[i] for i in wanted)
            raise DatasetError(f"{self.name} has no images of the selected classes ({names}).")
        return self.subset(mask)

    def _class_index(self, cls: int | str) -> int:
        names = self.class_names
        if isinstance(cls, (int, np.integer)) and not isinstance(cls, bool):
            if 0 <= cls < len(names):
                return int(cls)
        elif isinstance(cls, str):
            if cls in names:
                return names.index(cls)
            folded = [i for i, name in enumerate(names) if name.casefold() == cls.casefold()]
            if len(folded) == 1:
                return folded[0]
        valid = ", ".join(f"{i} '{name}'" for i, name in enumerate(names))
        raise DatasetError(f"Unknown class {cls!r} for {self.name}; valid classes are {valid}.")

    # -- text --------------------------------------------------------------------------
    def summary(self) -> str:
        """One line, e.g. ``"fashion-10k: 10,000 images 1x28x28, 10 classes"``, ending with
        :meth:`transparency_note` when most pixels were transparent."""
        c, h, w = self.shape
        text = f"{self.name}: {_plural(self.n, 'image')} {c}x{h}x{w}, "
        text += "unlabelled" if self.labels is None else _plural(len(self.class_names), "class", "classes")
        if self.skipped:
            text += f", {_plural(len(self.skipped), 'file')} skipped"
        for note in (self.depth_note(), self.transparency_note()):
            if note:
                text += f"; {note}"
        return text

    def depth_note(self) -> str | None:
        """How images of more than 8 bits were read when that was not as 16-bit, e.g. ``"images of
        more than 8 bits read as 12-bit (4,095 is white)"``; None otherwise."""
        bits = self.high_bits
        if bits is None or bits == 16:
            return None
        return f"images of more than 8 bits read as {bits}-bit ({(1 << bits) - 1:,} is white)"

    def transparency_note(self) -> str | None:
        """A warning when most pixels were transparent, e.g. ``"62% of pixels were transparent;
        composited onto white"``; None otherwise."""
        fraction = self.transparent_fraction
        if fraction is None or not fraction > 0.5:
            return None
        background = self.background or "the background"
        if fraction >= 1.0:
            return f"every pixel was transparent, so the images are plain {background}"
        percent = min(99, round(100 * fraction))
        return f"{percent}% of pixels were transparent; composited onto {background}"

    def __repr__(self) -> str:
        return f"ImageSet({self.summary()!r}, source={self.source!r})"


# -- array helpers ---------------------------------------------------------------------


def resample_filter(src: tuple[int, int], dst: tuple[int, int]) -> Image.Resampling:
    """LANCZOS when shrinking (sharp, alias-free), BICUBIC when enlarging (less ringing)."""
    shrinking = dst[0] * dst[1] < src[0] * src[1]
    return Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC


def to_grayscale(rgb: np.ndarray, axis: int) -> np.ndarray:
    """ITU-R 601-2 luma of uint8 RGB along ``axis``, bit-identical to Pillow's ``convert("L")``."""
    r, g, b = (np.take(rgb, i, axis=axis).astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """``(N, C, H, W)`` uint8 converted to ``channels`` (1: luma, 3: gray replicated)."""
    if images.shape[1] == channels:
        return images
    if channels == 1:
        return to_grayscale(images, axis=1)[:, None]
    return np.repeat(images, 3, axis=1)


def _resample_matrix(src: int, dst: int) -> np.ndarray:
    """``(dst, src)`` weights of Pillow's 1-D resampling from ``src`` to ``dst`` samples."""
    impulses = Image.fromarray(np.eye(src, dtype=np.float32))  # mode "F": no rounding, no clipping
    responses = impulses.resize((dst, src), resample_filter((src, 1), (dst, 1)))
    return np.asarray(responses).T.copy()


def resize_images(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """``(N, C, H, W)`` uint8 resized to ``size`` x ``size`` (see :func:`resample_filter`).

    Uses Pillow's filter weights as separable matrices, so whole batches resize in two
    matrix products instead of one Pillow call per image.
    """
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    rows, cols = _resample_matrix(h, size), _resample_matrix(w, size).T.copy()
    out = np.empty((n, c, size, size), dtype=np.uint8)
    for start in range(0, n, chunk):
        block = images[start : start + chunk]
        planes = block.shape[0] * c
        across = block.astype(np.float32).reshape(planes * h, w) @ cols  # resample each row
        resized = rows @ across.reshape(planes, h, size)  # then each column
        np.rint(resized, out=resized)
        np.clip(resized, 0, 255, out=resized)
        out[start : start + chunk] = resized.reshape(block.shape[0], c, size, size)
    return out


def validation_count(n: int, val_fraction: float) -> int:
    """How many of `n` images `split_indices` holds out: round(n * val_fraction), at least one, and
    never all."""
    return min(max(round(n * val_fraction), 1), n - 1)


def split_indices(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into sorted ``(train, val)`` int64 index arrays.

    The validation part gets ``round(n * val_fraction)`` indices, but always at least one, and
    the training part always keeps at least one.
    """
    if n < 2:
        raise DatasetError(f"At least 2 images are needed to split into training and validation, got {n}.")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"The validation fraction must be between 0 and 1, got {val_fraction}.")
    n_val = validation_count(n, val_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
