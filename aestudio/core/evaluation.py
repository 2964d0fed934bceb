"""Quality measures for trained autoencoders: pure functions on numpy arrays and a model.

Images are float32 numpy arrays of shape (N, C, H, W) in [0, 1] (uint8 arrays are accepted and
divided by 255). Every model pass runs in eval mode under `torch.no_grad`, in batches of
`batch_size` images on the model's device, and the model's train/eval mode is restored after.

    evaluate_run(run, None, None, val_set, train_data=train_set)   # every measure that applies

Conventions:

* MSE values are per pixel on the [0, 1] scale (mean over images, channels and pixels). A model
  with a linear output is scored on its output clipped to [0, 1], the image range, as PCA's
  reconstructions are (a sigmoid output is in that range already).
* PSNR is computed per image with data range 1 and then averaged over images (in dB).
* SSIM uses an 11x11 Gaussian window (sigma 1.5, shrunk for tiny images), the constants of
  Wang et al. (K1=0.01, K2=0.03, data range 1), "valid" filtering, channels averaged.
* ELBO is in nats per image (see `elbo_nats`).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .config import ConfigError, ModelConfig, TrainConfig
from .losses import kl_normal
from .models import Autoencoder
from .noise import Noise, parse_noise

BATCH = 1024


# ---- model passes -----------------------------------------------------------------------------
def as_float_images(x: Any) -> np.ndarray:
    """Images as a float32 numpy array in [0, 1]; uint8 arrays are divided by 255."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)


class _EvalMode:
    """Put a model in eval mode for a block and restore its previous mode after."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self) -> torch.nn.Module:
        self.was_training = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batched(model: Autoencoder, x: np.ndarray, fn, batch_size: int = BATCH) -> np.ndarray:
    """Apply `fn(model, batch_tensor) -> tensor` over x in batches; concatenate the results as numpy."""
    x = as_float_images(x)
    dev = _device(model)
    outs = []
    with _EvalMode(model), torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(dev)
            outs.append(fn(model, xb).float().cpu().numpy())
    if not outs:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(outs, axis=0)


def encode_images(model: Autoencoder, x: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """Codes (N, latent): the deterministic code, or the posterior mean mu for a VAE."""
    out = _batched(model, x, lambda m, xb: m.encode(xb).mu, batch_size)
    return out.reshape(len(out), -1) if out.size else np.zeros((0, model.config.latent), np.float32)


def reconstruct_images(model: Autoencoder, x: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """The model's output for each input image (a VAE decodes its posterior mean)."""
    return _batched(model, x, lambda m, xb: m.decode(m.encode(xb).mu), batch_size)


