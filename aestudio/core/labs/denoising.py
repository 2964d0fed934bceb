"""The denoising lab's computations (no Qt): corrupt validation images, let a model clean them up,
measure how much closer to the originals its outputs are, and train a plain / denoising pair.

    report = denoise_report(model, val_images, "gaussian:0.3", seed=0)
    report.psnr_noisy_mean, report.psnr_out_mean        # dB, averaged over up to 2,000 images
    pair = train_comparison_pair(model_config, train_set, "gaussian:0.3", steps=1000)
    pair.plain.model, pair.denoiser.model, pair.note       # note: None, or "... still improving ..."

A denoising autoencoder is trained to map a corrupted image back to the clean one. To do that it
cannot simply copy its input: it has to learn what images of this data set look like (strokes,
edges, textures) and project the noisy input back onto them. A plain autoencoder only ever saw
clean images, so it tends to reproduce part of the noise.

`lab_train` (a step budget of the core `Trainer` with progress and cancellation, see `budget.py`)
is shared by the other labs (anomaly, PCA vs autoencoder).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from ..config import ConfigError, ModelConfig, TrainConfig
from ..datasets import ImageSet
from ..evaluation import as_float_images, psnr_per_image, reconstruct_images, ssim_per_image
from ..models import Autoencoder
from ..noise import NOISE_KINDS, parse_noise
from ..training import BatchEnd, Control, Finished, Trainer
from .budget import DENOISING_STEPS, Improvement, improvement, improving_note, lab_epochs, steps_per_epoch
from .selection import pick_spread

Progress = Callable[[int, int], None]

MAX_EVAL_IMAGES = 2000  # the averages use at most this many validation images
SHOW = 8  # images shown per row
PSNR_CAP_DB = 100.0  # identical images (no noise) would otherwise give inf

# What each noise level means, for labels and tooltips.
NOISE_LEVEL_NAMES = {"gaussian": "σ", "saltpepper": "p", "mask": "p"}
NOISE_TITLES = {"gaussian": "Gaussian", "saltpepper": "Salt and pepper", "mask": "Masking"}


def noise_spec(kind: str, level: float) -> str:
    """The noise spec string for a kind and a level: noise_spec("gaussian", 0.3) == "gaussian:0.3"."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    if kind == "none" or level <= 0:
        return "none"
    return parse_noise(f"{kind}:{float(level):g}").spec()


def corrupt(images: np.ndarray, spec: str, seed: int = 0) -> np.ndarray:
    """A corrupted copy of images (N, C, H, W) in [0, 1]; the same seed gives the same noise."""
    x = as_float_images(images)
    noise = parse_noise(spec)
    if not noise.active:
        return x.copy()
    gen = torch.Generator().manual_seed(int(seed))
    return noise.apply(torch.from_numpy(np.ascontiguousarray(x).copy()), gen).numpy()


@dataclass
class DenoiseReport:
    """A model's outputs for corrupted images, and how close they are to the originals.

    `clean`, `noisy`, `outputs` are the shown images (float32, (n, C, H, W), in [0, 1]): those at
    `shown`, indices into the evaluated images (a spread over the classes, or the first `SHOW`).
    The per-image arrays cover every evaluated image (the first `n_evaluated` of those given);
    PSNR in dB (capped at 100), SSIM in [-1, 1].
    """

    noise: str
    clean: np.ndarray
    noisy: np.ndarray
    outputs: np.ndarray
    psnr_noisy: np.ndarray
    psnr_out: np.ndarray
    ssim_noisy: np.ndarray
    ssim_out: np.ndarray
    shown: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_evaluated(self) -> int:
        return int(len(self.psnr_out))

    @property
    def psnr_noisy_mean(self) -> float:
        return float(np.mean(self.psnr_noisy))

    @property
    def psnr_out_mean(self) -> float:
        return float(np.mean(self.psnr_out))

    @property
    def ssim_noisy_mean(self) -> float:
        return float(np.mean(self.ssim_noisy))

    @property
    def ssim_out_mean(self) -> float:
        return float(np.mean(self.ssim_out))

    @property
    def psnr_gain(self) -> float:
        """dB the model adds over the noisy input (positive: it removed noise)."""
        return self.psnr_out_mean - self.psnr_noisy_mean


def denoise_report(model: Autoencoder, images: np.ndarray, noise: str, seed: int = 0, n_show: int = SHOW,
                   max_images: int = MAX_EVAL_IMAGES, noisy: np.ndarray | None = None,
                   labels: np.ndarray | None = None) -> DenoiseReport:
    """Corrupt (up to `max_images` of) `images` with `noise`, run the model on them, and measure.

    Pass `noisy` (the output of `corrupt` for the same images) to reuse one corruption across
    several models so they are compared on exactly the same inputs. With `labels`, the `n_show`
    images shown are a spread over the classes (`selection.pick_spread`), else spaced evenly.
    """
    clean = as_float_images(images)[:max_images]
    if len(clean) == 0:
        raise ValueError("there are no images to corrupt")
    noisy = corrupt(clean, noise, seed) if noisy is None else as_float_images(noisy)[:len(clean)]
    out = np.clip(reconstruct_images(model, noisy), 0.0, 1.0).astype(np.float32)
    shown = pick_spread(labels, n_show, total=len(clean))
    return DenoiseReport(
        noise=parse_noise(noise).spec(),
        clean=clean[shown], noisy=noisy[shown], outputs=out[shown], shown=shown,
        psnr_noisy=psnr_per_image(clean, noisy, max_db=PSNR_CAP_DB),
        psnr_out=psnr_per_image(clean, out, max_db=PSNR_CAP_DB),
        ssim_noisy=ssim_per_image(clean, noisy),
        ssim_out=ssim_per_image(clean, out),
    )


