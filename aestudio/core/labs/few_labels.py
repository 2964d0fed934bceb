"""The few-labels lab: how well do features classify when only a handful of images are labelled?

The classic autoencoder promise: learn a representation from plenty of *unlabelled* images, then
train a classifier on the few images someone had time to label. This module measures it:

    curves = few_label_curve({"codes": c_tr, "pca": p_tr, "raw": x_tr}, y_tr,
                             {"codes": c_te, "pca": p_te, "raw": x_te}, y_te,
                             counts=(1, 5, 10, 50, None), repeats=3, seed=0)
    means, stds = curves["codes"]        # one accuracy per count, over the seeded draws

For each count N (labels per class; None or 0 means every training label) and each seeded draw,
N labelled examples per class are picked with `evaluation.pick_labeled` (the same draw for every
feature set, so the comparison is paired), features are standardised with those examples'
statistics, and a multinomial logistic regression (L2, C=1, lbfgs) is scored on every test image.
The solver stops after `max_iter` iterations: with few labels the data are separable and lbfgs
would otherwise crawl towards the regularised optimum for many seconds on raw pixels, for no
visible change in accuracy. "All labels" is one deterministic fit, so its spread is zero.

`finetune_accuracy` is the other way to use few labels: put a small classifier head on the
encoder and train both end to end on the N labelled images (a copy of the model; the original is
untouched). The head starts from the linear probe's solution, so fine-tuning starts where the
probe ends and can only move the encoder to help.

Qt-free; every function is deterministic for a given seed.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..doctor import join_words
from ..evaluation import as_float_images, pick_labeled
from ..fields import ui
from ..models import Autoencoder

Progress = Callable[[int, int], None]

DEFAULT_COUNTS: tuple[int | None, ...] = (1, 5, 10, 50, None)
MAX_ITER = 100


@dataclass(frozen=True)
class FewLabelsSettings:
    """The lab's settings besides the counts (arguments of `few_labels_experiment`), with how the studio
    shows them."""

    repeats: int = field(default=3, metadata=ui("Random draws", (
        "How many different random sets of labelled images to try for each count. The curve shows their mean, "
        "the error bars their standard deviation: with one label per class, which image you happen to label "
        "matters a lot."), lo=1, hi=10))
    seed: int = field(default=0, metadata=ui("seed", (
        "Random seed for picking the labelled images (and PCA): the same seed gives the same numbers."),
        accessible="Labelled images seed", lo=0, hi=99_999, beside="repeats"))  # "Seed" names the Training field
    finetune: bool = field(default=False, metadata=ui("Fine-tune the encoder", (
        "Also train a copy of the encoder with a small classifier head end to end on the N labelled images "
        "(starting from the linear probe). Fine-tuning adapts the features to the labels, which helps once there "
        "are enough of them, and can overfit with very few. Slower: one short training per draw.")))
    finetune_epochs: int = field(default=15, metadata=ui("for", (
        "Passes over the labelled images when fine-tuning (at most 150 steps). Few epochs keep the encoder close "
        "to what the autoencoder learned."),
        accessible="Fine-tuning epochs", lo=1, hi=200, suffix=" epochs", beside="finetune",
        enabled_when={"finetune": True}))


# ---- the linear probe ---------------------------------------------------------------------------
def _fit_probe(xtr: np.ndarray, ytr: np.ndarray, max_iter: int = MAX_ITER):
    """A logistic regression on standardised features: (classifier or None, mean, std, classes).

    None when the labelled set holds a single class (then every prediction is that class).
    """
    from sklearn.linear_model import LogisticRegression

    mean = xtr.mean(0)
    std = xtr.std(0)
    std[std < 1e-8] = 1.0
    classes = np.unique(ytr)
    if len(classes) < 2:
        return None, mean, std, classes
    clf = LogisticRegression(C=1.0, max_iter=max_iter, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the iteration cap is deliberate
        clf.fit((xtr - mean) / std, ytr)
    return clf, mean, std, classes


def probe_score(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray, test_labels: np.ndarray,
                max_iter: int = MAX_ITER) -> float:
    """Accuracy of a logistic regression fitted on (train_feats, train_labels), scored on the test set."""
    xtr = np.asarray(train_feats, dtype=np.float64).reshape(len(train_feats), -1)
    xte = np.asarray(test_feats, dtype=np.float64).reshape(len(test_feats), -1)
    ytr, yte = np.asarray(train_labels), np.asarray(test_labels)
    if len(yte) == 0 or len(ytr) == 0:
        return float("nan")
    clf, mean, std, classes = _fit_probe(xtr, ytr, max_iter)
    if clf is None:
        return float(np.mean(yte == classes[0]))
    return float(np.mean(clf.predict((xte - mean) / std) == yte))


def _is_all(count: int | None) -> bool:
    return count is None or int(count) <= 0


def count_label(count: int | None) -> str:
    return "all" if _is_all(count) else str(int(count))


def effective_per_class(count: int | None, labels: np.ndarray) -> float:
    """Labelled examples per class actually used: `count` capped by class sizes (mean over classes), or
    the mean class size for "all" -- the x position of that point on a labels-per-class axis."""
    _, sizes = np.unique(np.asarray(labels), return_counts=True)
    if len(sizes) == 0:
        return 0.0
    if _is_all(count):
        return float(sizes.mean())
    return float(np.minimum(sizes, int(count)).mean())


def few_label_curve(train_feats: Mapping[str, np.ndarray], train_labels: np.ndarray,
                    test_feats: Mapping[str, np.ndarray], test_labels: np.ndarray,
                    counts: Sequence[int | None] = DEFAULT_COUNTS, repeats: int = 3, seed: int = 0,
                    progress: Progress | None = None, max_iter: int = MAX_ITER) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Linear-probe accuracy of each feature set against labels per class.

    train_feats / test_feats: {name: (N, ...) features} with the same names (e.g. codes, pca, raw).
    counts: labels per class (None or <= 0: all labels). For every count, `repeats` seeded draws of
    labelled examples (draw r uses seed + r, shared by every feature set); "all" is drawn once.
    Returns {name: (means, stds)}, arrays aligned with `counts`, accuracies in [0, 1].
    """
    names = list(train_feats)
    missing = [n for n in names if n not in test_feats]
    if missing:
        raise ValueError(f"test features missing for {missing}")
    ytr, yte = np.asarray(train_labels), np.asarray(test_labels)
    feats_tr = {n: np.asarray(train_feats[n], dtype=np.float64).reshape(len(ytr), -1) for n in names}
    feats_te = {n: np.asarray(test_feats[n], dtype=np.float64).reshape(len(yte), -1) for n in names}
    repeats = max(1, int(repeats))
    draws = [1 if _is_all(c) else repeats for c in counts]
    total, done = sum(draws) * len(names), 0
    say = progress or (lambda d, t: None)
    say(0, total)
    scores = {n: [[] for _ in counts] for n in names}
    for ci, (count, k) in enumerate(zip(counts, draws)):
        for r in range(k):
            idx = pick_labeled(ytr, None if _is_all(count) else int(count), seed + r)
            for n in names:
                scores[n][ci].append(probe_score(feats_tr[n][idx], ytr[idx], feats_te[n], yte, max_iter))
                done += 1
                say(done, total)
    out = {}
    for n in names:
        means = np.array([np.mean(s) for s in scores[n]], dtype=np.float64)
        stds = np.array([np.std(s) for s in scores[n]], dtype=np.float64)
        out[n] = (means, stds)
    return out


