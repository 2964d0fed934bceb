"""PCA vs autoencoder (no Qt): how much better than the best linear code is the network's code?

PCA is the optimal *linear* autoencoder: with k components no linear encoder / decoder pair
reconstructs with lower squared error. A non-linear autoencoder can beat it, especially at small
code sizes, but it has to be trained well to do so.

    curve = pca_curve(train_x, val_x, range(1, 65))          # PCA fitted once, truncated: cheap
    cmp = compare_at_size(model, train_x, val_x, labels)     # both at the model's latent size
    cmp.verdict                                              # "At 16 dimensions the autoencoder's ..."
    sweep = train_size_sweep(cfg, train_set, val_set, [2, 4, 8, 16, 32], steps=600)
    sweep_note(sweep)                                        # None, or "... still improving ..."

All errors are MSE per pixel on the [0, 1] scale over the validation images; PCA reconstructions
are clipped to [0, 1] like the autoencoder's (sigmoid) outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from ..config import ConfigError, ModelConfig, TrainConfig
from ..datasets import ImageSet
from ..evaluation import (as_float_images, encode_images, fit_pca, is_linear_model, pca_reconstruct,
                          reconstruct_images, subspace_angle_deg)
from ..latent import Projection
from ..models import Autoencoder
from ..training import Control
from .budget import SWEEP_STEPS, Improvement, improving_note
from .denoising import SHOW, lab_train, steps_config
from .selection import pick_spread

Progress = Callable[[int, int], None]

MAX_PCA_SIZE = 64
DEFAULT_SWEEP = (2, 4, 8, 16, 32)
MAX_MAP_POINTS = 10_000


def default_sizes(max_size: int = MAX_PCA_SIZE) -> list[int]:
    """Every size from 1 to `max_size`."""
    return list(range(1, max_size + 1))


@dataclass
class PcaCurve:
    sizes: np.ndarray  # (S,) component counts, increasing
    mse: np.ndarray  # (S,) validation MSE per pixel for each size

    def at(self, k: int) -> float:
        """The MSE at size k (the largest computed size not above k)."""
        i = int(np.searchsorted(self.sizes, k, side="right")) - 1
        return float(self.mse[max(i, 0)])


def _pca_basis(train_x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    pca = fit_pca(train_x, k, seed)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)


def pca_curve(train_x: np.ndarray, val_x: np.ndarray, sizes: Iterable[int] | None = None, seed: int = 0,
              progress: Progress | None = None) -> PcaCurve:
    """Validation MSE of PCA for each size in `sizes` (default 1..64).

    PCA is fitted once on `train_x` at the largest size and truncated: the first k components of
    a PCA are the k-component PCA. Sizes above the rank available (images or pixels) are dropped.
    """
    tx = as_float_images(train_x)
    vx = as_float_images(val_x)
    if len(tx) == 0 or len(vx) == 0:
        raise ConfigError("PCA needs training and validation images")
    d = int(np.prod(tx.shape[1:]))
    cap = min(len(tx), d)
    wanted = sorted({int(s) for s in (sizes if sizes is not None else default_sizes()) if 1 <= int(s) <= cap})
    if not wanted:
        raise ConfigError(f"no PCA size fits: sizes must be between 1 and {cap}")
    mean, comps = _pca_basis(tx, wanted[-1], seed)
    flat = vx.reshape(len(vx), -1)
    coef = (flat - mean) @ comps.T  # (N, K)
    recon = np.broadcast_to(mean, flat.shape).copy()
    out = np.zeros(len(wanted))
    done = 0
    for j, k in enumerate(wanted):
        if k > done:  # add components done..k-1
            recon += coef[:, done:k] @ comps[done:k]
            done = k
        diff = np.clip(recon, 0.0, 1.0) - flat
        out[j] = float(np.mean(diff.astype(np.float64) ** 2))
        if progress is not None:
            progress(j + 1, len(wanted))
    return PcaCurve(np.asarray(wanted), out)


def verdict(k: int, ae_mse: float, pca_mse: float) -> str:
    """One sentence saying which reconstructs better at code size k, and by how much."""
    dims = f"{k} dimension" + ("" if k == 1 else "s")
    if not (np.isfinite(ae_mse) and np.isfinite(pca_mse)):
        return f"At {dims} the errors cannot be compared (a value is not finite)."
    lo, hi = min(ae_mse, pca_mse), max(ae_mse, pca_mse)
    pct = 100.0 * (hi - lo) / hi if hi > 0 else 0.0
    a, p = _nums(ae_mse, pca_mse)
    if pct < 1.0:
        return f"At {dims} the autoencoder and PCA reconstruct about equally well (errors {a} and {p})."
    if ae_mse < pca_mse:
        return f"At {dims} the autoencoder's error is {a}, {pct:.0f}% lower than PCA's {p}."
    return f"At {dims} PCA's error is {p}, {pct:.0f}% lower than the autoencoder's {a}."


def _nums(*values: float) -> list[str]:
    """Values with two significant digits, or more where two would make different values look equal."""
    for digits in (2, 3, 4):
        texts = [f"{v:#.{digits}g}".rstrip(".") for v in values]  # '#' keeps trailing zeros: 0.020
        if len(set(texts)) == len(set(values)):
            return texts
    return texts


@dataclass
class SizeComparison:
    """PCA and the autoencoder at the model's own code size, on the validation images."""

    k: int
    ae_mse: float
    pca_mse: float
    originals: np.ndarray  # (n, C, H, W) SHOW validation images, a spread over the classes (at `shown`)
    pca_recons: np.ndarray
    ae_recons: np.ndarray
    pca_map: np.ndarray  # (M, 2) PCA-2 coordinates of the validation images
    ae_map: np.ndarray  # (M, 2) the autoencoder's 2-D map of the same images
    ae_map_method: str  # "codes" (latent 2), "codes (1-D)" or "PCA of the codes"
    labels: np.ndarray | None  # (M,)
    # linear dense models only: mean principal angle (degrees) between the decoder's column space and PCA's
    subspace_angle_deg: float | None = None
    shown: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # validation indices of `originals`

    @property
    def verdict(self) -> str:
        text = verdict(self.k, self.ae_mse, self.pca_mse)
        if self.subspace_angle_deg is not None:
            text += " " + angle_sentence(self.subspace_angle_deg)
        return text


