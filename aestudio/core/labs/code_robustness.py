"""Robustness of codes (no Qt): how far does a code move when its input is nudged a little?

A denoising autoencoder is trained to map corrupted inputs to the clean image, and a contractive
one pays for every bit of ‖∂z/∂x‖; both should give codes that move less under small input noise
than a plain autoencoder of the same size. This module measures it.

    s = code_sensitivity(model, images)                   # one model, gaussian noise of a few sizes
    s.raw        # mean ||f(x + e) - f(x)|| / ||e||, one value per noise size
    s.relative   # the same, in units of how much codes and images vary across the data set
    rows = compare_robustness(cfg, train_set, val_set, steps=800)   # plain, denoising, contractive
    robustness_verdict(rows)

`raw` is the encoder's average local gain (the norm of its Jacobian along random directions, for
small noise). A model could shrink all its codes and look "robust" by that measure alone, so
`relative` divides out the scale: it is `raw` times (spread of the images / spread of the codes),
where a spread is the root-mean-square distance from the mean. `relative` near 1 means a random
nudge moves the code as far, compared with the codes' spread, as it moves the image compared with
the images' spread; below 1 the encoder damps random nudges.

Codes are the deterministic code (the posterior mean for a VAE). Noise is not clipped to [0, 1],
so ε is exactly the perturbation measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

from ..config import ConfigError, ModelConfig, TrainConfig
from ..datasets import ImageSet
from ..evaluation import as_float_images, encode_images
from ..models import Autoencoder
from ..training import Control
from .denoising import lab_train, steps_config

Progress = Callable[[int, int], None]

#: Standard deviations (per pixel, [0, 1] scale) of the gaussian nudges.
SIGMAS = (0.01, 0.03, 0.1)
#: Noise draws per image and size.
DRAWS = 4
#: Images measured (the first ones of the set given).
MAX_IMAGES = 1000
#: Optimizer steps each model of the comparison trains for.
ROBUSTNESS_STEPS = 800
#: The denoising model's training noise.
DENOISING_NOISE = "gaussian:0.3"
#: The contractive model's penalty weight: strong enough to show, at the default step budget.
CONTRACTIVE_WEIGHT = 0.1


@dataclass
class Sensitivity:
    """How far one model's codes move under gaussian input noise of each size."""

    sigmas: np.ndarray  # (S,) noise standard deviation per pixel
    raw: np.ndarray  # (S,) mean ||f(x + e) - f(x)|| / ||e||
    relative: np.ndarray  # (S,) raw * input spread / code spread
    code_spread: float  # root-mean-square distance of the codes from their mean
    input_spread: float  # the same for the images (flattened)

    def at(self, sigma: float) -> tuple[float, float]:
        """(raw, relative) at the computed noise size closest to `sigma`."""
        i = int(np.argmin(np.abs(self.sigmas - sigma)))
        return float(self.raw[i]), float(self.relative[i])


def _spread(v: np.ndarray) -> float:
    v = v.reshape(len(v), -1).astype(np.float64)
    return float(np.sqrt(np.mean(np.sum((v - v.mean(0)) ** 2, axis=1))))


def code_sensitivity(model: Autoencoder, images: np.ndarray, sigmas: Sequence[float] = SIGMAS, draws: int = DRAWS,
                     seed: int = 0, max_images: int = MAX_IMAGES) -> Sensitivity:
    """Mean ||f(x + ε) − f(x)|| / ||ε|| over images and `draws` gaussian ε per image, for each σ in
    `sigmas` (seeded: the same ε for every model given the same seed)."""
    x = as_float_images(images)[:max_images]
    if len(x) < 2:
        raise ConfigError("measuring code robustness needs at least 2 images")
    sig = np.asarray(sorted(float(s) for s in sigmas), dtype=np.float64)
    if len(sig) == 0 or not np.all(sig > 0):
        raise ConfigError("noise sizes must be positive numbers")
    clean = encode_images(model, x).astype(np.float64)
    rng = np.random.default_rng(seed)
    raw = np.zeros(len(sig))
    for i, s in enumerate(sig):
        ratios = []
        for _ in range(max(1, int(draws))):
            eps = rng.normal(0.0, s, size=x.shape).astype(np.float32)
            moved = encode_images(model, x + eps).astype(np.float64)
            num = np.linalg.norm((moved - clean).reshape(len(x), -1), axis=1)
            den = np.linalg.norm(eps.reshape(len(x), -1).astype(np.float64), axis=1)
            ratios.append(num / np.maximum(den, 1e-12))
        raw[i] = float(np.mean(ratios))
    cs, xs = _spread(clean), _spread(x)
    relative = raw * xs / max(cs, 1e-12)
    return Sensitivity(sig, raw, relative, cs, xs)


