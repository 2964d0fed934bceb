"""The training doctor: names what went wrong in a training run, with evidence and a remedy.

The `Trainer` owns a `Doctor` and yields its findings as `Diagnosis` events:

* at the start, data-level checks (`mostly_transparent`, `mostly_blank`);
* at the end of each epoch of the final stage (plain training or the fine-tuning after greedy
  pretraining), cheap checks on a fixed probe of at most `PROBE_IMAGES` validation images, run in
  eval mode without gradients (`constant_output`, `dead_units`, `posterior_collapse`);
* just before the run finishes, checks of the loss history (`still_improving`,
  `too_few_steps`, `overfitting`), and `nan` when the loss stopped being finite.

Each code is reported at most once per run. A finding carries its numbers in the message, a
remedy in words and, where the remedy is a setting, `settings`: the `ModelConfig` /
`TrainConfig` fields to change (for "Apply and retrain").

Evidence thresholds, calibrated on digits, shapes, fashion-10k and the held-out folders of
benchmarks/heldout.py (strokes, photos, icons, tiny); healthy runs raise none:

* probe checks must hold at two epoch ends in a row, or at the last epoch, so a passing state
  early in training is not reported. The untrained model already predicts the mean image (see
  models.py), so "no better than the mean image" counts only after `MIN_EVIDENCE_STEPS`
  optimizer steps of the final stage; healthy models are at 0.05-0.5x the mean image's error by
  then, collapsed ones at 0.9-1.0x.
* `constant_output`: after those steps, the probe's reconstruction error is at least
  `CONSTANT_MSE_RATIO` (0.9) of the error of predicting the mean training image, or the outputs
  vary across images less than `CONSTANT_VAR_RATIO` (2%) as much as the images do (healthy:
  45-100%); at any time, an error `BLATANT_MSE_RATIO` (1.5) times the mean image's, which the
  untrained model cannot have (a learning rate of 5 gives 4-7x). The two error rules hold only
  while the model does no better on training images either. A probe of as many training images,
  looked at only when the validation error is that high, tells the two apart: an error there
  under `LEARNED_TRAIN_RATIO` (half the mean image's) means the model learned its training
  images, and a model that memorised them is overfitting, not constant. The default conv AE on 2,000
  images of random 7x7 black-and-white grids ends at 0.05x the mean image's error on training
  images and 1.06x on validation ones, and was told "constant output: turn on batch norm".
* `dead_units`: at least `DEAD_FRACTION` (half) of all ReLU units output zero for every probe
  image (healthy runs: under 10% once trained, up to 28% in the first few steps), judged on at
  least `DEAD_MIN_PROBE` (8) images: on one image a healthy trained model reads 54-64% (half its
  units are simply off for any one input), on two up to 54%, on eight at most 24%.
* `posterior_collapse`: at least `COLLAPSE_FRACTION` (3/4) of the latent dimensions carry under
  `KL_ACTIVE_NATS` (0.01) nats of KL on the probe, after `BLATANT_MIN_STEPS` steps (a healthy
  VAE has every dimension active and several nats of KL within 75 steps). A collapsed VAE's
  flat output and idle units are not reported again as `constant_output` / `dead_units`.
* `still_improving`: over the last fifth of the epochs (at least 3 epochs, or all there are), a
  robust Theil-Sen fit of the log validation loss falls more than `STILL_IMPROVING_RATE` (5%)
  per epoch (converged runs: under 1.5%). The epochs judged are those before the learning rate
  began to fall (`TrainConfig.lr_decay`), when there are 3 or more: the loss drops while the rate
  anneals, and that drop says nothing about whether more training would help.
* `too_few_steps`: fewer than `FEW_STEPS_ALWAYS` (250) optimizer steps, or fewer than
  `FEW_STEPS` (1000) while the loss still falls more than `FEW_STEPS_RATE` (2%) per epoch over
  the last half of the epochs.
* `overfitting`: the validation reconstruction error (median of the last 3 epochs) rose
  `OVERFIT_RISE` (10%) above its best while the training error kept falling, with a final gap
  of at least `OVERFIT_MIN_GAP` (1.15); or the final validation error is at least `OVERFIT_GAP`
  (8) times the training one while the validation error no longer falls (by
  `OVERFIT_STILL_FALLING`, 2%, over the last fifth of the epochs), unless the validation error
  ends within 2% of its lowest (`OVERFIT_AT_BEST`) and small: the probe's under
  `OVERFIT_GENERALISES` (0.3) of the mean image's. A gap alone is common on healthy runs: at the
  default step budget strokes end at 3.5x with a constant learning rate and at 5.8x when it
  anneals at the end (the default), with the validation error 3% above its best; the dense contractive model on strokes at 10.6x with its
  validation error at its best in the last epoch; the 200-image folder at 3.7x; shorter runs at
  0.8-1.35x. The conv AE-16 with its dense layer ends strokes at 11.7x with a validation error
  0.16x the mean image's, the lowest of its run; the remedy the gap rule gives (input noise
  gaussian:0.2) made that error 5% worse (0.37x -> 0.39x PCA-16, a one-off trial), hence the
  exception (under `--amp` the same run ends 1.0% above its lowest epoch, hence 2% and not less).
  A big dense model memorising 60 digits ends at 700x, its validation error 0.28x the mean
  image's but 3.4% above its lowest: reported.
* `mostly_blank`: more than `BLANK_FRACTION` (half) of the images have a pixel standard
  deviation under `BLANK_STD` (3 of 255).
* `mostly_transparent`: more than `TRANSPARENT_FRACTION` (half) of the pixels were transparent
  (`ImageSet.transparent_fraction`, folders only).

The loss-trend checks are skipped once the fit is broken (constant output, posterior collapse or
NaN): their remedies would only mislead.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment import shiftable
from .config import ModelConfig, TrainConfig
from .evaluation import is_linear_model
from .noise import parse_noise

CODES = ("constant_output", "dead_units", "posterior_collapse", "too_few_steps", "overfitting",
         "still_improving", "nan", "mostly_transparent", "mostly_blank")

PROBE_IMAGES = 256
MIN_EVIDENCE_STEPS = 200
CONSTANT_MSE_RATIO = 0.9
LEARNED_TRAIN_RATIO = 0.5
BLATANT_MSE_RATIO = 1.5
CONSTANT_VAR_RATIO = 0.02
DEAD_FRACTION = 0.5
DEAD_MIN_PROBE = 8
COLLAPSE_FRACTION = 0.75
KL_ACTIVE_NATS = 0.01
BLATANT_MIN_STEPS = 50
STILL_IMPROVING_RATE = 0.05
FEW_STEPS = 1000
FEW_STEPS_ALWAYS = 250
FEW_STEPS_RATE = 0.02
OVERFIT_GAP = 8.0
OVERFIT_STILL_FALLING = 0.02
OVERFIT_RISE = 1.1
OVERFIT_MIN_GAP = 1.15
OVERFIT_GENERALISES = 0.3
OVERFIT_AT_BEST = 1.02
BLANK_STD = 3.0
BLANK_FRACTION = 0.5
TRANSPARENT_FRACTION = 0.5


@dataclass
class Diagnosis:
    """One finding of the training doctor (also a training event)."""

    code: str
    epoch: int  # the epoch (of the final stage) it was found at; 0: before training
    message: str  # one sentence with the evidence
    remedy: str  # what to do, in words
    settings: dict[str, Any] = field(default_factory=dict)  # config fields to change, when the remedy is a setting

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of diagnoses.json: {code, epoch, message, remedy}."""
        return {"code": self.code, "epoch": int(self.epoch), "message": self.message, "remedy": self.remedy}

    def text(self) -> str:
        """`code: message Remedy: remedy`, the line the CLI prints after `diagnosis: `."""
        return f"{self.code}: {self.message} Remedy: {self.remedy}"