def decode_codes(model: Autoencoder, z: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """Images (N, C, H, W) decoded from codes (N, latent)."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim == 1:
        z = z[None]
    return _batched(model, z, lambda m, zb: m.decode(zb), batch_size)


def _per_image_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (np.asarray(a, np.float32) - np.asarray(b, np.float32)).reshape(len(a), -1)
    return np.mean(d.astype(np.float64) ** 2, axis=1)


def recon_mse(model: Autoencoder, x: np.ndarray, x_in: np.ndarray | None = None, batch_size: int = BATCH) -> float:
    """Mean squared error per pixel ([0, 1] scale) between `x` and the model's output.

    The model reads `x_in` when given (e.g. a corrupted copy) and is compared with the clean `x`.
    """
    return float(np.mean(anomaly_scores(model, x, x_in=x_in, batch_size=batch_size)))


def anomaly_scores(model: Autoencoder, x: np.ndarray, x_in: np.ndarray | None = None,
                   batch_size: int = BATCH) -> np.ndarray:
    """Per-image reconstruction MSE (N,): high for images unlike the training data."""
    x = as_float_images(x)
    src = x if x_in is None else as_float_images(x_in)
    scores = []
    for i in range(0, x.shape[0], batch_size):
        rec = np.clip(reconstruct_images(model, src[i:i + batch_size], batch_size), 0.0, 1.0)
        scores.append(_per_image_mse(x[i:i + batch_size], rec))
    return np.concatenate(scores) if scores else np.zeros((0,))


# ---- the PCA baseline -------------------------------------------------------------------------
def fit_pca(train_x: np.ndarray, k: int, seed: int = 0):
    """A PCA with k components fitted on flattened images (k is capped at the rank available).

    Exact for small images (eigendecomposition of the pixel covariance); randomized SVD
    (seeded, deterministic) when images have more than 2048 pixels.
    """
    from sklearn.decomposition import PCA

    flat = as_float_images(train_x).reshape(len(train_x), -1)
    k = int(max(1, min(k, flat.shape[0], flat.shape[1])))
    solvers = ["covariance_eigh", "full"] if flat.shape[1] <= 2048 else ["randomized"]
    last: Exception | None = None
    for solver in solvers:
        try:
            return PCA(n_components=k, svd_solver=solver, random_state=seed).fit(flat)
        except ValueError as e:  # covariance_eigh needs scikit-learn >= 1.5
            last = e
    raise last  # pragma: no cover


def pca_reconstruct(pca, x: np.ndarray) -> np.ndarray:
    """PCA reconstruction of images, clipped to [0, 1], same shape as x."""
    x = as_float_images(x)
    flat = x.reshape(len(x), -1)
    rec = pca.inverse_transform(pca.transform(flat))
    return np.clip(rec, 0.0, 1.0).reshape(x.shape).astype(np.float32)


def pca_baseline(train_x: np.ndarray, eval_x: np.ndarray, k: int, seed: int = 0) -> dict[str, Any]:
    """PCA with the same code size: fitted on `train_x`, MSE per pixel on `eval_x` (recon clipped to [0, 1]).

    Returns {"mse": float, "model": the fitted sklearn PCA, "k": components used}.
    """
    pca = fit_pca(train_x, k, seed)
    ev = as_float_images(eval_x)
    mse = float(np.mean(_per_image_mse(ev, pca_reconstruct(pca, ev))))
    return {"mse": mse, "model": pca, "k": int(pca.n_components_)}


# ---- linear autoencoders and PCA's subspace ---------------------------------------------------
LINEAR_KINDS = ("ae", "contractive", "vae", "aae")


def is_linear_model(config: ModelConfig) -> bool:
    """True when the model's decoder is an affine map of the code and its encoder a linear one: a dense
    model whose hidden activations and output are all linear (or that has no hidden layer and a linear
    output), of a kind with an unsquashed code, and a code smaller than the input."""
    return (config.arch == "dense" and config.kind in LINEAR_KINDS and config.output == "linear"
            and all(a == "linear" for a in config.layer_activations) and config.latent < config.input_dim)


def decoder_matrix(model: Autoencoder) -> np.ndarray:
    """(D, k): the matrix A of a linear model's decoder, decode(z) = A z + b, probed with the unit codes.
    Meaningful only when `is_linear_model(model.config)`."""
    k = int(model.config.latent)
    with _EvalMode(model) as m, torch.no_grad():
        z = torch.cat([torch.zeros(1, k), torch.eye(k)]).to(_device(model))
        out = m.decode_logits(z).flatten(1).double().cpu().numpy()
    return (out[1:] - out[:1]).T


def subspace_angles_deg(model: Autoencoder, components: np.ndarray) -> np.ndarray:
    """Principal angles, in degrees (largest first), between the column space of a linear model's decoder
    and the span of `components` (k, D), e.g. a fitted PCA's `components_`."""
    from scipy.linalg import subspace_angles

    comps = np.asarray(components, dtype=np.float64).reshape(len(components), -1)
    return np.degrees(subspace_angles(decoder_matrix(model), comps.T))


def subspace_angle_deg(model: Autoencoder, components: np.ndarray) -> float:
    """The mean principal angle (degrees) between a linear decoder's column space and `components`' span:
    0 when the autoencoder reconstructs through exactly PCA's subspace, 90 when the two are orthogonal."""
    return float(np.mean(subspace_angles_deg(model, components)))


# ---- image similarity -----------------------------------------------------------------------
def psnr_per_image(clean: np.ndarray, other: np.ndarray, max_db: float | None = None) -> np.ndarray:
    """PSNR in dB for each image (data range 1). Identical images give inf (or `max_db` when given)."""
    mse = _per_image_mse(as_float_images(clean), as_float_images(other))
    with np.errstate(divide="ignore"):
        out = np.where(mse > 0, -10.0 * np.log10(np.maximum(mse, 1e-300)), np.inf)
    if max_db is not None:
        out = np.minimum(out, max_db)
    return out


def psnr(clean: np.ndarray, other: np.ndarray, max_db: float | None = None) -> float:
    """Mean over images of the per-image PSNR (dB, data range 1).

    inf when any image is reproduced exactly and `max_db` is None; pass e.g. max_db=100 to cap
    each image (the value `evaluate_run` uses, so its JSON stays finite).
    """
    return float(np.mean(psnr_per_image(clean, other, max_db)))


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_per_image(clean: np.ndarray, other: np.ndarray, window: int = 11, sigma: float = 1.5,
                   batch_size: int = BATCH) -> np.ndarray:
    """Structural similarity per image (N,), averaged over the SSIM map and the channels.

    Gaussian-weighted local statistics (window 11, sigma 1.5; smaller odd window for images
    under 11 pixels), K1=0.01, K2=0.03, data range 1, valid filtering. 1.0 for identical images.
    """
    a_all, b_all = as_float_images(clean), as_float_images(other)
    if a_all.shape != b_all.shape:
        raise ValueError(f"SSIM needs images of the same shape, got {a_all.shape} and {b_all.shape}")
    if a_all.ndim == 3:  # (N, H, W) grayscale
        a_all, b_all = a_all[:, None], b_all[:, None]
    n, c, h, w = a_all.shape
    size = min(window, h, w)
    if size % 2 == 0:
        size -= 1
    size = max(size, 1)
    sig = sigma * size / window if size < window else sigma
    kernel = _gaussian_window(size, sig).to(torch.float64)[None, None].repeat(c, 1, 1, 1)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for i in range(0, n, batch_size):
        a = torch.from_numpy(np.ascontiguousarray(a_all[i:i + batch_size])).double()
        b = torch.from_numpy(np.ascontiguousarray(b_all[i:i + batch_size])).double()

        def filt(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, kernel, groups=c)

        mu_a, mu_b = filt(a), filt(b)
        s_aa = filt(a * a) - mu_a ** 2
        s_bb = filt(b * b) - mu_b ** 2
        s_ab = filt(a * b) - mu_a * mu_b
        num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
        den = (mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2)
        out.append((num / den).flatten(1).mean(1).numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def ssim(clean: np.ndarray, other: np.ndarray, **kw: Any) -> float:
    """Mean over images of `ssim_per_image`."""
    return float(np.mean(ssim_per_image(clean, other, **kw)))


# ---- VAE measures ---------------------------------------------------------------------------
def _require_vae(model: Autoencoder, what: str) -> None:
    if model.config.kind != "vae":
        raise ValueError(f"{what} is defined for variational autoencoders only (this model is {model.config.kind!r})")


def elbo_nats(model: Autoencoder, x: np.ndarray, samples: int = 1, seed: int = 0, batch_size: int = BATCH) -> float:
    """The VAE's negative ELBO in nats per image (lower is better; always positive for [0, 1] data).

    -ELBO = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || N(0, I)), the expectation estimated with
    `samples` reparameterised draws per image (seeded, so the number is reproducible; 0 uses
    the posterior mean only). The reconstruction term is the Bernoulli negative log-likelihood
    (binary cross-entropy summed over pixels) whenever the output is a sigmoid, regardless of the
    loss the model was trained with, so runs trained with MSE and BCE are compared on one scale.
    For a linear output it is the unit-variance Gaussian negative log-likelihood
    0.5 * ||x - x_hat||^2 + 0.5 * D * log(2 pi). Intensities in [0, 1] are treated as Bernoulli
    probabilities (the usual convention for grayscale images), so this is a bound-style score for
    comparing models, not an exact likelihood of discrete pixels.
    """
    _require_vae(model, "the ELBO")
    x = as_float_images(x)
    dev = _device(model)
    gen = torch.Generator(device=dev).manual_seed(seed)
    total, n = 0.0, x.shape[0]
    d = int(np.prod(x.shape[1:]))
    with _EvalMode(model) as m, torch.no_grad():
        for i in range(0, n, batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(dev)
            code = m.encode(xb)
            mu, logvar = code.mu, code.logvar
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
            draws = [mu] if samples <= 0 else [
                mu + torch.randn(mu.shape, generator=gen, device=dev, dtype=mu.dtype) * torch.exp(0.5 * logvar)
                for _ in range(samples)
            ]
            nll = torch.zeros_like(kl)
            for z in draws:
                logits = m.decode_logits(z)
                if m.config.output == "sigmoid":
                    per = F.binary_cross_entropy_with_logits(logits, xb, reduction="none")
                    nll = nll + per.flatten(1).sum(1)
                else:
                    nll = nll + 0.5 * (logits - xb).pow(2).flatten(1).sum(1) + 0.5 * d * math.log(2 * math.pi)
            nll = nll / len(draws)
            total += float((nll + kl).sum())
    return total / max(n, 1)


def per_dim_kl(model: Autoencoder, x: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """Average KL(q(z_j|x) || N(0, 1)) for each latent dimension j, in nats: shape (latent,)."""
    _require_vae(model, "per-dimension KL")
    x = as_float_images(x)
    dev = _device(model)
    sums = torch.zeros(model.config.latent, dtype=torch.float64)
    with _EvalMode(model) as m, torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(dev)
            code = m.encode(xb)
            sums += kl_normal(code.mu, code.logvar, per_dim=True).double().cpu() * xb.shape[0]
    return (sums / max(x.shape[0], 1)).numpy()


def inactive_dims(kl_per_dim: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Indices of latent dimensions whose average KL is below `threshold` nats (collapsed to the prior)."""
    return np.flatnonzero(np.asarray(kl_per_dim) < threshold)


# ---- representation quality ------------------------------------------------------------------
def pick_labeled(labels: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of `per_class` examples of each class (all of a class when it has fewer), seeded.

    None or <= 0 picks every example.
    """
    labels = np.asarray(labels)
    if per_class is None or per_class <= 0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        picked.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros((0,), dtype=np.int64)


def _probe_data(train_feats, train_labels, labels_per_class, seed):
    train_feats = np.asarray(train_feats, dtype=np.float64).reshape(len(train_feats), -1)
    train_labels = np.asarray(train_labels)
    idx = pick_labeled(train_labels, labels_per_class, seed)
    return train_feats[idx], train_labels[idx]


def _standardise(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = xtr.mean(0)
    std = xtr.std(0)
    std[std < 1e-8] = 1.0
    return (xtr - mean) / std, (xte - mean) / std


def probe_accuracy(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray,
                   test_labels: np.ndarray, labels_per_class: int | None = 10, seed: int = 0) -> float:
    """Linear-probe accuracy: logistic regression on `labels_per_class` labelled examples per class.

    The labelled examples are drawn from the training features with a seeded RNG; features are
    standardised with the statistics of those examples; the classifier (L2, C=1, lbfgs, up to
    5000 iterations) is scored on all test features. A class missing from the labelled set
    counts as errors.
    """
    from sklearn.linear_model import LogisticRegression

    xtr, ytr = _probe_data(train_feats, train_labels, labels_per_class, seed)
    xte = np.asarray(test_feats, dtype=np.float64).reshape(len(test_feats), -1)
    yte = np.asarray(test_labels)
    if len(yte) == 0:
        return float("nan")
    classes = np.unique(ytr)
    if len(classes) < 2:
        return float(np.mean(yte == classes[0])) if len(classes) else float("nan")
    xtr, xte = _standardise(xtr, xte)
    clf = LogisticRegression(C=1.0, max_iter=5000, tol=1e-4)
    clf.fit(xtr, ytr)
    return float(np.mean(clf.predict(xte) == yte))


def knn_accuracy(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray,
                 test_labels: np.ndarray, labels_per_class: int | None = 10, seed: int = 0, k: int = 5) -> float:
    """k-nearest-neighbour accuracy (Euclidean on standardised features) with the same labelled examples
    as `probe_accuracy`; k is 5, or fewer when there are fewer labelled examples than that."""
    from sklearn.neighbors import KNeighborsClassifier

    xtr, ytr = _probe_data(train_feats, train_labels, labels_per_class, seed)
    xte = np.asarray(test_feats, dtype=np.float64).reshape(len(test_feats), -1)
    yte = np.asarray(test_labels)
    if len(yte) == 0 or len(ytr) == 0:
        return float("nan")
    xtr, xte = _standardise(xtr, xte)
    kk = max(1, min(k, len(ytr), max(1, int(np.min(np.unique(ytr, return_counts=True)[1])))))
    with warnings.catch_warnings():  # many classes of few images each: sklearn wonders if it is a regression
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        clf = KNeighborsClassifier(n_neighbors=kk).fit(xtr, ytr)
    return float(np.mean(clf.predict(xte) == yte))


def silhouette(codes: np.ndarray, labels: np.ndarray, max_points: int = 5000, seed: int = 0) -> float:
    """Silhouette score of the codes grouped by label (-1..1; higher: classes form tighter, separate
    clusters), on a seeded random subset of at most `max_points` codes. nan when < 2 classes."""
    from sklearn.metrics import silhouette_score

    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    labels = np.asarray(labels)
    if len(codes) > max_points:
        idx = np.random.default_rng(seed).choice(len(codes), size=max_points, replace=False)
        codes, labels = codes[idx], labels[idx]
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(codes):
        return float("nan")
    return float(silhouette_score(codes, labels))


# ---- anomaly detection ---------------------------------------------------------------------
def anomaly_auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the ROC curve of `scores` separating anomalies (True) from normal images.
    0.5 is chance, 1.0 perfect. nan when only one of the two groups is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(is_anomaly).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def roc_curve(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), as sklearn.metrics.roc_curve."""
    from sklearn.metrics import roc_curve as _roc

    return _roc(np.asarray(is_anomaly).astype(bool), np.asarray(scores, dtype=np.float64))


def resolve_classes(classes: Iterable[int | str], class_names: Sequence[str] | None) -> list[int]:
    """Class indices from a mix of indices and names (names matched case-insensitively)."""
    names = [str(n) for n in (class_names or [])]
    lower = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for c in classes:
        if isinstance(c, (int, np.integer)):
            i = int(c)
        else:
            text = str(c).strip()
            if text.lower() in lower:
                i = lower[text.lower()]
            elif text.removeprefix("-").isdecimal():
                i = int(text)
            else:
                raise ConfigError(f"unknown class {text!r}; classes are: {', '.join(names) or '(none)'}")
        if names and not 0 <= i < len(names):
            raise ConfigError(f"class index {i} is out of range; there are {len(names)} classes")
        out.append(i)
    return out


def mean_image_mse(train_x: np.ndarray, eval_x: np.ndarray) -> float:
    """Per-pixel MSE on `eval_x` of always predicting the mean image of `train_x` (both (N, C, H, W))."""
    mean = np.asarray(train_x, dtype=np.float64).mean(0)
    return float(np.mean((np.asarray(eval_x, dtype=np.float64) - mean) ** 2))


# ---- everything at once -------------------------------------------------------------------
def evaluate_run(run_or_model: Any, model_config: ModelConfig | None, train_config: TrainConfig | None, data: Any, *,
                 train_data: Any = None, noise: str | Noise | None = None, normal_classes: Iterable[int | str] | None = None,
                 labels_per_class: int | None = 10, seed: int = 0, batch_size: int = BATCH,
                 progress=None) -> dict[str, float]:
    """Every measure that applies to this model and data set, as plain floats (JSON-ready).

    `run_or_model` is a `checkpoint.Run` (its configs are used when the config arguments are
    None) or an `Autoencoder`. `data` is the `ImageSet` evaluated (typically the validation
    split); `train_data` the images the model was trained on (typically the train split), used
    to fit the baselines and the probes. When `train_data` is None (or its image shape differs),
    PCA is fitted on `data` itself; when there are no training labels for the same classes
    (no `train_data`, or one with other class names), the probes' labelled examples are drawn
    from `data` and the probes are tested on the remaining images.

    Keys:
      recon_mse      per-pixel MSE of the model reconstructing clean `data` images.
      pca_mse        per-pixel MSE of PCA with as many components as the code size (fitted on
                     train_data, recon clipped to [0, 1]).
      mean_image_mse per-pixel MSE of always predicting the mean training image (of train_data,
                     else of `data`): the error of a model that learned nothing about each image.
      subspace_angle_deg  linear dense models only (`is_linear_model`): the mean principal angle, in
                     degrees, between the decoder's column space and the span of that PCA's
                     components (0: the autoencoder found PCA's subspace).
      psnr_noisy, psnr_denoised   when noise is active (`noise` None means the training noise;
                     pass "none" to skip): mean per-image PSNR (dB, capped at 100) of the
                     corrupted images and of the model's outputs for them, both against the clean
                     images. Corruption is seeded by `seed`.
      elbo_nats      VAE only: negative ELBO, nats per image (see `elbo_nats`).
      probe_accuracy, probe_accuracy_pca, probe_accuracy_raw, knn_accuracy, silhouette
                     when labels exist. Protocol: `labels_per_class` labelled examples per class
                     drawn (seeded) from the training images; a logistic regression on standardised
                     features is fitted on them and scored on every `data` image. The features are
                     the codes (posterior mean for a VAE), the PCA coefficients of the same size,
                     and the raw pixels. knn_accuracy: 5-NN on the codes, same examples. silhouette:
                     of the `data` codes grouped by label (at most 5000 points).
      anomaly_auroc  when `normal_classes` (indices or names) is given: AUROC of the per-image
                     reconstruction error separating images of other classes (anomalies) from the
                     normal ones.
    Measures that cannot be computed (e.g. a single class present) are left out rather than NaN.
    """
    model = getattr(run_or_model, "model", run_or_model)
    model_config = model_config or getattr(run_or_model, "model_config", None) or model.config
    train_config = train_config or getattr(run_or_model, "train_config", None) or TrainConfig()
    say = progress or (lambda message: None)

    x = as_float_images(data.images)
    shape = tuple(model_config.input_shape)
    if tuple(x.shape[1:]) != shape:
        raise ConfigError(f"the model expects images of shape {shape} but the data set has {tuple(x.shape[1:])}")
    if x.shape[0] == 0:
        raise ConfigError("there are no images to evaluate")
    labels = None if getattr(data, "labels", None) is None else np.asarray(data.labels)
    same_train = train_data is not None and tuple(train_data.images.shape[1:]) == shape and train_data.images.shape[0] > 0
    tx = as_float_images(train_data.images) if same_train else None
    # the training labels serve the probes only when they name the same classes as `data`'s
    same_classes = same_train and train_data.labels is not None and labels is not None and \
        list(getattr(train_data, "class_names", []) or []) == list(getattr(data, "class_names", []) or [])
    tlabels = np.asarray(train_data.labels) if same_classes else None
    normal = None
    if normal_classes is not None:
        if labels is None:
            raise ConfigError("anomaly detection needs labelled images: this data set has no classes")
        normal = resolve_classes(list(normal_classes), getattr(data, "class_names", None))

    out: dict[str, float] = {}
    say("reconstruction error")
    out["recon_mse"] = recon_mse(model, x, batch_size=batch_size)
    say("PCA baseline")
    pca = pca_baseline(tx if same_train else x, x, model_config.latent, seed)
    out["pca_mse"] = pca["mse"]
    out["mean_image_mse"] = mean_image_mse(tx if same_train else x, x)
    if is_linear_model(model_config) and pca["k"] == model_config.latent:
        out["subspace_angle_deg"] = subspace_angle_deg(model, pca["model"].components_)

    nz = parse_noise(train_config.noise if noise is None else noise) if not isinstance(noise, Noise) else noise
    if nz.active:
        say(f"denoising ({nz.spec()})")
        gen = torch.Generator().manual_seed(seed)
        noisy = nz.apply(torch.from_numpy(x.copy()), gen).numpy()
        out["psnr_noisy"] = psnr(x, noisy, max_db=100.0)
        out["psnr_denoised"] = psnr(x, reconstruct_images(model, noisy, batch_size), max_db=100.0)

    if model_config.kind == "vae":
        say("ELBO")
        out["elbo_nats"] = elbo_nats(model, x, seed=seed, batch_size=batch_size)

    if labels is not None:
        say("linear probes")
        codes = encode_images(model, x, batch_size)
        pca_feats = pca["model"].transform(x.reshape(len(x), -1))
        raw = x.reshape(len(x), -1)
        if tlabels is not None:
            tr = dict(codes=encode_images(model, tx, batch_size), pca=pca["model"].transform(tx.reshape(len(tx), -1)),
                      raw=tx.reshape(len(tx), -1), labels=tlabels)
            te = dict(codes=codes, pca=pca_feats, raw=raw, labels=labels)
        else:  # no separate training images: labelled examples from `data`, tested on the rest
            pick = pick_labeled(labels, labels_per_class, seed)
            rest = np.setdiff1d(np.arange(len(labels)), pick)
            tr = dict(codes=codes[pick], pca=pca_feats[pick], raw=raw[pick], labels=labels[pick])
            te = dict(codes=codes[rest], pca=pca_feats[rest], raw=raw[rest], labels=labels[rest])
        if len(te["labels"]):
            for key, feat in (("probe_accuracy", "codes"), ("probe_accuracy_pca", "pca"), ("probe_accuracy_raw", "raw")):
                out[key] = probe_accuracy(tr[feat], tr["labels"], te[feat], te["labels"], labels_per_class, seed)
            out["knn_accuracy"] = knn_accuracy(tr["codes"], tr["labels"], te["codes"], te["labels"], labels_per_class, seed)
        out["silhouette"] = silhouette(codes, labels, seed=seed)

    if normal is not None:
        say("anomaly detection")
        scores = anomaly_scores(model, x, batch_size=batch_size)
        out["anomaly_auroc"] = anomaly_auroc(scores, ~np.isin(labels, normal))

    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


__all__ = [
    "anomaly_auroc", "anomaly_scores", "as_float_images", "decode_codes", "elbo_nats", "encode_images",
    "decoder_matrix", "evaluate_run", "fit_pca", "is_linear_model", "subspace_angle_deg", "subspace_angles_deg", "inactive_dims", "knn_accuracy", "mean_image_mse", "pca_baseline", "pca_reconstruct", "per_dim_kl",
    "pick_labeled", "probe_accuracy", "psnr", "psnr_per_image", "reconstruct_images", "recon_mse",
    "resolve_classes", "roc_curve", "silhouette", "ssim", "ssim_per_image",
]
