"""The traversal lab: what does each latent dimension do, and does it track a known factor?

    order, scores, what = dim_order(model, codes, images)        # most informative dimensions first
    grid = traversal_grid(model, base_code, order[:8], np.linspace(-3, 3, 7), sigma)   # (C, Hm, Wm)
    codes_ab, images_ab = interpolation_strip(model, image_a, image_b, steps=10, spherical=True)
    images, note = prior_samples(model, 32, seed=0, codes=codes)
    matrix, summary = factor_correlations(codes, factors, factor_names)

Images follow the project convention: float32 (N, C, H, W) in [0, 1]. `mosaic` tiles them into
one (C, rows*H + (rows-1)*pad, cols*W + (cols-1)*pad) image, cheap to show as a single pixmap.

Traversal values are in standard-deviation units around the base code: a VAE's dimensions are
scaled by the prior's sigma (1, the scale of N(0, I) the decoder was trained to read), other
models' by the spread of their codes on the data (they have no prior, and their dimensions can
differ wildly in scale).

Factor scores (`factor_correlations`) are either the absolute Spearman rank correlation between
each code dimension and each known factor, or the mutual information between them normalised by
the factor's entropy (0: the dimension says nothing about the factor, 1: it determines it). The
summary names, for each factor, the dimension that tracks it best and the gap to the runner-up:
the mean gap is the Mutual Information Gap (MIG, Chen et al. 2018) when the scores are normalised
mutual information, and a MIG-like read-out for correlations. A large gap means one dimension,
and only one, encodes that factor: disentanglement.

Qt-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np

from ..config import PRIOR_KINDS
from ..evaluation import as_float_images, decode_codes, encode_images, per_dim_kl
from ..latent import code_stats, dim_name, interpolate_codes, sample_codes
from ..models import Autoencoder

DEFAULT_VALUES = np.linspace(-3.0, 3.0, 7)
PAD_VALUE = 0.5  # the grey between tiles: visible against both white and black images


# ---- tiling ---------------------------------------------------------------------------------------
def mosaic(images: np.ndarray, rows: int, cols: int, pad: int = 1, fill: float = PAD_VALUE) -> np.ndarray:
    """Tile up to rows*cols images (N, C, H, W) row by row into one (C, rows*H + (rows-1)*pad,
    cols*W + (cols-1)*pad) float32 image; missing tiles and the gaps are `fill`."""
    x = as_float_images(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {x.shape}")
    rows, cols, pad = max(int(rows), 1), max(int(cols), 1), max(int(pad), 0)
    n, c, h, w = x.shape
    out = np.full((c, rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), fill, dtype=np.float32)
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        y0, x0 = r * (h + pad), k * (w + pad)
        out[:, y0:y0 + h, x0:x0 + w] = x[i]
    return out


def tile_centres(count: int, size: int, pad: int = 1) -> np.ndarray:
    """Pixel centres of `count` tiles of `size` pixels laid out with `pad` between them (for axis ticks)."""
    return np.arange(count) * (size + pad) + size / 2.0


# ---- which dimensions matter --------------------------------------------------------------------
def dim_order(model: Autoencoder, codes: np.ndarray, images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Latent dimensions, most informative first: (order, score per dimension, score name).

    VAEs: average KL(q(z_j|x) || N(0, 1)) per dimension on `images`, in nats ("KL"); a dimension
    near 0 carries no information. Other models: the variance of each code dimension ("variance").
    """
    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    if model.config.kind == "vae" and images is not None and len(images):
        scores, what = per_dim_kl(model, images), "KL"
    else:
        scores, what = codes.var(0) if len(codes) else np.zeros(model.config.latent), "variance"
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order, np.asarray(scores, dtype=np.float64), what


def traversal_sigma(model: Autoencoder, codes: np.ndarray | None) -> np.ndarray:
    """The step size of one "sigma" per dimension: 1 for a VAE (its prior), the code std otherwise."""
    latent = model.config.latent
    if model.config.kind in PRIOR_KINDS or codes is None or not len(codes):
        return np.ones(latent, dtype=np.float32)
    std = code_stats(codes).std.astype(np.float32)
    return np.where(std > 1e-8, std, 1.0).astype(np.float32)


def traversal_codes(base_code: np.ndarray, dims: Sequence[int], values: np.ndarray,
                    sigma: np.ndarray | float = 1.0) -> np.ndarray:
    """(len(dims) * len(values), latent) codes: row r varies dimension dims[r] to base + value * sigma."""
    base = np.asarray(base_code, dtype=np.float32).reshape(-1)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float32), base.shape)
    z = np.repeat(base[None], len(dims) * len(values), axis=0)
    for r, d in enumerate(dims):
        if not 0 <= int(d) < base.shape[0]:
            raise ValueError(f"dimension {d} is out of range for a {base.shape[0]}-dimensional code")
        z[r * len(values):(r + 1) * len(values), int(d)] = base[int(d)] + values * sig[int(d)]
    return z