@dataclass
class RobustnessRow:
    """One trained model of the comparison and its measurements on the validation images."""

    name: str  # "plain" | "denoising" | "contractive"
    description: str
    model_config: ModelConfig
    train_config: TrainConfig
    sensitivity: Sensitivity
    val_mse: float  # reconstruction error per pixel on the clean validation images
    model: Autoencoder | None = field(default=None, repr=False)


def robustness_configs(model_config: ModelConfig, train_config: TrainConfig | None = None
                       ) -> list[tuple[str, str, ModelConfig, str]]:
    """(name, description, model config, training noise) of the three models compared: the same
    architecture and code size, as a plain, a denoising and a contractive autoencoder."""
    plain = replace(model_config, kind="ae")
    return [
        ("plain", "plain autoencoder", plain, "none"),
        ("denoising", f"denoising autoencoder (trained on {DENOISING_NOISE} noise)", plain, DENOISING_NOISE),
        ("contractive", f"contractive autoencoder (weight {CONTRACTIVE_WEIGHT:g})",
         replace(model_config, kind="contractive", contractive_weight=CONTRACTIVE_WEIGHT), "none"),
    ]


def compare_robustness(model_config: ModelConfig, train_set: ImageSet, val_set: ImageSet,
                       steps: int = ROBUSTNESS_STEPS, sigmas: Sequence[float] = SIGMAS, seed: int = 0,
                       progress: Progress | None = None, control: Control | None = None,
                       train_config: TrainConfig | None = None, keep_models: bool = False) -> list[RobustnessRow]:
    """Train a plain, a denoising and a contractive model of `model_config`'s architecture and size
    (about `steps` optimizer steps each) and measure each one's code sensitivity on `val_set`.
    Stops early, returning the rows done, when `control` stops."""
    vx = val_set.as_float()[:MAX_IMAGES]
    rows: list[RobustnessRow] = []
    specs = robustness_configs(model_config, train_config)
    for i, (name, text, mcfg, noise) in enumerate(specs):
        if control is not None and control.stopped:
            break
        mcfg = mcfg.validate()
        tcfg = steps_config(train_config, train_set.n, steps, noise, seed)
        torch.manual_seed(seed)
        trained = lab_train(mcfg, tcfg, train_set, val_set, progress, control, (i, len(specs)))
        if control is not None and control.stopped:
            break
        from ..evaluation import recon_mse

        sens = code_sensitivity(trained.model, vx, sigmas, seed=seed)
        rows.append(RobustnessRow(name, text, mcfg, tcfg, sens, recon_mse(trained.model, vx),
                                  trained.model if keep_models else None))
    return rows


def robustness_verdict(rows: Sequence[RobustnessRow], sigma: float = 0.03) -> str:
    """One or two sentences comparing how far the models' codes move at noise size `sigma`."""
    if not rows:
        return "No model was measured."
    by = {r.name: r for r in rows}
    parts = []
    for r in rows:
        raw, rel = r.sensitivity.at(sigma)
        parts.append(f"{r.name} {raw:.3g} ({rel:.2f} relative)")
    text = f"Code movement per unit of input noise at σ = {sigma:g}: " + ", ".join(parts) + "."
    plain = by.get("plain")
    if plain is not None:
        base = plain.sensitivity.at(sigma)[1]
        calmer = [r.name for r in rows if r.name != "plain" and r.sensitivity.at(sigma)[1] < base]
        if calmer:
            text += (f" Relative to how much codes vary across images, the {' and '.join(calmer)} model"
                     f"{'s move' if len(calmer) > 1 else ' moves'} less than the plain one.")
        else:
            text += " Neither regularised model moves less than the plain one here (try more training steps)."
    return text


__all__ = ["CONTRACTIVE_WEIGHT", "DENOISING_NOISE", "ROBUSTNESS_STEPS", "SIGMAS", "RobustnessRow", "Sensitivity",
           "code_sensitivity", "compare_robustness", "robustness_configs", "robustness_verdict"]
