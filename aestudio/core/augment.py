"""Training-time augmentation: random shifts for small image sets.

An autoencoder that sees the same few hundred images thousands of times memorises them. Its
training error falls far below PCA's while its validation error ends up above it. Measured on
the 200-image ``tiny`` folder of ``benchmarks/heldout.py``: 0.12x PCA-16 on training images,
1.18x on validation. Shifting each training batch by a pixel or two in a random direction shows
the network new positions of the same content. That one change took the same model to 0.33x
PCA on validation, and the 600-image RGBA icons from 0.54x to 0.21x (benchmarks/robustness.py).

Sets of a few thousand images are memorised too when each image has more numbers than there
are images: 1,600 RGB photo patches of 28x28 (2,352 values each) took the conv AE to 0.67x
PCA-16 on its training images (a one-off trial) and 1.03x on validation; with shifts, 0.85x
(benchmarks/robustness.py, photos). So `auto` shifts those too. (It did not at first: with shifts
the dense sparse model on those photos saturated its sigmoid code and collapsed to a constant;
that model's code layer now starts small, see models.py, and reaches 0.08x the mean image's
error there with shifts.) A few times as many images as values is still memorised. With the
default conv AE-16, without and with shifts (one-off trials, images per value in brackets):
lines of dark text on white (1.8) 1.39x and 0.86x PCA-16, its validation error 48% above its
best without; 1,200 images of the ``strokes`` maker (1.5) 0.56x and 0.23x; the benchmark's
``strokes`` (3.1) 0.37x and 0.20x. Sets of aligned images gained nothing further up: 4,000
Fashion-MNIST images (5.1) 0.62x and 0.63x, the bundled 8,000 (10.2) 0.56x and 0.63x. Hence the
factor ``MEMORISED_BELOW`` (4).

Large sets need no augmentation: there the model sees new images all the time. On images
aligned to a grid (the 8x8 ``digits``), a one-pixel shift is an eighth of the image and made
the model worse (0.59x to 0.93x PCA). Hence the ``auto`` rule below. Shifts pad with the edge
pixels, so no wrapped-around content or black borders appear.

Settings (``TrainConfig.augment``):

* ``auto``: shift when the training split has fewer than ``SMALL_SET`` images, or fewer than
  ``MEMORISED_BELOW`` times as many images as values per image, and both sides are at least
  ``MIN_SIDE`` pixels; otherwise none. Never for a linear autoencoder: it learns PCA's subspace of
  its training images, which shifts would replace by the subspace of shifted images (the Questions
  guide's linear model on 2,250 Fashion-MNIST images ended 33% above PCA-16's error, its subspace
  37.8° from PCA's, with shifts; see `tests/test_augment.py`).
* ``shift``: always shift.
* ``none``: never.

The largest shift is ``side / 8`` pixels, rounded, and at least 1: 4 px at 28 or 32 px, 8 px at
64 px, and every image of a batch gets its own offset. Validation images are never augmented.
It used to be one offset per batch of up to ``side / 16``. On the RGB photo patches the model
still learned its training patches far better than new ones (0.60x PCA-16's error on them, 0.79x
on validation); its own offset per image and up to 4 px closed most of that gap (0.69x and 0.76x
with ReLU, 0.68x and 0.74x with leaky ReLU, now the default; seed 0, one-off trials
around `benchmarks/robustness.py`'s cell, which then re-measured every set). With ReLU, up to 6 px went no
further (0.76x) and an offset per batch of up to 2 px with reflected instead of repeated edges
made no difference (0.80x).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import AUGMENTS

SMALL_SET = 1000  # training images; below this (or below MEMORISED_BELOW x the values per image), `auto` shifts
MEMORISED_BELOW = 4  # images per value of one image under which a set is memorised without shifts
MIN_SIDE = 16  # pixels; smaller images are not shifted by `auto`


def max_shift(shape: tuple[int, int, int]) -> int:
    """The largest shift in pixels for images of `shape` (C, H, W): an eighth of the shorter side."""
    return max(1, round(min(shape[1], shape[2]) / 8))


def resolve_shift(augment: str, n_train: int, shape: tuple[int, int, int], linear: bool = False) -> int:
    """Pixels of random shift to apply to training batches (0: none) for this setting and data.

    `linear`: the model is a linear autoencoder (`evaluation.is_linear_model`), which `auto` never
    shifts: its best is PCA's subspace of the images as they are, a code smaller than the image
    cannot memorise them, and shifted copies would move that best elsewhere."""
    if augment == "none":
        return 0
    if augment == "shift":
        return max_shift(shape)
    if augment == "auto":
        if linear:
            return 0
        values = shape[0] * shape[1] * shape[2]
        small = n_train < max(SMALL_SET, MEMORISED_BELOW * values) and min(shape[1], shape[2]) >= MIN_SIDE
        return max_shift(shape) if small else 0
    raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")


def describe(shift: int, n_train: int, shape: tuple[int, int, int]) -> str:
    """One line for logs: what augmentation a run uses, and why `auto` chose it for a set of
    `n_train` training images of `shape`."""
    if shift <= 0:
        return "no augmentation"
    why = f"a small set: {n_train:,} training images"
    if n_train >= SMALL_SET:
        values = shape[0] * shape[1] * shape[2]
        why = f"{n_train:,} training images of {values:,} values each, few enough to memorise"
    return f"random shifts of up to {shift} px ({why})"


def shift_batch(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image of `x` (N, C, H, W) moved by its own random offset of up to `shift` px per axis,
    padded with its edge pixels.

    The offsets come from `gen` (a CPU generator) and reach the device as one small copy; the
    shift itself is one pad and one gather there, so no device-to-host synchronisation happens.
    """
    if shift <= 0:
        return x
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).to(x.device, non_blocking=True)
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    rows = offsets[:, 0].view(n, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = offsets[:, 1].view(n, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)
    flat = padded.flatten(2)  # (N, C, (H + 2s) * (W + 2s))
    index = (rows * (w + 2 * shift) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return flat.gather(2, index).view(n, c, h, w)
