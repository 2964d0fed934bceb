"""The latent-health lab: is the code space in good shape, and what is wrong with it if not?

    report = health_report(model, train_x, train_y, val_x, val_y)
    report.findings      # plain-language verdicts, most important first

Measured on the validation codes (the posterior means for a VAE):

* per-dimension KL to the prior (VAEs), with dimensions under `kl_threshold` nats (0.01) flagged
  as inactive: the encoder outputs the prior for them whatever the image, so they carry no
  information and the decoder learns to ignore them (posterior collapse);
* per-dimension code variance (every model), with dead units flagged for non-VAEs: a dimension
  whose spread is under `dead_fraction` (1 %) of the widest dimension's barely changes between
  images (a ReLU or sigmoid stuck at one value);
* mean and standard deviation per dimension, and the most correlated pair of dimensions
  (redundancy);
* with labels: the silhouette score of the codes grouped by class, and k-nearest-neighbour
  accuracy (classifier fitted on the training codes, scored on the validation codes).

Qt-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from ..evaluation import as_float_images, encode_images, inactive_dims, knn_accuracy, per_dim_kl, silhouette
from ..fields import ui
from ..latent import dim_name

Progress = Callable[[int, int], None]

KL_THRESHOLD = 0.01  # nats
DEAD_FRACTION = 0.01  # of the largest code std
MAX_IMAGES = 10_000


@dataclass(frozen=True)
class HealthSettings:
    """The lab's settings (keyword arguments of `health_report`), with how the studio shows them."""

    kl_threshold: float = field(default=KL_THRESHOLD, metadata=ui("Inactive below", (
        "A VAE dimension whose average KL to the prior N(0, 1) is below this is inactive: its code is (almost) "
        "the prior for every image, so it carries no information. 0.01 nats is the usual cut-off."),
        accessible="Inactive threshold", lo=0.001, hi=1.0, step=0.005, decimals=3, suffix=" nats"))
    knn_k: int = field(default=5, metadata=ui("k-NN neighbours", (
        "k-nearest-neighbour accuracy: each validation code takes the majority class of its k closest training "
        "codes. High accuracy means codes of a class sit together."),
        accessible="Neighbours for k-NN", lo=1, hi=50, prefix="k = ", beside="kl_threshold"))


@dataclass
class HealthReport:
    kind: str  # the model's kind: ae, vae, sparse, contractive
    latent: int
    n_train: int
    n_val: int
    mean: np.ndarray  # (latent,) mean code on the validation images
    std: np.ndarray  # (latent,) code std
    variance: np.ndarray  # (latent,)
    kl: np.ndarray | None  # (latent,) average KL per dimension in nats (VAEs)
    total_kl: float | None
    inactive: np.ndarray  # indices: KL < threshold (VAEs) or dead units (others)
    kl_threshold: float
    dead_threshold: float  # the std under which a unit counts as dead (non-VAEs)
    silhouette: float | None
    knn_accuracy: float | None
    knn_k: int
    chance: float | None
    n_classes: int
    max_corr: tuple[int, int, float] | None  # the most correlated pair of dimensions
    findings: list[str] = field(default_factory=list)
    severity: list[str] = field(default_factory=list)  # "ok" | "warn" | "info", one per finding

    @property
    def is_vae(self) -> bool:
        return self.kind == "vae"

    def status(self, dim: int) -> str:
        if dim in {int(i) for i in self.inactive}:
            return "inactive" if self.is_vae else "dead"
        return "active"

    def rows(self) -> tuple[list[str], list[list]]:
        """The numbers table: one row per dimension."""
        header = ["dimension"] + (["KL (nats)"] if self.kl is not None else []) + ["variance", "mean", "std", "status"]
        rows = []
        for d in range(self.latent):
            row: list = [f"{dim_name(d)}"]
            if self.kl is not None:
                row.append(float(self.kl[d]))
            row += [float(self.variance[d]), float(self.mean[d]), float(self.std[d]), self.status(d)]
            rows.append(row)
        return header, rows


def _limit(x, y, limit: int, seed: int):
    if len(x) <= limit:
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=limit, replace=False))
    return x[idx], (None if y is None else np.asarray(y)[idx])


def dead_units(std: np.ndarray, fraction: float = DEAD_FRACTION) -> tuple[np.ndarray, float]:
    """Indices of dimensions whose std is under `fraction` of the largest (or ~0): (indices, threshold)."""
    std = np.asarray(std, dtype=np.float64)
    if not len(std):
        return np.zeros(0, dtype=int), 0.0
    threshold = max(1e-6, fraction * float(std.max()))
    return np.flatnonzero(std < threshold), threshold


