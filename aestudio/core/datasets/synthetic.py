"""Sets that need no files: scikit-learn's ``digits`` and the procedural ``shapes``."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .base import DatasetError, ImageSet

__all__ = ["SHAPE_NAMES", "load_digits", "make_shapes"]

SHAPE_NAMES = ["square", "ellipse", "triangle"]
FACTOR_NAMES = ["shape", "scale", "rotation", "x", "y"]

# Geometry relative to the image side: at scale 1 a shape reaches 0.25 * size from its centre.
_RADIUS = 0.25
_SQUARE_HALF = 0.72  # half side of the square, in radii (its corners reach 1.02 radii)
_ELLIPSE_MINOR = 0.5  # minor semi-axis of the ellipse, in radii
_CHUNK = 2048  # images rendered per vectorised step (bounds temporary memory)


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits  # slow import, only when needed

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits() -> ImageSet:
    """scikit-learn's 1,797 handwritten digits, 1x8x8, values 0..16 scaled to 0..255."""
    images, labels = _digits_arrays()
    return ImageSet(
        name="digits",
        images=images.copy(),
        labels=labels.copy(),
        class_names=[str(d) for d in range(10)],
        source="bundled (scikit-learn load_digits)",
    )


def make_shapes(n: int = 6000, size: int = 32, seed: int = 0) -> ImageSet:
    """A dSprites-like set: white anti-aliased shapes on black, 1 x ``size`` x ``size``.

    Each image draws one shape (the label: 0 square, 1 ellipse, 2 triangle) from uniform
    random generative factors, kept in ``factors`` as float32 columns
    ``["shape", "scale", "rotation", "x", "y"]``:

    * ``scale`` in [0.5, 1): the shape reaches ``0.25 * size * scale`` from its centre;
    * ``rotation`` in [0, 2*pi) radians (the square repeats every pi/2, the ellipse every pi,
      the triangle every 2*pi/3, as in dSprites);
    * ``x``, ``y`` in [0, 1): the centre position across the range that keeps any shape fully
      inside the image (0 = left/top).

    The result depends only on ``(n, size, seed)``.
    """
    if n < 1:
        raise DatasetError(f"The shapes set needs at least 1 image, got {n}.")
    if size < 8:
        raise DatasetError(f"The shapes set needs images of at least 8x8 pixels, got {size}.")
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, len(SHAPE_NAMES), n)
    scale = rng.uniform(0.5, 1.0, n)
    rotation = rng.uniform(0.0, 2.0 * np.pi, n)
    x, y = rng.uniform(0.0, 1.0, (2, n))
    factors = np.stack([shape, scale, rotation, x, y], axis=1).astype(np.float32)

    images = np.empty((n, 1, size, size), dtype=np.uint8)
    for kind in range(len(SHAPE_NAMES)):
        rows = np.flatnonzero(shape == kind)
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            images[chunk, 0] = _render(kind, factors[chunk, 1:], size)
    return ImageSet(
        name="shapes",
        images=images,
        labels=shape.astype(np.int64),
        class_names=list(SHAPE_NAMES),
        factors=factors,
        factor_names=list(FACTOR_NAMES),
        source=f"generated (make_shapes n={n}, size={size}, seed={seed})",
    )


def _render(kind: int, factors: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage images (uint8) of shape ``kind`` for rows of ``[scale, rotation, x, y]``."""
    scale, rotation, x, y = (factors[:, i, None, None] for i in range(4))
    margin = 1.05 * _RADIUS * size + 1.0
    span = size - 2.0 * margin
    centres = np.arange(size, dtype=np.float32) + 0.5
    dx = centres[None, None, :] - (margin + x * span)
    dy = centres[None, :, None] - (margin + y * span)
    cos, sin = np.cos(rotation), np.sin(rotation)
    u = cos * dx + sin * dy  # pixel coordinates in the shape's own, rotated frame
    v = cos * dy - sin * dx
    radius = _RADIUS * size * scale

    # Signed distance to the outline in pixels (negative inside).
    if kind == 0:  # square
        distance = np.maximum(np.abs(u), np.abs(v)) - _SQUARE_HALF * radius
    elif kind == 1:  # ellipse: first-order distance, level / |gradient|
        a, b = radius, _ELLIPSE_MINOR * radius
        level = (u / a) ** 2 + (v / b) ** 2 - 1.0
        gradient = 2.0 * np.sqrt(u**2 / a**4 + v**2 / b**4)
        distance = level / np.maximum(gradient, 1e-6)
    else:  # equilateral triangle, circumradius `radius`, one vertex pointing up
        normals = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        edges = [u * np.float32(np.cos(t)) + v * np.float32(np.sin(t)) for t in normals]
        distance = np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - radius / 2
    coverage = np.clip(0.5 - distance, 0.0, 1.0)
    return np.round(coverage * 255.0).astype(np.uint8)