# ---- fine-tuning the encoder ---------------------------------------------------------------------
class _Classifier(nn.Module):
    """The encoder (up to the code, the posterior mean for a VAE), a fixed standardisation, a linear head."""

    def __init__(self, model: Autoencoder, mean: np.ndarray, std: np.ndarray, n_classes: int):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.head = nn.Linear(model.config.latent, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model.encode(x).mu
        return self.head((z - self.mean) / self.std)


@dataclass
class FinetuneResult:
    accuracy: float
    probe_accuracy: float  # the same labelled set, linear probe on the frozen codes (where fine-tuning starts)
    steps: int
    losses: list[float] = field(default_factory=list)


def _codes(model: Autoencoder, x: np.ndarray, dev: torch.device, batch: int = 512) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch])).to(dev)
            out.append(model.encode(xb).mu.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.latent), np.float32)


def finetune_accuracy(model: Autoencoder, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray, per_class: int | None = 10, epochs: int = 20, seed: int = 0,
                      lr: float = 1e-3, encoder_lr: float = 3e-4, batch_size: int = 64, max_steps: int = 150,
                      return_details: bool = False) -> float | FinetuneResult:
    """Test accuracy of the encoder plus a linear head, trained end to end on `per_class` labels per class.

    The labelled images are drawn from (train_x, train_y) with `pick_labeled(train_y, per_class, seed)`
    (None: all of them). A copy of the model is trained (on the model's device) with Adam
    (head `lr`, encoder `encoder_lr`) and cross-entropy for `epochs` passes over the labelled images
    (batches of `batch_size`, at most `max_steps` steps in all). The model stays in eval mode while
    training, so dropout is off and batch-norm statistics stay those of the autoencoder (a batch of
    ten images would ruin them). The head is initialised from a logistic regression on the frozen,
    standardised codes of the labelled images. Returns the accuracy on (test_x, test_y), or a
    `FinetuneResult` when `return_details`.
    """
    x_tr, x_te = as_float_images(train_x), as_float_images(test_x)
    y_tr, y_te = np.asarray(train_y).astype(np.int64), np.asarray(test_y).astype(np.int64)
    idx = pick_labeled(y_tr, per_class, seed)
    x_l, y_l = x_tr[idx], y_tr[idx]
    n_classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1

    torch.manual_seed(seed)
    net_model = copy.deepcopy(model).eval()
    dev = next(net_model.parameters()).device
    codes_l = _codes(net_model, x_l, dev).astype(np.float64)
    clf, mean, std, classes = _fit_probe(codes_l, y_l)
    net = _Classifier(net_model, mean, std, n_classes).to(dev)
    with torch.no_grad():
        w = np.zeros((n_classes, codes_l.shape[1]), np.float32)
        b = np.full(n_classes, -10.0, np.float32)  # classes never seen in the labelled set start unlikely
        if clf is None:
            b[classes] = 0.0
        elif clf.coef_.shape[0] == 1:  # binary: sklearn keeps one row for the second class
            w[classes[1]], b[classes[0]], b[classes[1]] = clf.coef_[0], 0.0, clf.intercept_[0]
        else:
            w[classes], b[classes] = clf.coef_, clf.intercept_
        net.head.weight.copy_(torch.from_numpy(w))
        net.head.bias.copy_(torch.from_numpy(b))
    probe_acc = _accuracy(net, x_te, y_te, dev)

    opt = torch.optim.Adam([{"params": net.head.parameters(), "lr": lr},
                            {"params": net.model.parameters(), "lr": encoder_lr}])
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x_l)).to(dev), torch.from_numpy(y_l).to(dev)
    n = len(y_l)
    losses: list[float] = []
    # the model stays in eval mode, and cuDNN refuses the backward pass of an RNN in eval mode
    no_cudnn = dev.type == "cuda" and model.config.arch == "recurrent"
    with torch.backends.cudnn.flags(enabled=not no_cudnn):
        steps = _train_head(net, opt, xt, yt, n, epochs, batch_size, max_steps, gen, dev, losses)
    acc = _accuracy(net, x_te, y_te, dev)
    if return_details:
        return FinetuneResult(acc, probe_acc, steps, losses)
    return acc