# ---- quick training inside a lab -----------------------------------------------------------------
def lab_train_config(base: TrainConfig | None = None, epochs: int = 3, noise: str = "none",
                     seed: int | None = None) -> TrainConfig:
    """The run's training settings (batch size, learning rate, device) with a few epochs and `noise`."""
    base = base or TrainConfig()
    return replace(base, epochs=int(epochs), noise=noise, seed=base.seed if seed is None else int(seed))


@dataclass
class LabTraining:
    """A model a lab trained, with its per-epoch history and how long it trained."""

    model: Autoencoder
    history: list[dict] = field(default_factory=list)
    epochs: int = 0  # epochs planned
    steps_per_epoch: int = 1
    stopped: bool = False
    lr_decay: float = 0.0  # TrainConfig.lr_decay of the run: its last share annealed the learning rate

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def improvement(self) -> Improvement | None:
        """How much the validation loss fell over the last fifth of training (None: too short to tell)."""
        return None if self.stopped else improvement(self.history, self.steps_per_epoch, lr_decay=self.lr_decay)

    def note(self, what: str = "The model") -> str | None:
        """A sentence when the model was still improving when its step budget ran out, else None."""
        return improving_note(what, [self.improvement])


def lab_train(model_config: ModelConfig, train_config: TrainConfig, data: ImageSet,
              val_data: ImageSet | None = None, progress: Progress | None = None,
              control: Control | None = None, part: tuple[int, int] = (0, 1)) -> LabTraining:
    """Train a fresh model on all of `data` for `train_config.epochs` (validating on `val_data`, or on
    up to 500 of the training images) and return it on the CPU in eval mode, with its history.

    `progress(done, total)` counts batches. `part=(i, n)` says this is training i of n equally long
    ones sharing one progress bar. A stopped `control` ends training early (the partly trained
    model is returned).
    """
    if val_data is None:
        val_data = data.subset(slice(0, min(data.n, 500)))
    index, count = part
    trainer = Trainer(model_config, train_config, data, control=control or Control(), val_data=val_data)
    stopped = False
    for event in trainer.run():
        if isinstance(event, BatchEnd) and progress is not None:
            progress(index * event.total_steps + event.step, count * event.total_steps)
        elif isinstance(event, Finished):
            if event.reason == "nan":
                raise ConfigError(event.message)
            stopped = event.reason != "completed"
    return LabTraining(copy.deepcopy(trainer.model).to("cpu").eval(), list(trainer.history),
                       int(train_config.epochs), steps_per_epoch(data.n, train_config.batch_size), stopped,
                       float(train_config.lr_decay))


def quick_train(model_config: ModelConfig, train_config: TrainConfig, data: ImageSet,
                val_data: ImageSet | None = None, progress: Progress | None = None,
                control: Control | None = None, part: tuple[int, int] = (0, 1)) -> Autoencoder:
    """`lab_train`, returning only the model."""
    return lab_train(model_config, train_config, data, val_data, progress, control, part).model


def steps_config(base: TrainConfig | None, n_train: int, steps: int, noise: str = "none",
                 seed: int | None = None) -> TrainConfig:
    """The run's training settings with epochs giving about `steps` optimizer steps on `n_train` images."""
    base = base or TrainConfig()
    return lab_train_config(base, lab_epochs(n_train, base.batch_size, steps), noise, seed)


@dataclass
class ComparisonPair:
    plain: LabTraining
    denoiser: LabTraining

    @property
    def steps(self) -> int:
        return self.plain.steps

    @property
    def note(self) -> str | None:
        """Said when either model was still improving when its step budget ran out."""
        p, d = self.plain.improvement, self.denoiser.improvement
        both = [x for x in (p, d) if x is not None and x.improving]
        if len(both) == 2:
            return improving_note("Both models", both, plural=True)
        return improving_note("The plain autoencoder" if both and both[0] is p else "The denoising autoencoder",
                              both)


def train_comparison_pair(model_config: ModelConfig, train_set: ImageSet, noise: str, steps: int = DENOISING_STEPS,
                          progress: Progress | None = None, seed: int = 0, control: Control | None = None,
                          train_config: TrainConfig | None = None,
                          val_set: ImageSet | None = None) -> ComparisonPair:
    """Two models of the same architecture and initial weights, trained for the same `steps`
    optimizer steps on `train_set`: a plain autoencoder (clean inputs) and a denoising one (inputs
    corrupted by `noise`)."""
    if not parse_noise(noise).active:
        raise ConfigError("Choose a noise strength above zero: the denoising model needs noise to learn from.")
    plain_cfg = steps_config(train_config, train_set.n, steps, "none", seed)
    noisy_cfg = steps_config(train_config, train_set.n, steps, noise, seed)
    plain = lab_train(model_config, plain_cfg, train_set, val_set, progress, control, (0, 2))
    denoiser = lab_train(model_config, noisy_cfg, train_set, val_set, progress, control, (1, 2))
    return ComparisonPair(plain, denoiser)


__all__ = [
    "ComparisonPair", "DenoiseReport", "LabTraining", "MAX_EVAL_IMAGES", "NOISE_LEVEL_NAMES", "NOISE_TITLES", "SHOW",
    "corrupt", "denoise_report", "lab_train", "lab_train_config", "noise_spec", "quick_train", "steps_config",
    "train_comparison_pair",
]