def angle_sentence(angle_deg: float) -> str:
    """What the mean principal angle between a linear autoencoder's decoder and PCA's subspace says."""
    how = ("essentially the same subspace as PCA" if angle_deg < 5 else
           "close to PCA's subspace" if angle_deg < 20 else "a subspace still far from PCA's (train longer)")
    return (f"This linear autoencoder reconstructs through {how}: the mean principal angle between its decoder's "
            f"columns and PCA's components is {angle_deg:.1f}°.")


def compare_at_size(model: Autoencoder, train_x: np.ndarray, val_x: np.ndarray, labels: np.ndarray | None = None,
                    n_show: int = SHOW, seed: int = 0, max_points: int = MAX_MAP_POINTS) -> SizeComparison:
    """PCA with as many components as the model's code, against the model, at that size."""
    tx, vx = as_float_images(train_x), as_float_images(val_x)
    k = int(model.config.latent)
    pca = fit_pca(tx, k, seed)
    ae_rec = np.clip(reconstruct_images(model, vx), 0.0, 1.0).astype(np.float32)
    pca_rec = pca_reconstruct(pca, vx)
    ae_mse = float(np.mean((ae_rec - vx).astype(np.float64) ** 2))
    pca_mse = float(np.mean((pca_rec - vx).astype(np.float64) ** 2))

    m = min(len(vx), max_points)
    pca2 = fit_pca(tx, 2, seed)
    pca_map = pca2.transform(vx[:m].reshape(m, -1)).astype(np.float32)
    codes = encode_images(model, vx[:m])
    proj = Projection().fit(codes, method="pca", seed=seed)
    method = {"identity": "codes", "pad": "codes (1-D)"}.get(proj.method or "", "PCA of the codes")
    shown = pick_spread(labels, n_show, total=len(vx))
    angle = None
    if is_linear_model(model.config) and int(pca.n_components_) == k:
        angle = subspace_angle_deg(model, pca.components_)
    return SizeComparison(k, ae_mse, pca_mse, vx[shown], pca_rec[shown], ae_rec[shown], pca_map,
                          np.asarray(proj.points, np.float32), method,
                          None if labels is None else np.asarray(labels)[:m], angle, shown)


@dataclass
class SweepPoint:
    size: int
    mse: float  # validation MSE per pixel
    epochs: int
    steps: int = 0  # optimizer steps trained
    improvement: Improvement | None = field(default=None, compare=False)  # fall of the loss at the end

    @property
    def still_improving(self) -> bool:
        return self.improvement is not None and self.improvement.improving


def sweep_note(points: Sequence[SweepPoint]) -> str | None:
    """A sentence naming the trained sizes that were still improving when their step budget ran out."""
    late = [p for p in points if p.still_improving]
    if not late:
        return None
    sizes = ", ".join(str(p.size) for p in late)
    what = f"The autoencoder{'s' if len(late) > 1 else ''} at size{'s' if len(late) > 1 else ''} {sizes}"
    return improving_note(what, [p.improvement for p in late], plural=len(late) > 1)


def train_size_sweep(model_config: ModelConfig, train_set: ImageSet, val_set: ImageSet,
                     sizes: Sequence[int] = DEFAULT_SWEEP, steps: int = SWEEP_STEPS, progress: Progress | None = None,
                     seed: int = 0, control: Control | None = None,
                     train_config: TrainConfig | None = None) -> list[SweepPoint]:
    """Train the current architecture at each latent size (same hidden layers, about `steps`
    optimizer steps each) and measure its validation MSE. Stops early (returning the sizes done)
    when `control` stops. `sweep_note(points)` says which sizes were still improving."""
    sizes = sorted({int(s) for s in sizes if int(s) >= 1})
    if not sizes:
        raise ConfigError("give at least one latent size of 1 or more")
    cfg = steps_config(train_config, train_set.n, steps, "none", seed)
    hidden = model_config.hidden_sizes  # keep the layers fixed while the code size changes
    vx = val_set.as_float()
    out: list[SweepPoint] = []
    for i, k in enumerate(sizes):
        if control is not None and control.stopped:
            break
        mcfg = replace(model_config, latent=k, hidden=list(hidden))
        mcfg.validate()
        trained = lab_train(mcfg, cfg, train_set, val_set, progress, control, (i, len(sizes)))
        if control is not None and control.stopped:
            break
        rec = np.clip(reconstruct_images(trained.model, vx), 0.0, 1.0)
        out.append(SweepPoint(k, float(np.mean((rec - vx).astype(np.float64) ** 2)), int(cfg.epochs), trained.steps,
                              trained.improvement))
    return out


__all__ = [
    "DEFAULT_SWEEP", "MAX_PCA_SIZE", "PcaCurve", "angle_sentence", "SizeComparison", "SweepPoint", "compare_at_size",
    "default_sizes", "pca_curve", "sweep_note", "train_size_sweep", "verdict",
]