def _train_head(net, opt, xt, yt, n, epochs, batch_size, max_steps, gen, dev, losses) -> int:
    steps = 0
    for _ in range(max(0, int(epochs))):
        order = torch.randperm(n, generator=gen).to(dev)
        for i in range(0, n, batch_size):
            if steps >= max_steps:
                break
            sel = order[i:i + batch_size]
            loss = F.cross_entropy(net(xt[sel]), yt[sel])
            if not torch.isfinite(loss):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            losses.append(float(loss.detach()))
        if steps >= max_steps:
            break
    return steps


def _accuracy(net: nn.Module, x: np.ndarray, y: np.ndarray, dev: torch.device, batch: int = 512) -> float:
    if len(y) == 0:
        return float("nan")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch])).to(dev)
            pred = net(xb).argmax(1).cpu().numpy()
            correct += int(np.sum(pred == y[i:i + batch]))
    return correct / len(y)


def finetune_curve(model: Autoencoder, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                   test_y: np.ndarray, counts: Sequence[int | None] = DEFAULT_COUNTS, repeats: int = 3,
                   seed: int = 0, epochs: int = 20, progress: Progress | None = None,
                   **kw) -> tuple[np.ndarray, np.ndarray]:
    """`finetune_accuracy` for every count and seeded draw (the draws of `few_label_curve`): (means, stds)."""
    repeats = max(1, int(repeats))
    draws = [1 if _is_all(c) else repeats for c in counts]
    total, done = sum(draws), 0
    say = progress or (lambda d, t: None)
    means, stds = [], []
    for count, k in zip(counts, draws):
        accs = []
        for r in range(k):
            accs.append(finetune_accuracy(model, train_x, train_y, test_x, test_y,
                                          None if _is_all(count) else int(count), epochs, seed + r, **kw))
            done += 1
            say(done, total)
        means.append(np.mean(accs))
        stds.append(np.std(accs))
    return np.array(means, dtype=np.float64), np.array(stds, dtype=np.float64)