def traversal_grid(model: Autoencoder, base_code: np.ndarray, dims: Sequence[int], values: np.ndarray = DEFAULT_VALUES,
                   sigma: np.ndarray | float = 1.0, pad: int = 1) -> np.ndarray:
    """One mosaic: a row per dimension in `dims`, a column per value (in sigma units around `base_code`).

    Returns float32 (C, len(dims)*H + (len(dims)-1)*pad, len(values)*W + (len(values)-1)*pad).
    """
    dims = [int(d) for d in dims]
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if not dims:
        raise ValueError("choose at least one dimension to traverse")
    images = np.clip(decode_codes(model, traversal_codes(base_code, dims, values, sigma)), 0.0, 1.0)
    return mosaic(images, len(dims), len(values), pad)


# ---- paths and samples ----------------------------------------------------------------------------
def interpolation_strip(model: Autoencoder, image_a: np.ndarray, image_b: np.ndarray, steps: int = 10,
                        spherical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Encode two images (C, H, W) and decode `steps` codes on the path between them (ends included).

    Linear: a straight line. Spherical (slerp): along the great circle, keeping the norm profile
    typical of Gaussian codes, so a VAE's decoder never sees the too-short codes the middle of a
    straight line gives in high dimensions. Returns (codes (steps, latent), images (steps, C, H, W)).
    """
    pair = np.stack([as_float_images(image_a), as_float_images(image_b)])
    za, zb = encode_images(model, pair)
    codes = interpolate_codes(za, zb, steps, spherical)
    return codes, np.clip(decode_codes(model, codes), 0.0, 1.0)


def prior_samples(model: Autoencoder, n: int = 32, seed: int = 0, codes: np.ndarray | None = None,
                  temperature: float = 1.0) -> tuple[np.ndarray, str]:
    """`n` decoded random codes and a sentence saying where they came from.

    VAEs sample their prior N(0, I). Other autoencoders have no prior: codes are drawn from a
    Gaussian fitted to `codes` (per-dimension mean and std), which often lands in empty regions.
    """
    z = sample_codes(model, n, seed, codes, temperature)
    images = np.clip(decode_codes(model, z), 0.0, 1.0)
    if model.config.kind == "vae":
        note = "Samples from the prior N(0, I): the VAE was trained so that such codes decode to plausible images."
    elif model.config.kind == "aae":
        note = ("Samples from the prior N(0, I): the adversarial autoencoder's discriminator pushed its codes toward "
                "that prior, so such codes should decode to plausible images.")
    elif codes is not None and len(codes):
        note = ("Samples from a Gaussian fitted to the codes (per-dimension mean and std): this model has no prior, "
                "so random codes may fall in gaps between the training codes and decode to blends or noise.")
    else:
        note = "Samples from N(0, I): this model has no prior and no codes were given to fit one."
    return images, note


# ---- factors -------------------------------------------------------------------------------------
def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=0).astype(np.float64)


def _abs_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|Pearson correlation| between every column of a (N, D) and every column of b (N, F); 0 for constants."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.sqrt((a ** 2).sum(0)), np.sqrt((b ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a.T @ b) / np.outer(na, nb)
    return np.nan_to_num(np.abs(c), nan=0.0)


def _discretise(v: np.ndarray, bins: int) -> np.ndarray:
    """Integer bins: the values themselves when there are few distinct ones, else equal-count bins."""
    uniq, inverse = np.unique(v, return_inverse=True)
    if len(uniq) <= bins:
        return inverse.reshape(-1)
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, v, side="right")


def _entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two binned variables, minus the Miller-Madow bias
    (|A|-1)(|B|-1)/(2N) the plug-in estimate has even for independent variables; at least 0."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())
    bias = (np.count_nonzero(pa) - 1) * (np.count_nonzero(pb) - 1) / (2.0 * len(a))
    return max(mi - bias, 0.0)


def default_bins(n: int) -> int:
    """Bins for mutual information on n samples: about ten samples per cell of a bins x bins table, 4 to 20."""
    return int(np.clip(np.sqrt(max(n, 1) / 10.0), 4, 20))


@dataclass
class FactorSummary:
    """For each factor: the dimension that tracks it best, its score, the runner-up's score and the gap."""

    method: str  # "spearman" | "mi"
    factor_names: list[str]
    best_dim: np.ndarray  # (F,) int
    best_score: np.ndarray  # (F,)
    second_score: np.ndarray  # (F,)
    gap: np.ndarray  # (F,) best - second
    gap_score: float  # mean gap over factors: MIG for normalised mutual information
    line: str = ""
    verdict: str = ""
    extra: dict = field(default_factory=dict)


CAPTURED = 0.1  # a factor whose best score is below this is "not captured" by any dimension
METHOD_LABELS = {"spearman": "|Spearman correlation|", "mi": "normalised mutual information"}


def factor_correlations(codes: np.ndarray, factors: np.ndarray, factor_names: Sequence[str],
                        method: str = "spearman", bins: int | None = None) -> tuple[np.ndarray, FactorSummary]:
    """How strongly each code dimension tracks each known factor: (matrix (latent, F), summary).

    method "spearman": |Spearman rank correlation| (monotonic relations; blind to a categorical
    factor's arbitrary order and to cyclic ones such as rotation). method "mi": mutual information
    between the dimension (discretised into `bins` equal-count bins; None: `default_bins(N)`, fewer
    for fewer codes) and the factor (its own values when it has at most `bins` distinct ones, else
    binned), bias-corrected (Miller-Madow) and divided by the factor's entropy, so 0 means the
    dimension says nothing about the factor and 1 that it determines it. Scores are in [0, 1].
    """
    z = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    f = np.asarray(factors, dtype=np.float64).reshape(len(factors), -1)
    names = [str(n) for n in factor_names]
    if len(z) != len(f):
        raise ValueError(f"{len(z)} codes but {len(f)} factor rows")
    if f.shape[1] != len(names):
        raise ValueError(f"{f.shape[1]} factor columns but {len(names)} names")
    if method == "spearman":
        matrix = _abs_corr(_ranks(z), _ranks(f))
    elif method == "mi":
        bins = default_bins(len(z)) if bins is None else max(2, int(bins))
        zb = [_discretise(z[:, j], bins) for j in range(z.shape[1])]
        matrix = np.zeros((z.shape[1], f.shape[1]))
        for k in range(f.shape[1]):
            fb = _discretise(f[:, k], bins)
            h = _entropy(fb)
            if h <= 1e-12:
                continue
            for j in range(z.shape[1]):
                matrix[j, k] = _mutual_info(zb[j], fb) / h
        matrix = np.clip(matrix, 0.0, 1.0)
    else:
        raise ValueError(f"unknown method {method!r}; use 'spearman' or 'mi'")
    return matrix, summarize_factors(matrix, names, method)


def summarize_factors(matrix: np.ndarray, factor_names: Sequence[str], method: str = "spearman") -> FactorSummary:
    m = np.asarray(matrix, dtype=np.float64)
    latent, nf = m.shape
    srt = -np.sort(-m, axis=0)
    best_dim = np.argmax(m, axis=0) if latent else np.zeros(nf, int)
    best = srt[0] if latent else np.zeros(nf)
    second = srt[1] if latent > 1 else np.zeros(nf)
    gap = best - second
    gap_score = float(gap.mean()) if nf else float("nan")
    parts = [f"{n} → {dim_name(d)} ({s:.2f})" if s >= CAPTURED else f"{n} → none ({s:.2f})"
             for n, d, s in zip(factor_names, best_dim, best)]
    label = "MIG" if method == "mi" else "MIG-like gap"
    line = "; ".join(parts) + f"  ·  {label} {gap_score:.2f}"
    if gap_score >= 0.3:
        verdict = "Well disentangled: most factors are tracked by one dimension each."
    elif gap_score >= 0.1:
        verdict = "Partly disentangled: some factors have a dimension of their own, others are spread over several."
    else:
        verdict = "Entangled: factors are spread over several dimensions (or not captured at all)."
    shared = {}
    for k, d in enumerate(best_dim):
        shared.setdefault(int(d), []).append(k)
    both = [f"{dim_name(d)} ({', '.join(factor_names[k] for k in ks)})" for d, ks in shared.items() if len(ks) > 1 and
            all(best[k] > 0.2 for k in ks)]
    if both:
        verdict += " Shared: " + "; ".join(both) + "."
    return FactorSummary(method, list(factor_names), best_dim.astype(int), best, second, gap, gap_score, line, verdict)


# ---- the whole lab -----------------------------------------------------------------------------
MAX_IMAGES = 10_000


@dataclass
class TraversalResult:
    kind: str  # the model's kind (vae, ae, ...)
    image_size: tuple[int, int]  # (H, W) of one tile
    pad: int
    base: str  # "mean code" or "image 12"
    dims: list[int]  # traversed dimensions, top to bottom
    scores: np.ndarray  # per dimension (all of them): KL (VAE) or variance
    score_name: str  # "KL" or "variance"
    values: np.ndarray  # sigma multiples, left to right
    sigma: np.ndarray  # per dimension, the size of one step unit
    grid: np.ndarray  # (C, Hm, Wm) traversal mosaic
    strips: dict[str, np.ndarray]  # "linear" (and "spherical" for VAEs) -> (C, H, steps*W + pads) mosaic
    pair: tuple[int, int]  # the two validation images interpolated
    samples: np.ndarray  # (C, Hm, Wm) mosaic of prior samples
    sample_grid: tuple[int, int]  # rows, cols of the samples mosaic
    sample_note: str
    factor_matrix: np.ndarray | None = None  # (latent, F)
    factor_summary: FactorSummary | None = None
    n_codes: int = 0

    def rows(self) -> tuple[list[str], list[list]]:
        """The numbers table: a row per dimension (by score), its score and its factor scores."""
        header = ["dimension", self.score_name]
        if self.factor_summary is not None:
            header += list(self.factor_summary.factor_names)
        order = np.argsort(-self.scores, kind="stable")
        out = []
        for d in order:
            row: list = [f"{dim_name(d)}", float(self.scores[d])]
            if self.factor_matrix is not None:
                row += [float(v) for v in self.factor_matrix[d]]
            out.append(row)
        return header, out


def traversal_experiment(model: Autoencoder, images: np.ndarray, factors: np.ndarray | None = None,
                         factor_names: Sequence[str] = (), base_index: int | None = None, max_rows: int = 10,
                         steps: int = 7, pair: tuple[int, int] = (0, 1), interp_steps: int = 10, n_samples: int = 32,
                         seed: int = 0, method: str = "spearman", progress=None,
                         max_images: int = MAX_IMAGES) -> TraversalResult:
    """Everything the traversal lab shows, computed on `images` (the validation split, (N, C, H, W)).

    base_index: traverse around that image's code (None: around the mean code). The traversal
    covers the `max_rows` most informative dimensions with `steps` values from -3 to 3 sigma.
    `pair` indexes the two images interpolated. Factor scores are computed when `factors` is given.
    """
    say = progress or (lambda d, t: None)
    total = 6
    say(0, total)
    x_all = np.asarray(images)
    n = len(x_all)
    if n == 0:
        raise ValueError("no images to encode")
    if n > max_images:
        pick = np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))
    else:
        pick = np.arange(n)
    x = as_float_images(x_all[pick])
    codes = encode_images(model, x)
    say(1, total)
    order, scores, what = dim_order(model, codes, x)
    say(2, total)
    sigma = traversal_sigma(model, codes)
    if base_index is None:
        base, base_label = codes.mean(0), "mean code"
    else:
        bi = int(np.clip(base_index, 0, n - 1))
        base, base_label = encode_images(model, as_float_images(x_all[bi:bi + 1]))[0], f"image {bi}"
    dims = [int(d) for d in order[:max(1, min(int(max_rows), len(order)))]]
    values = np.linspace(-3.0, 3.0, max(2, int(steps)))
    pad = 1
    grid = traversal_grid(model, base, dims, values, sigma, pad)
    say(3, total)
    ia, ib = (int(np.clip(i, 0, n - 1)) for i in pair)
    strips = {}
    modes = [("linear", False)] + ([("spherical", True)] if model.config.kind == "vae" else [])
    for name, sph in modes:
        _, imgs = interpolation_strip(model, as_float_images(x_all[ia]), as_float_images(x_all[ib]),
                                      interp_steps, sph)
        strips[name] = mosaic(imgs, 1, len(imgs), pad)
    say(4, total)
    n_samples = max(1, int(n_samples))
    cols = int(np.ceil(np.sqrt(n_samples * 2)))  # wider than tall
    cols = min(cols, n_samples)
    rows = int(np.ceil(n_samples / cols))
    samples, note = prior_samples(model, n_samples, seed, codes)
    sample_mosaic = mosaic(samples, rows, cols, pad)
    say(5, total)
    matrix = summary = None
    if factors is not None and len(factor_names):
        f = np.asarray(factors)[pick]
        matrix, summary = factor_correlations(codes, f, factor_names, method)
    say(total, total)
    h, w = x.shape[-2:]
    return TraversalResult(model.config.kind, (int(h), int(w)), pad, base_label, dims, scores, what, values, sigma,
                           grid, strips, (ia, ib), sample_mosaic, (rows, cols), note, matrix, summary, len(codes))


__all__ = [
    "CAPTURED", "DEFAULT_VALUES", "METHOD_LABELS", "FactorSummary", "TraversalResult", "default_bins", "dim_order",
    "factor_correlations", "interpolation_strip", "mosaic", "prior_samples", "summarize_factors", "tile_centres",
    "traversal_codes", "traversal_experiment", "traversal_grid", "traversal_sigma",
]