def join_words(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.3g}"


def theil_sen_slope(y: list[float] | np.ndarray) -> float:
    """Median of the pairwise slopes of y against 0, 1, 2, ... (robust to one outlier epoch)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    slopes = [(y[j] - y[i]) / (j - i) for i in range(n) for j in range(i + 1, n)]
    return float(np.median(slopes)) if slopes else 0.0


def falling_rate(losses: list[float]) -> float:
    """Robust relative decrease per epoch of a loss series (0.05: falling 5% per epoch)."""
    vals = [float(v) for v in losses if v is not None and math.isfinite(float(v))]
    if len(vals) < 2:
        return 0.0
    logs = np.log(np.maximum(np.asarray(vals), 1e-12))
    return float(1.0 - math.exp(theil_sen_slope(logs)))


def image_stats(images: np.ndarray, limit: int = 4000) -> np.ndarray:
    """Per-image standard deviation (uint8 scale) of at most `limit` evenly spaced images."""
    n = len(images)
    if n == 0:
        return np.zeros(0)
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).astype(int))
    out = np.empty(len(idx), dtype=np.float64)
    for i in range(0, len(idx), 256):  # in chunks: big colour images stay cheap
        chunk = images[idx[i:i + 256]].reshape(len(idx[i:i + 256]), -1).astype(np.float32)
        out[i:i + len(chunk)] = chunk.std(1)
    return out


def at_full_rate(values: list[float], lr_decay: float, least: int = 3) -> list[float]:
    """The per-epoch `values` of a run before its learning rate began to fall over the run's last
    `lr_decay` share (training.LrSchedule), when there are `least` or more of them; else all.

    Whether more training would help is read from these: while the rate anneals the loss drops
    anyway. The training doctor (`still_improving`, `too_few_steps`) and the labs' "still
    improving" notes (labs/budget.py) both judge them."""
    steady = round((1.0 - float(lr_decay)) * len(values))
    return list(values[:steady]) if least <= steady < len(values) else list(values)