def chance_accuracy(test_labels: np.ndarray) -> float:
    """Accuracy of always guessing the most common test class."""
    y = np.asarray(test_labels)
    if len(y) == 0:
        return float("nan")
    return float(np.max(np.unique(y, return_counts=True)[1]) / len(y))


# ---- the whole experiment ------------------------------------------------------------------------
MAX_IMAGES = 10_000

FEATURE_LABELS = {"codes": "latent codes", "pca": "PCA (same size)", "raw": "raw pixels", "finetune": "fine-tuned encoder"}
COLUMN_LABELS = {"codes": "codes", "pca": "PCA", "raw": "raw pixels", "finetune": "fine-tuned"}


@dataclass
class FewLabelsResult:
    counts: list[int | None]  # as asked (None: all labels)
    per_class: np.ndarray  # labelled examples per class actually used, one per count (the x axis)
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (mean accuracy, std) per count
    chance: float
    n_train: int
    n_test: int
    n_classes: int
    latent: int
    repeats: int
    notes: list[str] = field(default_factory=list)

    def rows(self) -> tuple[list[str], list[list]]:
        """A table: one row per count, mean and std of every curve."""
        header = ["labels per class"]
        for name in self.curves:
            label = COLUMN_LABELS.get(name, name)
            header += [f"{label} accuracy", f"{label} std"]
        rows = []
        for i, c in enumerate(self.counts):
            row: list = [count_label(c) if not _is_all(c) else f"all ({self.per_class[i]:.0f})"]
            for means, stds in self.curves.values():
                row += [float(means[i]), float(stds[i])]
            rows.append(row)
        return header, rows


