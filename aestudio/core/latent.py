"""Latent-space tools: 2-D projections with a way back, traversals, interpolation, prior samples.

    proj = Projection().fit(codes, method="pca")      # or "tsne" / "umap"
    proj.points                                        # (N, 2) map of the codes
    z = proj.inverse([[0.5, -1.0]])                    # a code for a clicked point
    images = decode_codes(model, z)

Inverse maps: PCA is exactly invertible on its plane (`inverse` returns the code in the
2-D principal subspace, so `transform(inverse(p)) == p`); a 2-D latent space is shown as is (the
identity); t-SNE and UMAP have no inverse, so `inverse` interpolates the codes of the k nearest
projected points with inverse-distance weights (a clicked point on top of a projected code gives
back that code).

t-SNE is O(N log N) but slow in practice: about a minute for 10 000 points on two CPU cores. `fit`
therefore embeds at most `max_points` codes (a seeded random subset; `indices` says which) and
reports progress through an optional callback `progress(fraction, message)`. scikit-learn's
t-SNE cannot report its iterations, so the callback is called at the start and end of each stage.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .config import PRIOR_KINDS
from .evaluation import decode_codes
from .models import Autoencoder

Progress = Callable[[float, str], None]

TSNE_DEFAULT_MAX_POINTS = 5000


def dim_name(d: int) -> str:
    """The one name of latent dimension `d` (0-based index) everywhere users read it: z1, z2, ..."""
    return f"z{int(d) + 1}"


def available_methods() -> list[str]:
    """Projection methods usable here: pca and tsne always, umap when umap-learn is installed.

    (umap is looked up without importing it: importing numba takes seconds.)
    """
    methods = ["pca", "tsne"]
    try:
        if importlib.util.find_spec("umap") is not None:
            methods.append("umap")
    except (ImportError, ValueError):
        pass
    return methods


class Projection:
    """A 2-D map of codes with a way back from the map to codes.

    After `fit`: `method` is the method used ("identity" for a 2-D latent space, "pad" for 1-D,
    else the one asked for), `points` (M, 2), `codes` (M, latent) the codes that were projected and
    `indices` (M,) their rows in the codes given to `fit` (all rows unless `max_points` cut them).
    """

    def __init__(self, k: int = 8, power: float = 2.0):
        self.k = k  # neighbours used by the interpolating inverse / transform
        self.power = power  # inverse-distance weight exponent
        self.method: str | None = None
        self.requested_method: str | None = None
        self.points: np.ndarray | None = None
        self.codes: np.ndarray | None = None
        self.indices: np.ndarray | None = None
        self._pca = None
        self._pca_mean = self._pca_axes = None  # float32 copies of the fitted PCA's mean_ and components_
        self._umap = None
        self._point_tree = None
        self._code_tree = None

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, codes: np.ndarray, method: str = "pca", seed: int = 0, max_points: int | None = None,
            progress: Progress | None = None, perplexity: float = 30.0) -> "Projection":
        """Project `codes` (N, latent) to 2-D. Returns self.

        max_points: embed at most this many codes (seeded random subset). None means all codes
        for pca/identity and TSNE_DEFAULT_MAX_POINTS for t-SNE / UMAP.
        """
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty (N, latent) array, got shape {codes.shape}")
        method = method.lower()
        if method not in ("pca", "tsne", "t-sne", "umap"):
            raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(available_methods())}")
        method = "tsne" if method == "t-sne" else method
        if method == "umap" and "umap" not in available_methods():
            raise ValueError("UMAP needs the umap-learn package (pip install umap-learn)")
        say = progress or (lambda f, m: None)
        self.requested_method = method
        n, latent = codes.shape
        if max_points is None and method in ("tsne", "umap") and latent > 2:
            max_points = TSNE_DEFAULT_MAX_POINTS
        if max_points is not None and n > max_points:
            idx = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        else:
            idx = np.arange(n)
        self.indices, self.codes = idx, codes[idx]
        self._pca = self._umap = self._point_tree = self._code_tree = None

        if latent <= 2:
            self.method = "identity" if latent == 2 else "pad"
            self.points = self._pad(self.codes)
        elif method == "pca" or len(idx) < 5:
            from sklearn.decomposition import PCA

            self.method = "pca"
            say(0.0, "PCA")
            self._pca = PCA(n_components=2, random_state=seed).fit(self.codes)
            # forward and back by hand (PCA without whitening: centre, then project): the same numbers as
            # sklearn's transform / inverse_transform without their input validation, which cost a
            # millisecond of every map click and slider step on the GUI thread
            self._pca_mean = self._pca.mean_.astype(np.float32)
            self._pca_axes = self._pca.components_.astype(np.float32)
            self.points = (self.codes - self._pca_mean) @ self._pca_axes.T
        elif method == "tsne":
            from sklearn.manifold import TSNE

            self.method = "tsne"
            say(0.0, f"t-SNE on {len(idx)} codes")
            perp = float(min(perplexity, max(1.0, (len(idx) - 1) / 3.0)))
            tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed, learning_rate="auto")
            self.points = tsne.fit_transform(self.codes.astype(np.float64)).astype(np.float32)
        else:
            import umap  # noqa: PLC0415 (optional dependency)

            self.method = "umap"
            say(0.0, f"UMAP on {len(idx)} codes")
            self._umap = umap.UMAP(n_components=2, random_state=seed)
            self.points = self._umap.fit_transform(self.codes).astype(np.float32)
        say(1.0, "done")
        return self

    @staticmethod
    def _pad(codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.float32)
        if codes.shape[1] == 2:
            return codes.copy()
        return np.concatenate([codes, np.zeros((len(codes), 1), np.float32)], axis=1)

    def _check(self) -> None:
        if self.points is None:
            raise RuntimeError("call fit() first")

    # ---- forward and back --------------------------------------------------------------------
    def transform(self, codes: np.ndarray) -> np.ndarray:
        """2-D positions for new codes: exact for pca / identity; UMAP's own transform; for t-SNE an
        inverse-distance-weighted average of the positions of the k nearest fitted codes."""
        self._check()
        codes = np.asarray(codes, dtype=np.float32)
        single = codes.ndim == 1
        codes = codes[None] if single else codes
        if self.method in ("identity", "pad"):
            out = self._pad(codes)
        elif self.method == "pca":
            out = (codes - self._pca_mean) @ self._pca_axes.T
        elif self.method == "umap":
            out = self._umap.transform(codes).astype(np.float32)
        else:
            from scipy.spatial import cKDTree

            if self._code_tree is None:
                self._code_tree = cKDTree(self.codes)
            out = self._idw(self._code_tree, codes, self.points)
        return out[0] if single else out

    def locate(self, codes: np.ndarray) -> np.ndarray:
        """Cheap 2-D positions for marking codes on the map while a slider moves: exact for pca /
        identity, else the inverse-distance-weighted positions of the nearest fitted codes (UMAP's own
        transform is too slow for every slider step)."""
        if self.method in ("identity", "pad", "pca", "tsne"):
            return self.transform(codes)
        self._check()
        codes = np.asarray(codes, dtype=np.float32)
        single = codes.ndim == 1
        codes = codes[None] if single else codes
        from scipy.spatial import cKDTree

        if self._code_tree is None:
            self._code_tree = cKDTree(self.codes)
        out = self._idw(self._code_tree, codes, self.points)
        return out[0] if single else out

    def inverse(self, points2d: np.ndarray) -> np.ndarray:
        """Codes for 2-D map positions (M, 2) -> (M, latent); a single (2,) point gives (latent,)."""
        self._check()
        p = np.asarray(points2d, dtype=np.float32)
        single = p.ndim == 1
        p = p[None] if single else p
        if self.method == "identity":
            out = p.copy()
        elif self.method == "pad":
            out = p[:, :1].copy()
        elif self.method == "pca":
            out = p @ self._pca_axes + self._pca_mean
        else:
            from scipy.spatial import cKDTree

            if self._point_tree is None:
                self._point_tree = cKDTree(self.points)
            out = self._idw(self._point_tree, p, self.codes)
        return out[0] if single else out

    def _idw(self, tree, queries: np.ndarray, values: np.ndarray) -> np.ndarray:
        k = min(self.k, len(values))
        dist, idx = tree.query(queries, k=k)
        dist, idx = dist.reshape(len(queries), k), idx.reshape(len(queries), k)
        exact = dist[:, 0] <= 1e-9
        w = 1.0 / np.maximum(dist, 1e-12) ** self.power
        w /= w.sum(1, keepdims=True)
        out = np.einsum("mk,mkd->md", w, values[idx]).astype(np.float32)
        out[exact] = values[idx[exact, 0]]
        return out


# ---- decoding paths through the code space -----------------------------------------------------
def traverse(model: Autoencoder, base_code: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """Images (len(values), C, H, W) decoded from `base_code` with dimension `dim` set to each value."""
    base = np.asarray(base_code, dtype=np.float32).reshape(-1)
    if not 0 <= dim < base.shape[0]:
        raise ValueError(f"dimension {dim} is out of range for a {base.shape[0]}-dimensional code")
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    z = np.repeat(base[None], len(values), axis=0)
    z[:, dim] = values
    return decode_codes(model, z)


def interpolate_codes(z_a: np.ndarray, z_b: np.ndarray, steps: int, spherical: bool = False) -> np.ndarray:
    """`steps` codes from z_a to z_b inclusive: linear, or spherical (slerp, which keeps the norm
    profile typical of Gaussian codes; falls back to linear for (anti)parallel codes)."""
    a = np.asarray(z_a, dtype=np.float64).reshape(-1)
    b = np.asarray(z_b, dtype=np.float64).reshape(-1)
    t = np.linspace(0.0, 1.0, max(int(steps), 2))[:, None]
    if spherical:
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na > 1e-8 and nb > 1e-8:
            cos = np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0)
            omega = np.arccos(cos)
            if 1e-6 < omega < np.pi - 1e-6:
                s = np.sin(omega)
                return ((np.sin((1 - t) * omega) / s) * a + (np.sin(t * omega) / s) * b).astype(np.float32)
    return ((1 - t) * a + t * b).astype(np.float32)


def interpolate(model: Autoencoder, z_a: np.ndarray, z_b: np.ndarray, steps: int, spherical: bool = False) -> np.ndarray:
    """Images (steps, C, H, W) decoded along the path of `interpolate_codes`."""
    return decode_codes(model, interpolate_codes(z_a, z_b, steps, spherical))


def sample_prior(model: Autoencoder, n: int, seed: int = 0, codes: np.ndarray | None = None,
                 temperature: float = 1.0) -> np.ndarray:
    """`n` images decoded from random codes (seeded).

    A VAE or an adversarial autoencoder (`PRIOR_KINDS`) samples its prior N(0, I). Other autoencoders have no prior: when `codes` (e.g. the
    training codes) are given, a Gaussian with their per-dimension mean and std is sampled instead,
    otherwise N(0, I). `temperature` scales the spread.
    """
    return decode_codes(model, sample_codes(model, n, seed, codes, temperature))


def sample_codes(model: Autoencoder, n: int, seed: int = 0, codes: np.ndarray | None = None,
                 temperature: float = 1.0) -> np.ndarray:
    """The codes `sample_prior` decodes, shape (n, latent)."""
    latent = model.config.latent
    g = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(int(n), latent, generator=g).numpy() * temperature
    if model.config.kind not in PRIOR_KINDS and codes is not None and len(codes):
        st = code_stats(codes)
        return (st.mean + eps * st.std).astype(np.float32)
    return eps.astype(np.float32)


@dataclass
class CodeStats:
    """Per-dimension statistics of a set of codes."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    def range(self, dim: int, sigmas: float = 3.0) -> tuple[float, float]:
        """Slider range for one dimension: mean +- `sigmas` standard deviations."""
        s = float(self.std[dim]) or 1.0
        return float(self.mean[dim] - sigmas * s), float(self.mean[dim] + sigmas * s)


def code_stats(codes: np.ndarray) -> CodeStats:
    c = np.asarray(codes, dtype=np.float64)
    c = c.reshape(len(c), -1)
    return CodeStats(c.mean(0).astype(np.float32), c.std(0).astype(np.float32),
                     c.min(0).astype(np.float32), c.max(0).astype(np.float32))


__all__ = [
    "CodeStats", "Projection", "available_methods", "code_stats", "interpolate", "interpolate_codes",
    "sample_codes", "sample_prior", "traverse",
]
