"""The machinery every question shares (no Qt): budgets, data, training and the answer object.

An experiment is a plain function `experiment(ctx) -> Answer`. The `Context` gives it data
subsets (`ctx.images`), a step-budgeted trainer (`ctx.train`) that reports progress and honours
cancellation, and a `Numbers` record whose values the answer text quotes:

    def experiment(ctx):
        train, val = ctx.images("fashion-10k", 3000)
        t = ctx.train("plain", cfg, train, val, steps=1500)
        n = Numbers()
        mse = n.put("val_mse", recon_mse(t.model, val.as_float()))
        return ctx.answer(n, figure, f"The validation error is {mse}.", "Try ...")

Budgets: "normal" (the default; each question runs in well under two minutes on 2 CPU cores)
and "tiny" (a few steps on a couple of hundred images, for tests: the numbers are real but the
models are barely trained).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..datasets import ImageSet, load_dataset
from ..labs.denoising import LabTraining, lab_train
from ..labs.budget import lab_epochs
from ..models import count_parameters
from ..training import Control

Progress = Callable[[int, int], None]

BUDGETS = ("tiny", "normal")
#: (fraction of the step budget, most images per subset) for each budget.
_SCALE = {"tiny": (0.02, 160), "normal": (1.0, 100_000)}
TINY_LEAST_STEPS = 6
PROGRESS_UNITS = 1000
#: The training settings of every question: the command line's defaults, a larger batch to save time,
#: and no augmentation. The questions compare models with each other and with PCA on the same aligned
#: Fashion-MNIST subsets, and `auto` would shift their 2,250 training images at most of their budgets
#: (fewer than four images per pixel; 1,000 steps of 64 are an exposure of 9.9, see augment.py),
#: which on centred clothes only made the models worse: at the normal budget, seed 0, with
#: and without shifts, question 2's AE-2 0.0554 and 0.0347 (PCA-2 0.0464), question 5's AE 24% and 39%
#: below PCA, question 10's AUROC 0.91 and 0.958 (PCA 0.943), question 11's probe on codes 64.1% and
#: 67.6%, question 21's k-NN on codes 48.9% and 65.1%, question 17's conv model 0.0187 and 0.0152.
BASE_TRAIN = TrainConfig(batch_size=64, lr=2e-3, seed=0, device="auto", kl_warmup=0.2, augment="none")


class Cancelled(Exception):
    """The user stopped the experiment."""


def round_sig(value: float, digits: int = 3) -> float | int:
    """`value` rounded to `digits` significant digits (ints stay ints)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    v = float(value)
    if not math.isfinite(v) or v == 0:
        return v
    return float(f"{v:.{digits}g}")


def fmt_num(value: float | int) -> str:
    """How the answer text writes a number of `Numbers` (the same string for the same JSON value)."""
    if isinstance(value, int):
        return str(value)
    return f"{value:g}"


class Numbers(dict):
    """The measured numbers of one run: name -> value rounded to 3 significant digits.

    `put` stores a value and returns the text that quotes it, so the answer and numbers.json
    always say the same thing."""

    def put(self, key: str, value: float | int, digits: int = 3) -> str:
        v = round_sig(value, digits)
        self[key] = v
        return fmt_num(v)

    def pct(self, key: str, fraction: float, digits: int = 3) -> str:
        """Stores a fraction as a percentage (0.123 -> 12.3) and returns "12.3%"."""
        return self.put(key, 100.0 * float(fraction), digits) + "%"


@dataclass
class Trained:
    """One model a question trained: what, how long, and how it ended."""

    label: str
    model_config: ModelConfig
    train_config: TrainConfig
    training: LabTraining
    n_train: int
    seconds: float
    data: str

    @property
    def model(self):
        return self.training.model

    @property
    def steps(self) -> int:
        return self.training.steps

    @property
    def history(self) -> list[dict]:
        return self.training.history

    def improving_note(self) -> str | None:
        from ..labs.budget import improving_note

        return improving_note(f"The {self.label} model", [self.training.improvement],
                              remedy="A longer run would lower its error further.")

    def describe(self) -> str:
        noise = "" if self.train_config.noise == "none" else f", inputs corrupted by {self.train_config.noise}"
        return (f"{self.label}: {describe_model(self.model_config)}, {count_parameters(self.model):,} parameters; "
                f"{self.steps:,} steps of batch {self.train_config.batch_size} on {self.n_train:,} {self.data} "
                f"images{noise} ({self.seconds:.1f} s)")


