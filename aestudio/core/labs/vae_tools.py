"""VAE tools (no Qt): stochastic reconstructions, KL per dimension over training, and sampling
from a plain autoencoder's code space next to a VAE's prior. Every function returns numpy.

    r = sample_reconstructions(vae, image, n=8)        # r.draws (8, C, H, W): each a fresh z ~ q(z|x)
    epochs, kl = kl_per_dim_history(run.history)       # (E,), (E, latent): nats per dimension
    s = sample_ae_vs_vae(ae, vae, train_images, n=16)  # s.ae_fitted, s.ae_standard, s.vae_prior

Why the side-by-side matters: a plain autoencoder's codes fill an irregular region of code space,
so decoding random codes gives mostly nonsense. A Gaussian fitted to its codes helps a little; a
VAE is trained so that its prior N(0, I) covers the codes it decodes well.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..config import ConfigError
from ..evaluation import as_float_images, decode_codes, encode_images
from ..models import Autoencoder


def _require_vae(model: Autoencoder, what: str) -> None:
    if model.config.kind != "vae":
        raise ConfigError(f"{what} needs a variational autoencoder (kind vae); this model is {model.config.kind!r}")


@dataclass
class SampleReconstructions:
    """Several stochastic reconstructions of one image by a VAE."""

    image: np.ndarray  # (C, H, W) the input
    mean: np.ndarray  # (C, H, W) decoded from the posterior mean mu (what "reconstruct" shows)
    draws: np.ndarray  # (n, C, H, W) each decoded from its own z = mu + sigma * eps
    pixel_std: np.ndarray  # (C, H, W) standard deviation of the draws, per pixel
    sigma: np.ndarray  # (latent,) the posterior standard deviation of each code dimension for this image

    @property
    def spread(self) -> float:
        """Mean per-pixel standard deviation of the draws: how much the output varies."""
        return float(self.pixel_std.mean())


@torch.no_grad()
def sample_reconstructions(model: Autoencoder, image: np.ndarray, n: int = 8, seed: int = 0) -> SampleReconstructions:
    """Decode `n` codes drawn from the VAE's posterior q(z|x) for one image (C, H, W), seeded."""
    _require_vae(model, "sampled reconstructions")
    x = as_float_images(image)
    if x.ndim == 4:
        if len(x) != 1:
            raise ConfigError("sampled reconstructions take one image")
        x = x[0]
    if tuple(x.shape) != tuple(model.config.input_shape):
        raise ConfigError(f"the model expects an image of shape {tuple(model.config.input_shape)}, got {tuple(x.shape)}")
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        code = model.encode(torch.from_numpy(np.ascontiguousarray(x[None])).to(dev))
        mu, std = code.mu[0], torch.exp(0.5 * code.logvar[0])
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        eps = torch.randn((max(1, int(n)), mu.shape[0]), generator=gen, device=dev)
        draws = model.decode(mu + eps * std).clamp(0, 1).float().cpu().numpy()
        mean = model.decode(mu[None]).clamp(0, 1).float().cpu().numpy()[0]
    finally:
        model.train(was)
    return SampleReconstructions(x.copy(), mean, draws, draws.std(0), std.float().cpu().numpy())


def kl_per_dim_history(history: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(epoch numbers (E,), KL per dimension (E, latent) in nats) from a run's history records.

    The trainer records `kl_per_dim` (validation split, eval mode) for VAEs; records without it are
    skipped. A dimension whose KL stays near 0 carries no information (posterior collapse)."""
    rows = [(i + 1, r["kl_per_dim"]) for i, r in enumerate(history or [])
            if isinstance(r, dict) and isinstance(r.get("kl_per_dim"), (list, tuple))]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0))
    width = max(len(v) for _, v in rows)
    rows = [(e, v) for e, v in rows if len(v) == width]
    return np.array([e for e, _ in rows], np.int64), np.array([v for _, v in rows], dtype=np.float64)


@dataclass
class AeVaeSamples:
    """Images decoded from random codes: a plain autoencoder's code space against a VAE's prior."""

    ae_fitted: np.ndarray  # (n, C, H, W) AE: codes drawn from a Gaussian fitted to its training codes
    ae_standard: np.ndarray  # (n, C, H, W) AE: codes drawn from N(0, I), as one would for a VAE
    vae_prior: np.ndarray  # (n, C, H, W) VAE: codes drawn from its prior N(0, I)
    ae_code_mean: np.ndarray  # (latent,) the Gaussian fitted to the AE's codes
    ae_code_cov: np.ndarray  # (latent, latent)


def sample_ae_vs_vae(ae: Autoencoder, vae: Autoencoder, train_images: np.ndarray, n: int = 16,
                     seed: int = 0, max_images: int = 5000) -> AeVaeSamples:
    """Decode `n` random codes with each model (seeded). The plain AE's Gaussian is fitted (mean and
    full covariance) to its codes of up to `max_images` of `train_images`."""
    _require_vae(vae, "the VAE side")
    if ae.config.kind == "vae":
        raise ConfigError("the plain side needs a deterministic autoencoder, not a VAE")
    x = as_float_images(train_images)[:max_images]
    if len(x) < 2:
        raise ConfigError("fitting a Gaussian to the codes needs at least 2 images")
    codes = encode_images(ae, x).astype(np.float64)
    mean = codes.mean(0)
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    rng = np.random.default_rng(seed)
    n = max(1, int(n))
    fitted = rng.multivariate_normal(mean, cov, size=n, method="eigh").astype(np.float32)
    standard = rng.standard_normal((n, ae.config.latent)).astype(np.float32)
    prior = rng.standard_normal((n, vae.config.latent)).astype(np.float32)
    clip = (lambda im: np.clip(im, 0.0, 1.0))
    return AeVaeSamples(clip(decode_codes(ae, fitted)), clip(decode_codes(ae, standard)), clip(decode_codes(vae, prior)),
                        mean, cov)


__all__ = ["AeVaeSamples", "SampleReconstructions", "kl_per_dim_history", "sample_ae_vs_vae", "sample_reconstructions"]