def _dims(idx: np.ndarray, limit: int = 8) -> str:
    names = [f"{dim_name(int(i))}" for i in idx[:limit]]
    return ", ".join(names) + (", …" if len(idx) > limit else "")


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def health_report(model, train_x: np.ndarray, train_y: np.ndarray | None, val_x: np.ndarray,
                  val_y: np.ndarray | None, progress: Progress | None = None, kl_threshold: float = KL_THRESHOLD,
                  dead_fraction: float = DEAD_FRACTION, knn_k: int = 5, seed: int = 0,
                  max_images: int = MAX_IMAGES) -> HealthReport:
    """Measure the code space of `model` and list findings in plain language (see the module doc).

    Statistics are computed on the validation images; k-NN is fitted on the training codes with
    every training label. At most `max_images` images of each split are used (seeded subset).
    """
    say = progress or (lambda d, t: None)
    total = 5
    say(0, total)
    cfg = model.config
    latent = int(cfg.latent)
    vx, vy = _limit(np.asarray(val_x), val_y, max_images, seed)
    vx = as_float_images(vx)
    codes = encode_images(model, vx).astype(np.float64)
    say(1, total)
    mean, std = codes.mean(0), codes.std(0)
    variance = std ** 2
    is_vae = cfg.kind == "vae"
    kl = total_kl = None
    dead_thr = 0.0
    if is_vae:
        kl = per_dim_kl(model, vx)
        total_kl = float(kl.sum())
        inactive = inactive_dims(kl, kl_threshold)
    else:
        inactive, dead_thr = dead_units(std, dead_fraction)
    say(2, total)

    max_corr = None
    if latent > 1 and len(codes) > 2:
        live = np.setdiff1d(np.flatnonzero(std > 1e-8), inactive)  # collapsed dims correlate by accident
        if len(live) > 1:
            c = np.corrcoef(codes[:, live], rowvar=False)
            np.fill_diagonal(c, 0.0)
            i, j = np.unravel_index(np.argmax(np.abs(c)), c.shape)
            max_corr = (int(live[min(i, j)]), int(live[max(i, j)]), float(c[i, j]))

    sil = knn = chance = None
    n_classes = 0
    labelled = train_y is not None and val_y is not None and len(np.unique(val_y)) > 1
    n_train = min(len(train_x), max_images) if train_x is not None else 0
    if labelled:
        vy = np.asarray(vy)
        n_classes = len(np.unique(vy))
        sil = silhouette(codes, vy, seed=seed)
        say(3, total)
        tx, ty = _limit(np.asarray(train_x), train_y, max_images, seed + 1)
        n_train = len(tx)
        tcodes = encode_images(model, as_float_images(tx))
        knn = knn_accuracy(tcodes, np.asarray(ty), codes, vy, labels_per_class=None, k=knn_k)
        chance = float(np.max(np.unique(vy, return_counts=True)[1]) / len(vy))
    say(4, total)

    report = HealthReport(cfg.kind, latent, n_train, len(vx), mean, std, variance, kl, total_kl, np.asarray(inactive),
                          kl_threshold, dead_thr, None if sil is None or not np.isfinite(sil) else float(sil),
                          knn, knn_k, chance, n_classes, max_corr)
    _findings(report, cfg)
    say(total, total)
    return report


def _add(report: HealthReport, text: str, severity: str = "info") -> None:
    report.findings.append(text)
    report.severity.append(severity)