def describe_model(cfg: ModelConfig) -> str:
    """One line: "dense 784 → 256 → 32 → 256 → 784 plain autoencoder (relu)"."""
    kind = {"ae": "plain autoencoder", "vae": f"VAE (β={cfg.beta:g})", "sparse": f"sparse autoencoder ({cfg.sparsity}, weight {cfg.sparsity_weight:g})",
            "contractive": f"contractive autoencoder (weight {cfg.contractive_weight:g})"}.get(cfg.kind, cfg.kind)
    hidden = cfg.hidden_sizes
    if cfg.arch == "dense":
        sizes = [cfg.input_dim, *hidden, cfg.latent, *reversed(hidden), cfg.input_dim]
        shape = "dense " + " → ".join(str(s) for s in sizes)
    elif cfg.arch == "conv":
        dense = "".join(f" → dense {u}" for u in cfg.dense_sizes)
        shape = f"conv (channels {', '.join(map(str, hidden))}){dense} → {cfg.latent}"
    else:
        shape = f"recurrent {cfg.rnn_cell.upper()} ({hidden[0]} units, one image row per step) → {cfg.latent}"
    extras = []
    if cfg.tied:
        extras.append("tied weights")
    if cfg.stacked:
        extras.append("layer-wise pretraining")
    if cfg.dropout:
        extras.append(f"dropout {cfg.dropout:g}")
    if cfg.weight_decay:
        extras.append(f"weight decay {cfg.weight_decay:g}")
    acts = ",".join(sorted(set(cfg.layer_activations))) or cfg.activation
    return f"{shape} {kind} ({acts}{', ' + ', '.join(extras) if extras else ''})"


@dataclass
class Answer:
    """What one run of a question found."""

    numbers: dict[str, Any]
    figure: np.ndarray  # (H, W, 3) uint8
    conclusion: str  # quotes this run's numbers
    next_step: str  # what to try next
    runs: list[str] = field(default_factory=list)  # one line per trained model ("what was run")
    notes: list[str] = field(default_factory=list)  # e.g. "... was still improving ..."
    seconds: float = 0.0
    budget: str = "normal"
    # where the studio can take the student: a builder set-up and a lab or view to open
    model_config: ModelConfig | None = None
    train_config: TrainConfig | None = None
    data_spec: str | None = None

    @property
    def text(self) -> str:
        """The answer as plain text: the conclusion, any notes, and what to try next."""
        parts = [self.conclusion, *self.notes, "Try next: " + self.next_step]
        return "\n\n".join(p for p in parts if p)