class Doctor:
    """Watches one training run. Call the `check_*` methods; each returns new findings only."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, n_train: int,
                 batches_per_epoch: int, x_train: torch.Tensor, x_val: torch.Tensor, shift: int = 0):
        self.mcfg, self.tcfg = model_config, train_config
        self.shift = shift  # pixels of random shift the run's training batches get (augment.py); 0: none
        self.n_train, self.batches = n_train, batches_per_epoch
        self.findings: list[Diagnosis] = []
        self.stats: list[dict[str, float]] = []  # per epoch of the final stage: what the probe measured
        self._pending: dict[str, int] = {}
        n_val = x_val.shape[0]
        src = x_val if n_val else x_train
        idx = torch.from_numpy(np.unique(np.linspace(0, src.shape[0] - 1, min(src.shape[0], PROBE_IMAGES)).astype(np.int64)))
        self.probe = src[idx.to(src.device)]
        # training images, to tell a model that learned nothing from one that memorised (constant_output)
        n_tr = x_train.shape[0]
        tidx = np.unique(np.linspace(0, n_tr - 1, min(n_tr, PROBE_IMAGES)).astype(np.int64))
        self.train_probe = x_train[torch.from_numpy(tidx).to(x_train.device)] if n_val and n_tr else None
        # A denoising model is judged on its task: corrupted probe images in, the clean ones as targets.
        # On clean inputs, which it never saw, a healthy denoiser can do poorly (the default conv AE at
        # gaussian:0.5 on the RGBA icons of benchmarks/robustness.py: +16.9 dB on noisy images, 0.55x the
        # mean image's error on clean ones at the end; judged on clean ones it was called a constant output).
        noise = parse_noise(train_config.noise)
        gen = torch.Generator().manual_seed(int(train_config.seed) + 7)

        def corrupted(x: torch.Tensor | None) -> torch.Tensor | None:
            return x if x is None or not noise.active else noise.apply(x.detach().cpu(), gen).to(x.device)

        self.probe_input, self.train_probe_input = corrupted(self.probe), corrupted(self.train_probe)
        with torch.no_grad():
            self.mean_image = x_train.mean(0, keepdim=True) if x_train.shape[0] else self.probe.mean(0, keepdim=True)
            self.mean_mse = float((self.probe - self.mean_image).pow(2).mean())
            self.data_var = float(self.probe.var(0, unbiased=False).mean()) if self.probe.shape[0] > 1 else 0.0
            self.train_mean_mse = (float((self.train_probe - self.mean_image).pow(2).mean())
                                   if self.train_probe is not None else 0.0)
        self.batch_losses: list[float] = []  # final stage, per batch

    def _shifts_would_help(self) -> bool:
        """Whether a run without shifts could be shifted (augment.shiftable: large enough images, a
        model that is not linear)."""
        return not self.shift and shiftable(tuple(self.mcfg.input_shape), linear=is_linear_model(self.mcfg))

    # ---- bookkeeping -----------------------------------------------------------------------
    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.findings]

    def _add(self, out: list[Diagnosis], d: Diagnosis) -> None:
        if d.code in self.codes:
            return
        self.findings.append(d)
        out.append(d)

    def _persistent(self, code: str, candidate: bool, last: bool) -> bool:
        """True when `candidate` held at two checks in a row, or holds at the last epoch."""
        if not candidate:
            self._pending.pop(code, None)
            return False
        self._pending[code] = self._pending.get(code, 0) + 1
        return last or self._pending[code] >= 2

    # ---- data ------------------------------------------------------------------------------
    def check_data(self, data: Any) -> list[Diagnosis]:
        out: list[Diagnosis] = []
        tf = getattr(data, "transparent_fraction", None)
        if tf is not None and math.isfinite(float(tf)) and float(tf) > TRANSPARENT_FRACTION:
            self._add(out, Diagnosis(
                "mostly_transparent", 0,
                f"{_pct(float(tf))} of the pixels in these images were transparent and were filled with the "
                "background colour, so the model spends most of its effort on empty background.",
                "Pick a background colour that contrasts with the pictures (Data panel, or --background white "
                "or black), or crop the images to their content."))
        images = getattr(data, "images", None)
        if images is not None and len(images):
            std = image_stats(images)
            blank = float(np.mean(std < BLANK_STD))
            if blank > BLANK_FRACTION:
                n = len(std)
                self._add(out, Diagnosis(
                    "mostly_blank", 0,
                    f"{_pct(blank)} of the images ({int(round(blank * n)):,} of the {n:,} checked) are blank: each is "
                    f"a single flat colour (pixel spread under {BLANK_STD:g} of 255), so there is little to learn.",
                    "Check the folder and remove the empty images; if the pictures had transparent backgrounds, "
                    "choose a background colour that contrasts with them (Data panel, or --background)."))
        return out

    # ---- per epoch (final stage) -----------------------------------------------------------
    def record_batch(self, loss: float) -> None:
        self.batch_losses.append(float(loss))

    @torch.no_grad()
    def probe_stats(self, model: nn.Module) -> dict[str, float]:
        """Reconstruction, output spread, dead ReLU units and per-dimension KL on the probe."""
        x = self.probe
        acts: list[torch.Tensor] = []

        def hook(_m, _inp, output):
            if isinstance(output, torch.Tensor) and output.dim() >= 2:
                dims = [0, *range(2, output.dim())]
                acts.append(output.detach().amax(dim=dims))

        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        handles = [m.register_forward_hook(hook) for m in relus]
        was = model.training
        model.eval()
        try:
            code = model.encode(self.probe_input)
            out = model.decode(code.mu if code.logvar is not None else code.z).float()
            peaks = list(acts)  # the ReLU peaks of the validation probe only
            mse = float((out - x).pow(2).mean())
            seen = None
            # the training images matter only when new ones fare no better than the mean image
            if self.train_probe is not None and mse >= CONSTANT_MSE_RATIO * self.mean_mse:
                seen = model(self.train_probe_input).float()  # in eval mode a VAE decodes its mean
        finally:
            for h in handles:
                h.remove()
            model.train(was)
        stats: dict[str, float] = {"mse": mse, "mse_ratio": mse / max(self.mean_mse, 1e-12)}
        if seen is not None:
            stats["train_mse_ratio"] = float((seen - self.train_probe).pow(2).mean()) / max(self.train_mean_mse, 1e-12)
        out_var = float(out.var(0, unbiased=False).mean()) if out.shape[0] > 1 else 0.0
        stats["var_ratio"] = out_var / max(self.data_var, 1e-12)
        finite = bool(torch.isfinite(out).all())
        stats["finite"] = float(finite)
        if peaks:
            units = torch.cat([a.flatten() for a in peaks])
            stats["units"] = float(units.numel())
            stats["dead"] = float((units <= 0).sum())
        if code.logvar is not None:
            mu, lv = code.mu.float(), code.logvar.float()
            kl = (0.5 * (mu.pow(2) + lv.exp() - 1.0 - lv)).mean(0)
            stats["latent"] = float(kl.numel())
            stats["inactive"] = float((kl < KL_ACTIVE_NATS).sum())
            stats["kl"] = float(kl.sum())
        return stats

    def check_epoch(self, model: nn.Module, epoch: int, epochs: int, stage_steps: int) -> list[Diagnosis]:
        """Probe checks at the end of `epoch` of the final stage (`stage_steps` optimizer steps so far)."""
        out: list[Diagnosis] = []
        s = self.probe_stats(model)
        s.update(epoch=epoch, steps=stage_steps)
        self.stats.append(s)
        last = epoch >= epochs
        enough = stage_steps >= MIN_EVIDENCE_STEPS
        lr = self.tcfg.lr

        # posterior collapse first: it explains a constant output and the dead units behind the code
        collapsed = False
        if "latent" in s:
            frac = s["inactive"] / max(s["latent"], 1)
            collapsed = frac >= COLLAPSE_FRACTION
            cand = (enough or last) and collapsed and stage_steps >= BLATANT_MIN_STEPS
            if self._persistent("posterior_collapse", cand, last):
                beta = float(self.mcfg.beta)
                new_beta = 1.0 if beta > 1.0 else round(beta / 2, 6)
                self._add(out, Diagnosis(
                    "posterior_collapse", epoch,
                    f"Posterior collapse: {int(s['inactive'])} of the {int(s['latent'])} latent dimensions carry almost "
                    f"no information (KL under {KL_ACTIVE_NATS:g} nats each, {_g(s['kl'])} nats in all), so the "
                    "decoder ignores the code and outputs nearly the same image for every input.",
                    f"Lower beta from {beta:g} to {new_beta:g} so the KL term stops overpowering reconstruction.",
                    {"beta": new_beta}))
            collapsed = collapsed or "posterior_collapse" in self.codes

        # constant / collapsed output
        if not s["finite"]:
            const = True
        else:
            # a model that reconstructs its training images well learned something: if new images fare no
            # better than the mean image, that is overfitting (check_end), not a constant output
            learned = s.get("train_mse_ratio", 1.0) < LEARNED_TRAIN_RATIO
            poor = s["mse_ratio"] >= CONSTANT_MSE_RATIO and not learned
            weak = poor or s["var_ratio"] < CONSTANT_VAR_RATIO
            # the untrained model predicts the mean image (ratio 1, no spread), so that is no news before
            # MIN_EVIDENCE_STEPS; far worse than the mean image is news at once
            const = self.data_var > 1e-8 and ((enough and weak) or (s["mse_ratio"] >= BLATANT_MSE_RATIO and not learned))
        if self._persistent("constant_output", const, last) and not collapsed:
            if lr > 1e-2:
                settings, fix = {"lr": 1e-3}, f"Lower the learning rate from {lr:g} to 0.001"
            elif lr < 1e-4:
                settings, fix = {"lr": 1e-3}, f"Raise the learning rate from {lr:g} to 0.001"
            elif not self.mcfg.batch_norm:
                settings, fix = {"batch_norm": True}, "Turn on batch normalisation"
            else:
                settings, fix = {"lr": lr / 3}, f"Lower the learning rate from {lr:g} to {lr / 3:.2g}"
            spread = (f"its output is almost the same image for every input (it varies {_pct(s['var_ratio'])} as "
                      "much as the images do)")
            if not s["finite"]:
                message = "The model has collapsed: its output is not a finite number."
            elif s["mse_ratio"] >= CONSTANT_MSE_RATIO:
                message = (f"The model has learned nothing useful: its reconstruction error ({_g(s['mse'])} per pixel) "
                           f"is {_ratio(s['mse_ratio'])} times that of always predicting the mean training image "
                           f"({_g(self.mean_mse)})" + (f", and {spread}." if s["var_ratio"] < CONSTANT_VAR_RATIO else "."))
            else:
                message = (f"The output has collapsed: {spread}, although its reconstruction error is "
                           f"{_ratio(s['mse_ratio'])} times that of always predicting the mean training image.")
            self._add(out, Diagnosis("constant_output", epoch, message, f"{fix} and train again.", settings))

        # dead units
        if "units" in s and s["units"] > 0 and not collapsed and self.probe.shape[0] >= DEAD_MIN_PROBE:
            frac = s["dead"] / s["units"]
            cand = frac >= DEAD_FRACTION
            if self._persistent("dead_units", cand, last):
                if lr > 5e-3:
                    settings, fix = {"lr": 1e-3}, f"Lower the learning rate from {lr:g} to 0.001"
                else:
                    settings, fix = {"activation": "leaky_relu", "activations": None}, \
                        "Use leaky ReLU activations, which cannot die,"
                self._add(out, Diagnosis(
                    "dead_units", epoch,
                    f"{int(s['dead'])} of the {int(s['units'])} ReLU units ({_pct(frac)}) are dead: they output zero "
                    f"for all {self.probe.shape[0]} validation images checked, so they no longer learn.",
                    f"{fix} and train again.", settings))
        return out

    # ---- the end ---------------------------------------------------------------------------
    def check_nan(self, stage: str, epoch: int, batch: int | None, value: float | None) -> list[Diagnosis]:
        out: list[Diagnosis] = []
        lr = self.tcfg.lr
        where = f"{stage} epoch {epoch}" + (f", batch {batch}" if batch else "")
        what = "the loss" if value is None else f"the loss ({value})"
        new_lr = max(min(lr / 10, 1e-3), 1e-6)
        self._add(out, Diagnosis(
            "nan", epoch,
            f"Training diverged: {what} stopped being a finite number in {where}, so the last finite "
            "weights were kept.",
            f"Lower the learning rate from {lr:g} to {new_lr:g} (clipping gradients also helps) and train again.",
            {"lr": new_lr}))
        return out

    def check_end(self, history: list[dict[str, Any]], stage_steps: int, epochs_planned: int) -> list[Diagnosis]:
        """Loss-history checks when the final stage completed; `history` holds its epoch records."""
        out: list[Diagnosis] = []
        if not history:
            return out
        if {"constant_output", "posterior_collapse", "nan"} & set(self.codes):
            return out  # the fit itself is broken: trends of its loss say nothing more
        key = "val_total" if "val_total" in history[-1] else "train_total"
        series = [float(h[key]) for h in history if key in h]
        n = len(series)
        epoch = int(history[-1].get("epoch", n))
        lr = self.tcfg.lr
        # The trend that says "more training would help" is the one at the full learning rate: while the
        # rate falls over the run's last `lr_decay` share (training.LrSchedule) the loss drops anyway.
        full_rate = at_full_rate(series, self.tcfg.lr_decay)
        nt = len(full_rate)
        before_decay = nt < n

        # too few optimizer steps
        few_more = 0  # the epochs that finding asks for: still_improving never asks for fewer
        if stage_steps < FEW_STEPS:
            if stage_steps < FEW_STEPS_ALWAYS:  # no model fits in so few steps, whatever the loss does
                rate = float("inf")
            elif nt >= 2:
                rate = falling_rate(full_rate[-max(2, math.ceil(nt / 2)):])
            else:  # one epoch: the last quarter of its batches against the quarter before
                q = max(1, len(self.batch_losses) // 4)
                a, b = self.batch_losses[-2 * q:-q], self.batch_losses[-q:]
                rate = 1.0 - float(np.mean(b)) / float(np.mean(a)) if a and b and np.mean(a) > 0 else 0.0
            if rate > FEW_STEPS_RATE:
                trend = (" and the loss was still falling " + _pct(rate) + " per epoch at the end"
                         if math.isfinite(rate) else "")
                from .training import step_budget, suggest_epochs

                budget = step_budget(self.mcfg.input_shape)
                more = few_more = max(suggest_epochs(self.n_train, self.tcfg.batch_size, steps=budget), epochs_planned + 1)
                self._add(out, Diagnosis(
                    "too_few_steps", epoch,
                    f"Training took only {stage_steps:,} optimizer steps ({n} epoch{'' if n == 1 else 's'} of "
                    f"{self.batches:,} batch{'' if self.batches == 1 else 'es'}){trend}: far too few for a model to "
                    f"learn {self.n_train:,} images.",
                    f"Train for {more} epochs (about {more * self.batches:,} steps), or use a smaller batch size.",
                    {"epochs": more}))

        # still improving
        if nt >= 3:
            w = min(nt - 1, max(3, math.ceil(0.2 * nt)))  # epochs (intervals) judged: the last fifth, at least 3
            rate = falling_rate(full_rate[-(w + 1):])
            if rate > STILL_IMPROVING_RATE:
                more = max(2 * epochs_planned, epochs_planned + 5, few_more)
                settings: dict[str, Any] = {"epochs": more}
                fix = f"Train longer ({more} epochs instead of {epochs_planned})"
                if lr < 3e-4:
                    settings["lr"] = 1e-3
                    fix += f" or raise the learning rate from {lr:g} to 0.001"
                which = "validation" if key == "val_total" else "training"
                self._add(out, Diagnosis(
                    "still_improving", epoch,
                    f"The {which} loss was still falling steeply when training ended: {_pct(rate)} per epoch over "
                    f"the last {w} epochs" + (" before the learning rate began to fall" if before_decay else "") +
                    f" ({_g(full_rate[-(w + 1)])} to {_g(full_rate[-1])}).",
                    f"{fix}; the model has more to learn.", settings))

        # overfitting / distribution mismatch
        if "val_recon" in history[-1] and "train_recon" in history[-1]:
            val = [float(h["val_recon"]) for h in history]
            tr = [float(h["train_recon"]) for h in history]
            gap = val[-1] / max(tr[-1], 1e-12)
            best = int(np.argmin(val))
            rise = float(np.median(val[-3:])) / max(val[best], 1e-12)
            rising = best < n - 1 and rise >= OVERFIT_RISE and tr[-1] < tr[best] and gap >= OVERFIT_MIN_GAP
            tail = max(1, round(0.2 * n))  # a validation error still falling clearly: the gap is no harm yet
            val_falling = n > tail and min(val[-tail:]) < (1.0 - OVERFIT_STILL_FALLING) * min(val[:-tail])
            # a gap on a model whose validation error ends near its lowest and small (the probe's under
            # 0.3x the mean image's) is a near-perfect fit of the training images, not harm
            at_best = val[-1] <= OVERFIT_AT_BEST * min(val)
            generalises = at_best and bool(self.stats) and self.stats[-1].get("mse_ratio", 1.0) < OVERFIT_GENERALISES
            if (gap >= OVERFIT_GAP and not val_falling and not generalises) or rising:
                best_epoch = int(history[best].get("epoch", best + 1))
                if rising:
                    detail = (f" and has risen {_pct(rise - 1)} since its best at epoch {best_epoch} while the "
                              "training loss kept falling")
                    settings = {"epochs": best_epoch}
                    fix = (f"Stop at epoch {best_epoch}, where the validation loss was lowest, or give the model more "
                           "images")
                else:
                    detail = ""
                    if self._shifts_would_help():
                        # the regulariser measured to help most on small image sets (augment.py: the
                        # 200-image tiny folder 1.18x -> 0.33x PCA-16's error, input noise none of that)
                        settings = {"augment": "shift"}
                        fix = "Show the model its images in new positions with random shifts (augment shift)"
                    elif self.tcfg.noise in ("", "none"):
                        settings, fix = {"noise": "gaussian:0.2"}, "Regularise with input noise (gaussian:0.2)"
                    else:
                        settings, fix = {"weight_decay": 1e-4}, "Regularise with weight decay (1e-4)"
                    fix += (", use more images or a smaller model, and check that the validation images come from "
                            "the same source as the training ones")
                self._add(out, Diagnosis(
                    "overfitting", epoch,
                    f"The validation error ({_g(val[-1])} per image) is {_ratio(gap)} times the training error "
                    f"({_g(tr[-1])}){detail}: the model memorises its {self.n_train:,} training images instead of "
                    "learning what carries over to new ones.",
                    fix + ".", settings))
        return out


#: Findings that change how a measurement of the model reads, and what they mean for it.
_CAUTIONS = {
    "too_few_steps": ("too few training steps", "understate"),
    "still_improving": ("a loss still falling when training ended", "understate"),
    "constant_output": ("a collapsed output", "little"),
    "nan": ("diverged training (NaN)", "little"),
}


def lab_caution(diagnoses: Iterable[Mapping[str, Any]], epoch: int) -> str | None:
    """What a lab measuring a model should say first about it, from the doctor's findings at the
    model's last epoch (a continued model's older findings no longer hold); None when nothing."""
    found = [d for d in diagnoses if d.get("code") in _CAUTIONS and d.get("epoch") == epoch]
    if not found:
        return None
    what = join_words(list(dict.fromkeys(_CAUTIONS[d["code"]][0] for d in found)))
    if any(_CAUTIONS[d["code"]][1] == "little" for d in found):
        meaning = "it learned little, so what this lab measures says little about the architecture"
    else:
        meaning = "trained longer it would likely do better, so these numbers may understate it"
    return f"The training doctor found {what} in this model (epoch {epoch}): {meaning}. See Diagnosis."