def _findings(r: HealthReport, cfg) -> None:
    n_in = len(r.inactive)
    if r.is_vae:
        if n_in == r.latent:
            _add(r, f"All {r.latent} dimensions are inactive (KL < {r.kl_threshold:g} nats): posterior collapse. "
                    "The encoder outputs the prior whatever the image and every decode looks alike. "
                    "Try KL annealing, a smaller β or a weaker decoder.", "warn")
        elif n_in:
            beta = getattr(cfg, "beta", 1.0)
            why = f" (β = {beta:g} pushes hard towards the prior)" if beta > 1 else ""
            _add(r, f"{n_in} of {r.latent} dimensions are inactive (KL < {r.kl_threshold:g} nats): {_dims(r.inactive)}. "
                    f"The decoder ignores them{why}; the model uses {r.latent - n_in} dimensions. "
                    "That is often fine (the data need fewer); if reconstructions are blurry, try KL annealing or "
                    "a smaller β.", "warn")
        else:
            _add(r, f"All {r.latent} dimensions are active (each carries at least {r.kl_threshold:g} nats).", "ok")
        if r.kl is not None and r.latent and n_in < r.latent:
            top = int(np.argmax(r.kl))
            _add(r, f"Total KL {r.total_kl:.2f} nats per image; the most informative dimension, {dim_name(top)}, "
                    f"carries {r.kl[top]:.2f} nats ({_pct(r.kl[top] / max(r.total_kl, 1e-12))} of the total).")
        active = np.setdiff1d(np.arange(r.latent), r.inactive)
        if len(active):
            s = r.std[active]
            if s.max() > 2.0 or s.min() < 0.2:
                _add(r, f"Active dimensions spread with std from {s.min():.2f} to {s.max():.2f} "
                        "(the prior has std 1): samples from N(0, I) may look unlike the data.", "warn")
            else:
                _add(r, f"Active dimensions spread with std {s.min():.2f}–{s.max():.2f}, close to the prior's 1: "
                        "sampling from N(0, I) reaches the same region as the data.", "ok")
    else:
        if n_in == r.latent:
            _add(r, f"All {r.latent} code units are dead (their value does not change between images).", "warn")
        elif n_in:
            _add(r, f"{n_in} of {r.latent} code units are dead: {_dims(r.inactive)} barely change between images "
                    f"(std under {r.dead_threshold:.3g}). They waste code capacity; a lower learning rate, another "
                    "activation (leaky ReLU) or a smaller code helps.", "warn")
        else:
            _add(r, f"All {r.latent} code units vary between images (no dead units).", "ok")
        if r.latent:
            live = np.setdiff1d(np.arange(r.latent), r.inactive)
            if len(live) > 1:
                ratio = r.std[live].max() / max(r.std[live].min(), 1e-12)
                if ratio > 10:
                    _add(r, f"Code dimensions differ a lot in scale (std {r.std[live].min():.3g} to "
                            f"{r.std[live].max():.3g}): distances in the code space are dominated by a few "
                            "dimensions. Standardise codes before clustering or k-NN.", "info")
        if cfg.kind == "sparse" and r.latent:
            target = float(getattr(cfg, "sparsity_target", 0.05))
            _add(r, *sparsity_finding(r.mean, getattr(cfg, "sparsity", "kl"), target))

    if r.max_corr is not None and abs(r.max_corr[2]) >= 0.9:
        i, j, c = r.max_corr
        _add(r, f"{dim_name(i)} and {dim_name(j)} are strongly correlated (r = {c:.2f}): they encode much the same thing.", "warn")
    elif r.max_corr is not None:
        i, j, c = r.max_corr
        _add(r, f"No two dimensions are redundant (the most correlated pair, {dim_name(i)} and {dim_name(j)}, has r = {c:.2f}).", "ok")

    if r.silhouette is None and r.knn_accuracy is None:
        _add(r, "No class labels: silhouette and k-NN accuracy need a labelled data set.", "info")
        return
    if r.silhouette is not None:
        s = r.silhouette
        if s >= 0.25:
            _add(r, f"Classes separate well: silhouette {s:.2f}.", "ok")
        elif s >= 0.05:
            _add(r, f"Classes form loose, overlapping clusters: silhouette {s:.2f} (1 is perfect, 0 overlapping). "
                    "Normal for an autoencoder, which never sees the labels.", "info")
        else:
            _add(r, f"Classes overlap heavily in the code space: silhouette {s:.2f}. The codes may still "
                    "separate classes non-linearly; see the k-NN accuracy.", "warn")
    if r.knn_accuracy is not None and np.isfinite(r.knn_accuracy):
        _add(r, *knn_verdict(r.knn_accuracy, r.chance or 0.0, r.knn_k))


def sparsity_finding(mean: np.ndarray, sparsity: str, target: float) -> tuple[str, str]:
    """Whether a sparse model's code is sparse, from each unit's mean activation on validation images.

    A KL-penalised code (sigmoid units) is sparse when its units' average activation is near the
    target rho; it used to be reported as "Sparse code: 0% of units ..." while every unit averaged
    0.3 (an under-trained model), which read as a claim that the code was sparse."""
    act = float(np.mean(np.abs(mean)))
    if sparsity == "kl":
        if act <= 2.0 * target:
            return (f"Sparse code: the units' mean activation is {act:.3g}, near the target ρ = {target:g}.", "ok")
        return (f"Not sparse (yet): the units' mean activation is {act:.3g}, against the target ρ = {target:g}. "
                "The penalty pulls it down as training goes on; train longer or raise the sparsity weight.", "warn")
    quiet = float(np.mean(np.abs(mean) < 0.05))
    return (f"Sparsity: {_pct(quiet)} of the units have a mean activation under 0.05 (their mean: {act:.3g}).", "info")


def knn_verdict(accuracy: float, chance: float, k: int) -> tuple[str, str]:
    """A finding on the k-NN accuracy of the codes, and its severity, judged by how much of the way
    from chance to perfect it gets: multiples of chance meant nothing with two classes, where 99%
    (chance 54%) was called "more often than chance, but far from always"."""
    skill = (accuracy - chance) / (1.0 - chance) if chance < 1.0 else 0.0
    head = f"{k}-nearest-neighbour accuracy {_pct(accuracy)} (chance {_pct(chance)}): "
    if skill >= 0.5:
        share = "almost always" if accuracy >= 0.95 else "mostly"
        return head + f"neighbouring codes {share} share a class.", "ok"
    if skill < 0.2:
        return head + "neighbouring codes often belong to different classes.", "warn"
    return head + "neighbours share a class more often than chance, but far from always.", "info"


__all__ = ["DEAD_FRACTION", "KL_THRESHOLD", "HealthReport", "dead_units", "health_report", "knn_verdict", "sparsity_finding"]
