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
  ``MIN_SIDE`` pixels, and the run is long enough to memorise the set (below); otherwise none.
  Never for a linear autoencoder: it learns PCA's subspace of its training images, which shifts
  would replace by the subspace of shifted images (the Questions
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

Shifts pay off only in a run long enough to memorise the set; in a short one they only make the
task harder. How fast a set is memorised depends on how many times each image is seen (the
epochs) and on how few images there are per value of an image, so ``auto`` looks at their ratio,
the *exposure*: epochs x values per image / training images. ``python3 dev.py bench augment_effects
--part budget`` trains the default conv AE-16 (batch 32, seed 0) unshifted and shifted at several
budgets; validation error against PCA-16's (exposure in brackets):

* 2,240 Fashion-MNIST images (centred clothes) at 500 to 4,000 steps: (2.8) 0.67x and 0.87x,
  (5.2) 0.65x and 0.80x, (10.2) 0.67x and 0.71x, (15.1) 0.69x and 0.67x, (20.3) 0.71x and 0.64x;
* 2,400 ``strokes`` at 300, 1,000 and 2,000 steps: (1.6) 0.45x and 0.48x, (4.6) 0.36x and 0.33x,
  (8.8) 0.35x and 0.26x;
* 1,600 ``photos`` patches at 300 steps: (8.8) 1.005x and 0.981x; from 1,000 steps (29) on, shifts
  win by more (0.94x and 0.84x); 3,200 of them (``--sets photos-4000``) at 1,000 steps: (7.3)
  0.857x and 0.833x.

With ``--seed 1`` (another subset of the clothes, other weights) the same side won at every point
measured again: clothes (5.2) 0.65x and 0.79x, (10.2) 0.66x and 0.71x; strokes (4.6) 0.35x and
0.32x, (8.8) 0.33x and 0.25x; 3,200 photos (7.3) 0.88x and 0.86x, (14.7) 0.87x and 0.80x.

Centred images gain from shifts only in long runs; strokes and photographs gain early. No one
exposure separates all of it: ``SHIFT_FROM_EXPOSURE`` (7) takes the shifts where they gained and
leaves them off in the short runs where they cost most (the clothes at 2.8 and 5.2). It misjudges
the strokes at 4.6 (0.36x instead of 0.33x) and the clothes at 10.2 (0.71x instead of 0.67x); the
Questions guide's conv model (2,250 clothes, 1,000 steps of 64: exposure 9.9), 0.0187 with shifts
against 0.0152 without, is why the guide turns augmentation off.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AUGMENTS

SMALL_SET = 1000  # training images; below this (or below MEMORISED_BELOW x the values per image), `auto` shifts
MEMORISED_BELOW = 4  # images per value of one image under which a set is memorised without shifts
MIN_SIDE = 16  # pixels; smaller images are not shifted by `auto`
SHIFT_FROM_EXPOSURE = 7  # epochs x values per image / training images from which `auto` shifts


def max_shift(shape: tuple[int, int, int]) -> int:
    """The largest shift in pixels for images of `shape` (C, H, W): an eighth of the shorter side."""
    return max(1, round(min(shape[1], shape[2]) / 8))


def exposure(epochs: float, n_train: int, shape: tuple[int, int, int]) -> float:
    """How hard a run of `epochs` passes pushes a model to memorise `n_train` images of `shape`:
    the passes over the set divided by its images per value of one image."""
    return epochs * shape[0] * shape[1] * shape[2] / max(1, n_train)


def shiftable(shape: tuple[int, int, int], linear: bool = False) -> bool:
    """Whether shifts suit images of `shape` for this model at all: sides of at least `MIN_SIDE` px,
    and a model that is not linear (its best is PCA's subspace of the images as they are)."""
    return min(shape[1], shape[2]) >= MIN_SIDE and not linear


def _memorisable(n_train: int, shape: tuple[int, int, int], linear: bool = False) -> bool:
    """Whether `auto` counts a set as small enough to be memorised, and shiftable (the module documentation)."""
    values = shape[0] * shape[1] * shape[2]
    return n_train < max(SMALL_SET, MEMORISED_BELOW * values) and shiftable(shape, linear)


def resolve_shift(augment: str, n_train: int, shape: tuple[int, int, int], linear: bool = False,
                  epochs: float = math.inf) -> int:
    """Pixels of random shift to apply to training batches (0: none) for this setting and data.

    `linear`: the model is a linear autoencoder (`evaluation.is_linear_model`), which `auto` never
    shifts: its best is PCA's subspace of the images as they are, a code smaller than the image
    cannot memorise them, and shifted copies would move that best elsewhere.
    `epochs`: the passes over the training set the model gets in all; `auto` does not shift a run
    too short to memorise the set (exposure under `SHIFT_FROM_EXPOSURE`)."""
    if augment == "none":
        return 0
    if augment == "shift":
        return max_shift(shape)
    if augment == "auto":
        if not _memorisable(n_train, shape, linear):
            return 0
        return max_shift(shape) if exposure(epochs, n_train, shape) >= SHIFT_FROM_EXPOSURE else 0
    raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")


def shift_epochs(n_train: int, shape: tuple[int, int, int]) -> int:
    """The fewest epochs in all with which `auto` shifts a set that it counts as memorisable."""
    return math.ceil(SHIFT_FROM_EXPOSURE * n_train / (shape[0] * shape[1] * shape[2]))


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


def describe_skipped(n_train: int, shape: tuple[int, int, int], epochs: float, linear: bool = False) -> str:
    """Why `auto` left unshifted a set that it shifts in a longer run, or "" when that is not why."""
    if not _memorisable(n_train, shape, linear) or exposure(epochs, n_train, shape) >= SHIFT_FROM_EXPOSURE:
        return ""
    runs = f"{epochs:g} epoch is" if epochs == 1 else f"{epochs:g} epochs are"
    return (f"no random shifts: {runs} too few to memorise {n_train:,} training images; "
            f"auto shifts them in runs of {shift_epochs(n_train, shape):,} epochs or more")


def auto_choice(n_train: int, shape: tuple[int, int, int], epochs: float, linear: bool = False) -> tuple[int, str]:
    """What `auto` does for a run of `epochs` on `n_train` images of `shape`, and why, in a few words:
    the studio names it next to the setting before a run starts."""
    shift = resolve_shift("auto", n_train, shape, linear=linear, epochs=epochs)
    if shift:
        return shift, describe(shift, n_train, shape)
    if linear:
        return 0, "no random shifts: a linear model learns PCA's subspace of the images as they are"
    if min(shape[1], shape[2]) < MIN_SIDE:
        return 0, f"no random shifts: images under {MIN_SIDE} px, where a pixel is much of the image"
    skipped = describe_skipped(n_train, shape, epochs)
    return 0, skipped or f"no random shifts: {n_train:,} training images are enough not to be memorised"


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