class Context:
    """Budget, data, progress and cancellation for one experiment run."""

    def __init__(self, budget: str = "normal", progress: Progress | None = None, control: Control | None = None,
                 seed: int = 0, trainings: int = 1):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
        self.budget = budget
        self.progress = progress
        self.control = control or Control()
        self.seed = int(seed)
        self.planned = max(1, int(trainings))
        self.done = 0
        self.trained: list[Trained] = []
        self._t0 = time.perf_counter()
        self._cache: dict[tuple, ImageSet] = {}
        self.last: Trained | None = None

    # ---- budget ----
    @property
    def tiny(self) -> bool:
        return self.budget == "tiny"

    def steps(self, n: int) -> int:
        frac, _ = _SCALE[self.budget]
        return max(TINY_LEAST_STEPS, int(round(n * frac)))

    def count(self, n: int) -> int:
        """At most `n` images, fewer on the tiny budget."""
        return max(8, min(int(n), _SCALE[self.budget][1]))

    # ---- data ----
    def dataset(self, spec: str, **kw: Any) -> ImageSet:
        key = (spec, tuple(sorted(kw.items())))
        if key not in self._cache:
            self._cache[key] = load_dataset(spec, allow_download=False, **kw)
        return self._cache[key]

    def images(self, spec: str, n: int, val_fraction: float = 0.25, data: ImageSet | None = None,
               **kw: Any) -> tuple[ImageSet, ImageSet]:
        """A seeded random subset of about `n` images of a data set, split into training and validation."""
        full = data if data is not None else self.dataset(spec, **kw)
        n = min(self.count(n), full.n)
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(full.n, size=n, replace=False))
        n_val = max(4, int(round(n * val_fraction)))
        order = rng.permutation(idx)
        return full.subset(np.sort(order[n_val:])), full.subset(np.sort(order[:n_val]))

    # ---- training ----
    def check(self) -> None:
        if self.control.stopped:
            raise Cancelled("stopped")

    def _report(self, fraction: float) -> None:
        if self.progress is not None:
            done = (self.done + min(max(fraction, 0.0), 1.0)) / self.planned
            self.progress(int(PROGRESS_UNITS * min(done, 1.0)), PROGRESS_UNITS)

    def train(self, label: str, model_config: ModelConfig, train_set: ImageSet, val_set: ImageSet, steps: int,
              noise: str = "none", data: str = "", **train_changes: Any) -> Trained:
        """Train a fresh model for about `steps` optimizer steps (scaled by the budget)."""
        self.check()
        mcfg = replace(model_config, input_shape=tuple(train_set.shape))
        base = replace(BASE_TRAIN, seed=self.seed, **train_changes)
        steps = self.steps(steps)
        epochs = lab_epochs(train_set.n, base.batch_size, steps)
        tcfg = replace(base, epochs=epochs, noise=noise)
        if mcfg.stacked:  # pretraining stages count in the budget: one share per layer, then fine-tuning
            layers = mcfg.layer_count + 1
            pre = max(1, epochs // (2 * layers))
            tcfg = replace(tcfg, pretrain_epochs=pre, epochs=max(2, epochs - pre * layers))
        t0 = time.perf_counter()

        def on_progress(done: int, total: int) -> None:
            self._report(done / max(total, 1))

        training = lab_train(mcfg, tcfg, train_set, val_set, on_progress, self.control)
        if training.stopped or self.control.stopped:
            raise Cancelled("stopped")
        if mcfg.stacked:
            training.epochs = tcfg.epochs + tcfg.pretrain_epochs * (mcfg.layer_count + 1)
        self.done += 1
        self.planned = max(self.planned, self.done)
        self._report(0.0)
        t = Trained(label, mcfg, tcfg, training, train_set.n, time.perf_counter() - t0, data or train_set.name)
        self.trained.append(t)
        self.last = t
        return t

    # ---- the answer ----
    def answer(self, numbers: Numbers, figure: np.ndarray, conclusion: str, next_step: str,
               setup: Trained | None = None, data_spec: str | None = None, notes: list[str] | None = None,
               extra_runs: list[str] | None = None) -> Answer:
        """The answer of this run; `setup` is the model the studio's builder should show."""
        found = [t.improving_note() for t in self.trained] if not self.tiny else []
        pick = setup or (self.trained[0] if self.trained else None)
        return Answer(
            numbers=dict(numbers), figure=np.asarray(figure, np.uint8), conclusion=conclusion, next_step=next_step,
            runs=[t.describe() for t in self.trained] + list(extra_runs or []),
            notes=[n for n in [*(notes or []), *found] if n], seconds=time.perf_counter() - self._t0,
            budget=self.budget, model_config=None if pick is None else pick.model_config,
            train_config=None if pick is None else pick.train_config, data_spec=data_spec,
        )


__all__ = ["Answer", "BASE_TRAIN", "BUDGETS", "Cancelled", "Context", "Numbers", "Trained", "describe_model",
           "fmt_num", "round_sig"]