def _limit(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(y) <= limit:
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
    return x[idx], y[idx]


def few_labels_experiment(model: Autoencoder, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, counts: Sequence[int | None] = DEFAULT_COUNTS, repeats: int = 3,
                          seed: int = 0, finetune: bool = False, finetune_epochs: int = 20,
                          progress: Progress | None = None, max_images: int = MAX_IMAGES) -> FewLabelsResult:
    """Everything the few-labels lab shows: probe curves for the model's codes, PCA features with as
    many components as the code, and raw pixels (plus the fine-tuned encoder when `finetune`).

    The encoder and PCA see every training image (no labels needed: that is the unlabelled data);
    classifiers see only the drawn labelled ones; everything is scored on the test images. At most
    `max_images` training and test images are used (a seeded random subset beyond that).
    """
    from ..evaluation import encode_images, fit_pca

    if train_y is None or test_y is None:
        from ..config import ConfigError

        raise ConfigError("The few-labels lab needs a labelled data set (images with classes).")
    if len(np.unique(np.concatenate([np.asarray(train_y), np.asarray(test_y)]))) < 2:
        from ..config import ConfigError

        raise ConfigError("The few-labels lab needs at least two classes: with one, every classifier is always right.")
    counts = [None if _is_all(c) else int(c) for c in counts]
    if not counts:
        from ..config import ConfigError

        raise ConfigError("Pick at least one number of labels per class.")
    notes = []
    x_tr, y_tr = _limit(np.asarray(train_x), np.asarray(train_y), max_images, seed)
    x_te, y_te = _limit(np.asarray(test_x), np.asarray(test_y), max_images, seed + 1)
    largest = int(np.unique(y_tr, return_counts=True)[1].max())
    counts, merged = _merge_all(counts, largest)
    if merged:
        many = len(merged) > 1
        notes.append(f"{join_words([str(c) for c in merged])} labels per class {'are' if many else 'is'} every "
                     f"label here (no class has more than {largest:,} training images), so "
                     f"{'they are' if many else 'it is'} the \"all\" point.")
    if len(y_tr) < len(train_y) or len(y_te) < len(test_y):
        notes.append(f"Used a random {len(y_tr):,} training and {len(y_te):,} test images.")
    x_tr, x_te = as_float_images(x_tr), as_float_images(x_te)
    repeats = max(1, int(repeats))
    n_probe = sum(1 if c is None else repeats for c in counts)
    n_fine = n_probe if finetune else 0
    total = 2 + 3 * n_probe + 4 * n_fine  # a fine-tuning run costs a few probes
    say = progress or (lambda d, t: None)
    say(0, total)

    latent = model.config.latent
    feats_tr = {"codes": encode_images(model, x_tr)}
    feats_te = {"codes": encode_images(model, x_te)}
    say(1, total)
    pca = fit_pca(x_tr, latent, seed)
    feats_tr["pca"] = pca.transform(x_tr.reshape(len(x_tr), -1))
    feats_te["pca"] = pca.transform(x_te.reshape(len(x_te), -1))
    if pca.n_components_ < latent:
        notes.append(f"PCA has only {pca.n_components_} components here (fewer than the {latent}-d code).")
    feats_tr["raw"] = x_tr.reshape(len(x_tr), -1)
    feats_te["raw"] = x_te.reshape(len(x_te), -1)
    say(2, total)

    curves = few_label_curve(feats_tr, y_tr, feats_te, y_te, counts, repeats, seed,
                             progress=lambda d, t: say(2 + d, total))
    if finetune:
        curves["finetune"] = finetune_curve(model, x_tr, y_tr, x_te, y_te, counts, repeats, seed, finetune_epochs,
                                            progress=lambda d, t: say(2 + 3 * n_probe + 4 * d, total))
    say(total, total)
    per_class = np.array([effective_per_class(c, y_tr) for c in counts])
    return FewLabelsResult(counts, per_class, curves, chance_accuracy(y_te), len(y_tr), len(y_te),
                           len(np.unique(y_tr)), latent, repeats, notes)


def _merge_all(counts: list[int | None], largest: int) -> tuple[list[int | None], list[int]]:
    """`counts` with every count that reaches the largest class (so it draws every label, as "all"
    does) made "all", once; and the counts so merged. Two such points would sit on one spot."""
    out: list[int | None] = []
    merged = []
    for c in counts:
        if c is not None and c >= largest:
            merged.append(c)
            c = None
        if c not in out:
            out.append(c)
    return out, merged


def _counts_text(result: FewLabelsResult, idx: list[int]) -> str:
    """"1, 5 and 10" for those points of `result`, in order."""
    return join_words([count_label(result.counts[i]) for i in idx])


def _labels_word(result: FewLabelsResult, idx: list[int]) -> str:
    """"label" after a lone "1", else "labels"."""
    return "label" if [result.counts[i] for i in idx] == [1] else "labels"


#: Accuracies closer than this (half a percentage point) are a tie in the summary.
TIE = 0.005


def summary_lines(result: FewLabelsResult) -> list[str]:
    """Plain-language read-outs of a result: the fewest and the most labels, and where codes stop winning."""
    names = {k: FEATURE_LABELS.get(k, k) for k in result.curves}
    lines = []

    def at(i: int) -> str:
        c = result.counts[i]
        head = (f"With all labels ({result.per_class[i]:.0f} per class)" if _is_all(c) else
                f"With {count_label(c)} label{'s' if c != 1 else ''} per class")
        vals = ", ".join(f"{names[k]} {100 * m[i]:.0f}%" for k, (m, _) in result.curves.items())
        return f"{head}: {vals}."

    order = np.argsort(result.per_class, kind="stable")
    lines.append(at(int(order[0])))
    if len(order) > 1:
        lines.append(at(int(order[-1])))
    if "codes" in result.curves and "raw" in result.curves:
        codes, raw = result.curves["codes"][0], result.curves["raw"][0]
        wins = [int(i) for i in order if codes[i] > raw[i] + TIE]
        losses = [int(i) for i in order if raw[i] > codes[i] + TIE]
        ties = [int(i) for i in order if int(i) not in wins + losses]
        if len(wins) == len(order):
            lines.append("The codes beat raw pixels at every label count: the autoencoder learned features "
                         "that a classifier can use with little supervision.")
        elif wins and wins == [int(i) for i in order[:len(wins)]] and not ties:  # at the fewest labels, then no more
            last = wins[-1]
            lines.append(f"The codes beat raw pixels up to {count_label(result.counts[last])} "
                         f"{_labels_word(result, [last])} per class; "
                         "with more labels a classifier learns enough from the pixels themselves.")
        elif wins:  # any other pattern, said as it is (a single label per class is a noisy draw)
            rest = ([f"lose at {_counts_text(result, losses)}"] if losses else []) + (
                [f"tie at {_counts_text(result, ties)}"] if ties else [])
            lines.append(f"The codes beat raw pixels at {_counts_text(result, wins)} "
                         f"{_labels_word(result, wins)} per class"
                         + (f", {rest[0]}, and {rest[1]}." if len(rest) > 1 else f" and {rest[0]}."))
        elif len(losses) == len(order):
            lines.append("Raw pixels beat the codes at every count here: the code discards details that tell "
                         "the classes apart (or the model needs more training / a larger code).")
        elif losses:
            lines.append(f"Raw pixels beat the codes at {_counts_text(result, losses)} "
                         f"{_labels_word(result, losses)} per class and tie at "
                         f"{_counts_text(result, ties)}.")
        else:
            lines.append("The codes and raw pixels do equally well at every count here (within half a point): "
                         "neither tells the classes apart better.")
    if "finetune" in result.curves and "codes" in result.curves:
        gain = result.curves["finetune"][0] - result.curves["codes"][0]
        lo, hi = (round(100 * v) + 0 for v in (gain.min(), gain.max()))
        span = f"{lo:+d} points" if lo == hi else f"{lo:+d} to {hi:+d} points"
        lines.append(f"Fine-tuning the encoder changes accuracy by {span} over the frozen codes.")
    lines.append(f"Chance (always the most common class): {100 * result.chance:.0f}%.")
    return lines


__all__ = [
    "COLUMN_LABELS", "DEFAULT_COUNTS", "FEATURE_LABELS", "FewLabelsResult", "FinetuneResult", "chance_accuracy",
    "count_label", "effective_per_class", "few_label_curve", "few_labels_experiment", "finetune_accuracy",
    "finetune_curve", "probe_score", "summary_lines",
]
