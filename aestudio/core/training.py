"""The training engine: a generator of plain events, with no Qt in sight.

    trainer = Trainer(model_config, train_config, imageset)
    for event in trainer.run():
        ...  # BatchEnd, EpochEnd, StageStarted, Diagnosis, Finished

The whole data set sits on the device as one float tensor and batches are index slices of
it (a per-item DataLoader costs about half the throughput on small images). `Control` lets
another thread pause, resume or stop; stop is honoured within one batch. A NaN or Inf loss
ends training with a message and restores the weights of the last finite epoch; so does a
stop in the middle of an epoch (the weights after the last completed epoch are kept). The training
doctor (doctor.py) watches the run and yields `Diagnosis` events; `trainer.diagnoses` keeps them.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, Union

import numpy as np
import torch

from .augment import describe as describe_augment, describe_skipped, resolve_shift, shift_batch
from .config import ConfigError, ModelConfig, TrainConfig
from .datasets import ImageSet, split_indices, validation_count
from .doctor import Diagnosis, Doctor
from .evaluation import is_linear_model
from .inspect import GradNormProbe
from .adversarial import AdversarialStep
from .losses import kl_normal, loss_terms, reconstruction
from .models import Autoencoder
from .noise import parse_noise
from .optim import make_optimizer
from . import scaleout


#: The engine looks at the loss values (a host sync on a GPU) after at most this many batches or
#: seconds, at the first batch of a run and at the end of every epoch; never per batch.
SYNC_EVERY_BATCHES = 50
SYNC_EVERY_S = 0.1


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1] (the same values as numpy's `images / np.float32(255)`),
    converted and divided in one kernel."""
    return torch.div(images, 255.0).float()


class _LossMeter:
    """Loss terms of the batches since the last look, kept on the device until `flush` reads them
    all in one transfer; then summed per image on the host (the same sums as a per-batch loop)."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self._pending: list[torch.Tensor] = []
        self._sizes: list[int] = []
        self._sums: dict[str, float] = {}
        self.seen = 0
        self._done = 0  # batches flushed so far

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, terms: dict[str, torch.Tensor], n: int) -> None:
        if self.keys is None:
            self.keys = list(terms)
        self._pending.append(torch.stack([terms[k].detach().float() for k in self.keys]))
        self._sizes.append(int(n))

    def flush(self) -> tuple[list[dict[str, float]], tuple[int, float] | None]:
        """The per-batch values since the last flush, and (batch index counted from the first
        `add`, loss) of the first non-finite total among them, else None."""
        if not self._pending:
            return [], None
        values = torch.stack(self._pending).cpu().tolist()
        rows = [dict(zip(self.keys, v)) for v in values]
        bad = None
        for i, (row, n) in enumerate(zip(rows, self._sizes)):
            if bad is None and not math.isfinite(row.get("total", 0.0)):
                bad = (self._done + i, row["total"])
            for k, v in row.items():
                self._sums[k] = self._sums.get(k, 0.0) + v * n
            self.seen += n
        self._done += len(rows)
        self._pending, self._sizes = [], []
        return rows, bad

    def means(self) -> dict[str, float]:
        return {k: v / max(self.seen, 1) for k, v in self._sums.items()}


class DeviceError(RuntimeError):
    """The requested device is not present. The message is meant for users."""


def available_devices() -> list[str]:
    """Devices present on this machine, best first."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolve_device(name: str = "auto") -> torch.device:
    present = available_devices()
    if name == "auto":
        return torch.device(present[0])
    base = name.split(":")[0]
    if base not in present:
        raise DeviceError(f"device {name!r} is not available here; present: {', '.join(present)}")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86 AVX512-BF16 or AMX), so that mixed precision
    pays: about 2x the float32 rate for the products of a linear layer, measured on an AMD EPYC with
    AVX512-BF16. Without those instructions bfloat16 is emulated and slower than float32. Read from
    /proc/cpuinfo (Linux); elsewhere False."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def flush_subnormals() -> bool:
    """Compute on the calling thread with subnormal floats flushed to zero from now on (x86's FTZ
    and DAZ flags). Returns False where the CPU cannot.

    After an epoch or two, some of Adam's running averages of squared gradients fall below
    float32's smallest normal number (about 1e-38), and the CPU handles such numbers in slow
    microcode: the studio's default conv model on 50,000 images trained at 1,551-1,673 images/s in
    its second epoch, 3,084 with them flushed (2 threads; one run each). Numbers that small change
    no result that matters (TensorFlow flushes them by default). The flags belong to each thread,
    and torch's compute threads copy them from the thread that starts them, at its first parallel
    operation: call this first thing on a thread that will train."""
    return bool(torch.set_flush_denormal(True))


@contextlib.contextmanager
def subnormals_flushed() -> Iterator[bool]:
    """``with subnormals_flushed():`` `flush_subnormals` for the block, restored to IEEE (the
    default) after it: for code that trains on a thread it does not own (the command line)."""
    on = flush_subnormals()
    try:
        yield on
    finally:
        if on:
            torch.set_flush_denormal(False)


def warm_up() -> None:
    """Build a throwaway optimizer, so that the first real one does not wait: the first optimizer of
    a process imports torch's compiler stack (`torch._dynamo`), 1.8 s on a quiet 2-core machine.
    The studio calls this on a background thread once its window is up."""
    make_optimizer([torch.nn.Parameter(torch.zeros(1))], 1e-3, torch.device("cpu"), "adam")


class LrSchedule:
    """The learning rate of one stage: constant, then falling linearly over its last `decay` share of steps.

    The rate of the stage's final step is `lr / decay_steps`, never 0. Measured with
    benchmarks/robustness.py at 4,000 steps, a constant rate against a decay over the last 30%:
    the denoising conv AE on `digits` +5.9 dB -> +6.0 dB, the conv AE-16 on `fashion-10k` 0.62x ->
    0.60x PCA-16's error.
    """

    def __init__(self, lr: float, decay: float, steps: int):
        self.lr, self.steps = lr, max(1, steps)
        self.decay_steps = max(1, round(decay * self.steps)) if decay > 0 else 0
        self.done = 0

    def rate(self, done: int) -> float:
        """The learning rate for the step after `done` steps of the stage."""
        if not self.decay_steps:
            return self.lr
        return self.lr * min(1.0, (self.steps - min(done, self.steps - 1)) / self.decay_steps)

    def apply(self, opt: torch.optim.Optimizer) -> None:
        """Set the rate of the next step, and count it."""
        if self.decay_steps:
            lr = self.rate(self.done)
            for group in opt.param_groups:
                group["lr"] = lr
        self.done += 1


#: Optimizer steps that the default settings aim for on images of up to 784 numbers (28×28 gray).
#: Measured on the held-out sets of benchmarks/robustness.py: fewer steps leave small folders
#: under-trained (the model is still improving fast when training ends), however many epochs that takes.
STEP_BUDGET = 4000
BUDGET_VALUES = 784  # numbers per image that STEP_BUDGET is for
MAX_BUDGET_SCALE = 2.0


def step_budget(shape: Sequence[int]) -> int:
    """The default optimizer steps for images of `shape` (C, H, W).

    An image with more numbers has more to learn: the budget grows with the fourth root of the
    numbers per image over BUDGET_VALUES, from STEP_BUDGET (28×28 gray and smaller) to twice
    that (about 64×64 RGB and larger), rounded to 100 steps. 32×32 gray gets 4,300 steps and
    28×28 RGB 5,300 (benchmarks/robustness.py measures both)."""
    values = max(1, math.prod(int(s) for s in shape))
    scale = min(MAX_BUDGET_SCALE, max(1.0, (values / BUDGET_VALUES) ** 0.25))
    return int(round(STEP_BUDGET * scale / 100) * 100)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over `n_train` images (the last batch may be smaller)."""
    return max(1, math.ceil(max(int(n_train), 1) / max(int(batch_size), 1)))


def suggest_epochs(n_train: int, batch_size: int, steps: int, least: int = 5, most: int = 2000) -> int:
    """Epochs that give about `steps` optimizer steps on `n_train` images (within [least, most])."""
    return int(min(most, max(least, math.ceil(steps / steps_per_epoch(n_train, batch_size)))))


@dataclass(frozen=True)
class DefaultEpochs:
    """The epochs that the default settings give a data set (the CLI and the studio use the same)."""

    epochs: int
    steps: int  # the optimizer steps they give
    budget: int  # the steps aimed for: step_budget(shape)
    n_train: int  # images in the training split


def default_epochs(n_images: int, shape: Sequence[int], batch_size: int, val_fraction: float) -> DefaultEpochs:
    """About `step_budget(shape)` optimizer steps of `batch_size` on the training split of `n_images`."""
    n_train = n_images - validation_count(n_images, val_fraction) if n_images >= 2 and 0 < val_fraction < 1 else n_images
    budget = step_budget(shape)
    epochs = suggest_epochs(n_train, batch_size, steps=budget)
    return DefaultEpochs(epochs, epochs * steps_per_epoch(n_train, batch_size), budget, n_train)


# ---- events ---------------------------------------------------------------------------------
@dataclass
class StageStarted:
    name: str  # "train", "pretrain layer 1/3", "fine-tune"
    index: int
    count: int
    epochs: int


@dataclass
class BatchEnd:
    stage: str
    epoch: int  # 1-based, within the stage
    epochs: int
    batch: int  # 1-based
    batches: int
    step: int  # batches done over the whole run
    total_steps: int
    terms: dict[str, float]
    images_per_sec: float
    eta_s: float

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


@dataclass
class EpochEnd:
    stage: str
    epoch: int
    epochs: int
    train: dict[str, float]
    val: dict[str, float]
    images_per_sec: float
    eta_s: float
    seconds: float
    step: int
    total_steps: int


@dataclass
class Finished:
    reason: str  # "completed" | "stopped" | "nan"
    message: str
    epochs_done: int


Event = Union[StageStarted, BatchEnd, EpochEnd, Diagnosis, Finished]


class Control:
    """Thread-safe pause / resume / stop flags, checked by the engine between batches."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused; returns the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        t0 = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - t0


# ---- the engine -------------------------------------------------------------------------------
@dataclass
class _Stage:
    name: str
    epochs: int
    params: list[torch.nn.Parameter]
    step_fn: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
    eval_fn: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]] | None
    first: int = 0  # epochs done before this run (a continued run numbers its epochs on)


@dataclass
class Trainer:
    model_config: ModelConfig
    train_config: TrainConfig
    data: ImageSet
    control: Control = field(default_factory=Control)
    model: Autoencoder | None = None  # pass one to continue training it
    val_data: ImageSet | None = None  # validate on this set and train on all of `data` (else a seeded split)
    # Continuing a trained model (core.trained.resume_trainer): the (train, validation) indices it was
    # trained with, its optimizer's state and its epoch records; new epochs are numbered on, the KL
    # warm-up and stacked pretraining are behind it.
    split: tuple[np.ndarray, np.ndarray] | None = None
    optimizer_state: dict | None = None
    prior_history: list[dict] | None = None

    def __post_init__(self) -> None:
        self.train_config.validate()
        if tuple(self.model_config.input_shape) != tuple(self.data.shape):
            raise ConfigError(
                f"the model expects images of shape {tuple(self.model_config.input_shape)} "
                f"but the data set has {tuple(self.data.shape)}"
            )
        self.model_config.validate()
        cfg = self.train_config
        self.device = resolve_device(cfg.device)
        from .resources import check_training_fits  # refuse what cannot fit, before allocating

        streamed = scaleout.is_streamed(self.data)  # a set too large for memory: read from its decode cache
        check_training_fits(self.model_config, cfg.batch_size,
                            0 if streamed else self.data.n + (self.val_data.n if self.val_data is not None else 0),
                            self.device)
        self.dist = scaleout.dist.current()  # one process, or this rank of a torchrun job
        if self.dist.enabled and self.model_config.kind == "aae":
            raise ConfigError("an adversarial autoencoder (aae) trains in one process only; "
                              "run it without torchrun or --nproc")
        self.noise = parse_noise(cfg.noise)
        torch.manual_seed(cfg.seed)
        fresh = self.model is None
        if fresh:
            self.model = Autoencoder(self.model_config)
        self.model.to(self.device)
        self.notes: list[str] = []  # one line each about speed settings that do not apply here (CLI prints them)
        self._amp_dtype, self._scaler, self._channels_last = self._speed_settings()
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        # the images stay uint8 on the device (a quarter of float32's memory); each batch is converted
        if streamed:  # rows stay in the cache file; u8_train / u8_val read them (scaleout.StreamRows)
            if self.val_data is None:
                split = getattr(self, "split", None)  # the split a continued model was trained with
                self.train_idx, self.val_idx = (split_indices(self.data.n, cfg.val_fraction, cfg.seed) if split is None
                                                else (np.array(split[0], np.int64), np.array(split[1], np.int64)))
                self.val_set = self.data.subset(self.val_idx[:scaleout.VAL_SET_LIMIT])  # labels for the views
            else:
                self.train_idx, self.val_idx = np.arange(self.data.n), np.arange(self.val_data.n)
                self.val_set = self.val_data
            self.u8_train, self.u8_val = scaleout.stream_sources(self.data, self.train_idx, self.val_idx,
                                                                 self.device, self.val_data)
        elif self.val_data is None:
            self.train_idx, self.val_idx = (split_indices(self.data.n, cfg.val_fraction, cfg.seed) if self.split is None
                                            else (np.array(self.split[0], np.int64), np.array(self.split[1], np.int64)))
            # numpy's row gather: 7x quicker than torch's advanced indexing for 60,000 uint8 rows
            self.u8_train = torch.from_numpy(self.data.images[self.train_idx]).to(self.device)
            self.u8_val = torch.from_numpy(self.data.images[self.val_idx]).to(self.device)
            self.val_set = self.data.subset(self.val_idx)
        else:
            if tuple(self.val_data.shape) != tuple(self.data.shape):
                raise ConfigError(f"validation images have shape {self.val_data.shape}, training images {self.data.shape}")
            self.train_idx, self.val_idx = np.arange(self.data.n), np.arange(self.val_data.n)
            self.val_set = self.val_data
            self.u8_train = torch.from_numpy(self.data.images).to(self.device)
            self.u8_val = torch.from_numpy(self.val_data.images).to(self.device)
        x_float = scaleout.sample_float(self.u8_train)  # one transient float copy (a sample when streamed)
        if fresh:
            self.model.init_data_stats(x_float)  # standardised inputs, output starts at the mean image (models.py)
        self.history: list[dict[str, float | str | int]] = [dict(r) for r in self.prior_history or []]
        self.epoch_offset = len(self.history)  # every earlier epoch record, as snapshots count them
        self.optimizer: torch.optim.Optimizer | None = None  # the final stage's, once it started
        # random shifts of training batches for small sets (aestudio/core/augment.py); CPU generator: no sync
        # (the epochs in all: a continued model has seen the set `epoch_offset` times already)
        self.augment_shift = resolve_shift(cfg.augment, self.n_train, tuple(self.data.shape),
                                           linear=is_linear_model(self.model_config),
                                           epochs=self.epoch_offset + cfg.epochs)
        self.doctor = Doctor(self.model_config, cfg, self.n_train, math.ceil(self.n_train / cfg.batch_size),
                             x_float, scaleout.sample_float(self.u8_val, scaleout.PROBE_SAMPLE), shift=self.augment_shift)
        del x_float
        self.diagnoses: list[dict] = []  # the doctor's findings so far, as {code, epoch, message, remedy}
        # a VAE's per-dimension KL summed over the last clean validation pass, and its image count
        self._val_kl_total: tuple[torch.Tensor, int] | None = None
        # The codes of the first `keep_val_codes` validation images, kept from the last clean validation
        # pass with the weights version they belong to (`val_codes`): the studio's latent map reads them
        # instead of encoding the split a second time each epoch. `weights_version` counts optimizer
        # steps; restoring the last completed epoch's weights restores its version too.
        self.keep_val_codes = 0
        self.weights_version = 0
        self._good_version = 0
        self._val_codes: tuple[int, torch.Tensor] | None = None
        self._shuffle = torch.Generator().manual_seed(cfg.seed)
        self._noise_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self._augment_gen = torch.Generator().manual_seed(cfg.seed + 2)

    # -- data --
    @property
    def augment_line(self) -> str:
        """What augmentation this run uses and why (augment.describe), or "" when none."""
        if not self.augment_shift:
            return ""
        return describe_augment(self.augment_shift, self.n_train, tuple(self.data.shape))

    @property
    def augment_skipped(self) -> str:
        """Why `auto` does not shift a set that it shifts in a longer run (augment.describe_skipped), or ""."""
        if self.train_config.augment != "auto" or self.augment_shift:
            return ""
        return describe_skipped(self.n_train, tuple(self.data.shape), self.epoch_offset + self.train_config.epochs,
                                linear=is_linear_model(self.model_config))

    @property
    def n_train(self) -> int:
        return int(self.u8_train.shape[0])

    @property
    def x_train(self) -> torch.Tensor:
        """The training images as float in [0, 1] on the device (a new tensor: use `train_rows` for a few)."""
        return _to_float(self.u8_train)

    @property
    def x_val(self) -> torch.Tensor:
        """The validation images as float in [0, 1] on the device (a new tensor: use `val_rows` for a few)."""
        return _to_float(self.u8_val)

    def train_rows(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Training images `idx` (a device index tensor or a slice) as float in [0, 1]."""
        if isinstance(idx, torch.Tensor) and isinstance(self.u8_train, torch.Tensor):
            # index_select: 4 us for a batch of 128 28x28 rows on a CPU, against 64 us for u8_train[idx]
            return _to_float(self.u8_train.index_select(0, idx))
        return _to_float(self.u8_train[idx])

    def val_rows(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Validation images `idx` (a device index tensor or a slice) as float in [0, 1]."""
        return _to_float(self.u8_val[idx])

    def _speed_settings(self) -> tuple[torch.dtype | None, "torch.amp.GradScaler | None", bool]:
        """Mixed precision and channels-last memory, where they apply (mixed precision on CUDA and on
        CPUs with bfloat16 instructions; channels-last for conv models on CUDA)."""
        cfg, cuda = self.train_config, self.device.type == "cuda"
        amp_dtype, scaler = None, None
        if cfg.amp:
            if self.device.type == "cpu":
                if cpu_has_bf16():
                    amp_dtype = torch.bfloat16  # products in bfloat16, weights, sums and losses in float32
                else:
                    self.notes.append("mixed precision (amp) on a CPU needs bfloat16 instructions (AVX512-BF16 or "
                                      "AMX), which this one lacks; training in float32")
            elif not cuda:
                self.notes.append(f"mixed precision (amp) works on CUDA and on CPUs with bfloat16 instructions; "
                                  f"training in float32 on {self.device.type}")
            elif torch.cuda.is_bf16_supported():
                amp_dtype = torch.bfloat16  # float32's range: no loss scaling needed
            else:
                amp_dtype, scaler = torch.float16, torch.amp.GradScaler("cuda")
        channels_last = False
        if cfg.channels_last:
            if self.model_config.arch != "conv":
                self.notes.append("channels-last memory helps convolutional models only; ignored for a dense model")
            elif not cuda:
                self.notes.append(f"channels-last memory is used on CUDA only; ignored on {self.device.type}")
            else:
                channels_last = True
        return amp_dtype, scaler, channels_last

    # -- stages --
    def _stages(self) -> list[_Stage]:
        cfg, m = self.train_config, self.model
        # an adversarial autoencoder's discriminator has its own optimizer (adversarial.py), not this stage's
        self._adversary = AdversarialStep(m, cfg.lr) if self.model_config.kind == "aae" else None
        full = _Stage("train", self.epoch_offset + cfg.epochs, m.autoencoder_parameters(), self._warm_step,
                      self._full_step, first=self.epoch_offset)
        if not self.model_config.stacked or cfg.pretrain_epochs == 0 or self.epoch_offset:
            return [full]
        n = len(m.enc_blocks) + 1
        stages = []
        for k in range(n):
            pair = [m.to_code, m.from_code] if k == n - 1 else [m.enc_blocks[k], m.dec_blocks[k]]
            params = [p for mod in pair for p in mod.parameters()] + ([m.output_bias] if k == 0 else [])
            stages.append(_Stage(f"pretrain layer {k + 1}/{n}", cfg.pretrain_epochs, params,
                                 self._layer_step(k), None))
        full.name = "fine-tune"
        return [*stages, full]

    def _full_step(self, x_in: torch.Tensor, target: torch.Tensor, **kw) -> dict[str, torch.Tensor]:
        return loss_terms(self.model, x_in, target, **kw)

    def _warm_step(self, x_in: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """A training step whose VAE KL weight follows the warm-up ramp (validation uses the full beta);
        an AAE's step first updates its discriminator and encoder (adversarial.AdversarialStep)."""
        if getattr(self, "_adversary", None) is not None:
            return self._adversary(x_in, target)
        return loss_terms(self.model, x_in, target, kl_weight=self._kl_weight)

    def _update_kl_weight(self, step: int, total_steps: int) -> None:
        """KL warm-up: beta ramps linearly from 0 over the first `kl_warmup` of the run's steps.

        Without it a VAE that starts at the mean image (see models.py) has nothing to gain from
        its code yet and the KL term pushes every dimension onto the prior before the decoder
        learns to use it: posterior collapse, measured on sparse strokes and on a 200-image folder.
        """
        beta, warm = self.model_config.beta, self.train_config.kl_warmup * total_steps
        if self.epoch_offset:
            warm = 0  # a continued model is past its warm-up
        self._kl_weight = beta if warm <= 0 else beta * min(1.0, step / warm)

    def _layer_step(self, k: int) -> Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        """Greedy layer-wise pretraining: train encoder/decoder pair k on the frozen features below it."""
        m, mcfg = self.model, self.model_config
        last = len(m.enc_blocks)

        def step(x_in: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
            if k == 0:
                logits = m.dec_blocks[0](m.enc_blocks[0](m.normalize_input(x_in))) + m.output_bias
                recon = reconstruction(logits, target, mcfg.loss, mcfg.output)
                return {"recon": recon, "total": recon}
            with torch.no_grad():
                h = m.normalize_input(target)
                for block in m.enc_blocks[:k]:
                    h = block(h)
            if k == last:
                h = h.flatten(1)
                out = m.from_code(m.code_from_features(h).z)
            else:
                out = m.dec_blocks[k](m.enc_blocks[k](h))
            recon = (out.reshape(h.shape) - h).pow(2).flatten(1).sum(1).mean()
            return {"recon": recon, "total": recon}

        return step

    # -- the loop --
    def run(self) -> Iterator[Event]:
        cfg, m, ctl = self.train_config, self.model, self.control
        n_train, bs = self.n_train, cfg.batch_size
        batches = math.ceil(n_train / bs)
        plan = scaleout.RankPlan(self.dist, bs, n_train)  # under torchrun: this rank's part of each global batch
        agreement = scaleout.Agreement(self.dist, self.device)
        if self.dist.enabled:
            batches = plan.batches_per_epoch
        stages = self._stages()
        total_steps = sum(s.epochs - s.first for s in stages) * batches
        step, images, busy = 0, 0, 0.0
        good_state, self._good_version = copy.deepcopy(m.state_dict()), self.weights_version
        epochs_done = self.epoch_offset
        doctor, final_history = self.doctor, []
        # per-layer gradient norms: measured on the device on each epoch's last batch, read at its end
        self._grad_probe, self._grad_norms, self._measure_grads = GradNormProbe(m), None, None
        yield from self._diagnosed(doctor.check_data(scaleout.doctor_view(self.data)))
        for si, stage in enumerate(stages):
            final = si == len(stages) - 1  # the doctor judges the fit of the final stage only
            stage_steps = 0
            yield StageStarted(stage.name, si, len(stages), stage.epochs)
            opt = make_optimizer(stage.params, cfg.lr, self.device, cfg.optimizer)
            if self.dist.enabled:  # gradients averaged over the ranks (DistributedDataParallel)
                stage = dataclasses.replace(stage, step_fn=scaleout.ddp_step(
                    m, stage.step_fn, self.device, unused_parameters=len(stages) > 1))
            if final:
                if self.optimizer_state is not None:
                    from .trained import load_optimizer_state

                    load_optimizer_state(opt, self.optimizer_state, cfg.lr)
                self.optimizer = opt
            schedule = LrSchedule(cfg.lr, cfg.lr_decay, (stage.epochs - stage.first) * batches)
            for epoch in range(stage.first + 1, stage.epochs + 1):
                m.train()
                t_epoch = time.perf_counter()
                epoch_busy = 0.0
                meter = _LossMeter()
                order = torch.randperm(n_train, generator=self._shuffle)
                rank_batches = plan.split(order) if self.dist.enabled else None
                if isinstance(self.u8_train, scaleout.StreamRows):  # read the epoch's batches ahead
                    self.u8_train.plan([np.asarray(r) for r in rank_batches] if rank_batches is not None else
                                       [order[i:i + bs].numpy() for i in range(0, n_train, bs)])
                else:
                    order = order.to(self.device)
                    rank_batches = None if rank_batches is None else [r.to(self.device) for r in rank_batches]
                last_look = t_epoch
                for b in range(batches):
                    ctl.wait_while_paused()
                    if (agreement.stop if self.dist.enabled else ctl.stopped):
                        _, bad = meter.flush()  # a non-finite loss not looked at yet wins over the stop
                        if bad is not None:
                            yield from self._nan_end(stage.name, epoch, bad, epochs_done, good_state)
                            return
                        yield Finished("stopped", self._stop_message(good_state, epochs_done, b), epochs_done)
                        return
                    t0 = time.perf_counter()
                    target = self._batch(order[b * bs:(b + 1) * bs] if rank_batches is None else rank_batches[b])
                    self._update_kl_weight(step, total_steps)
                    target = shift_batch(target, self.augment_shift, self._augment_gen)
                    x_in = self.noise.apply(target, self._noise_gen)
                    self._measure_grads = stage.params if b == batches - 1 else None
                    schedule.apply(opt)
                    terms = self._step(stage, opt, x_in, target)
                    meter.add(terms, target.shape[0])
                    step += 1
                    if final:
                        stage_steps += 1
                    values: dict[str, float] = {}
                    # look at the losses (one host sync) at a bounded interval, never per batch
                    if (b == batches - 1 or step == 1 or meter.pending >= SYNC_EVERY_BATCHES
                            or (t0 - last_look >= SYNC_EVERY_S and not self.dist.enabled)):
                        rows, bad = meter.flush()
                        _, bad = agreement.look(ctl.stopped, bad, meter._done - 1)  # all ranks alike
                        last_look = time.perf_counter()
                        if bad is not None:
                            yield from self._nan_end(stage.name, epoch, bad, epochs_done, good_state)
                            return
                        if final:
                            for row in rows:
                                doctor.record_batch(row["total"])
                        values = rows[-1]
                    dt = time.perf_counter() - t0
                    busy += dt
                    epoch_busy += dt
                    images += target.shape[0]
                    ips = images / max(busy, 1e-9)
                    eta = (total_steps - step) * busy / step
                    yield BatchEnd(stage.name, epoch, stage.epochs, b + 1, batches, step, total_steps, values, ips, eta)
                seen = meter.seen
                train_terms = scaleout.global_means(meter.means(), seen, self.dist, self.device)
                if self.dist.enabled:  # identical weights and buffers everywhere before validating
                    scaleout.dist.broadcast_state(m, self.dist)
                val_terms = self.evaluate_terms(stage.eval_fn) if stage.eval_fn and self.dist.is_main else {}
                val_terms = scaleout.share_validation(val_terms, self.dist, self.device)  # rank 0 validates
                if val_terms and not math.isfinite(val_terms.get("total", 0.0)):
                    self._restore(good_state)
                    yield from self._diagnosed(doctor.check_nan(stage.name, epoch, None, val_terms.get("total")))
                    yield Finished("nan", f"The validation loss became non-finite in epoch {epoch}; "
                                          "restored the weights of the last finite epoch.", epochs_done)
                    return
                good_state, self._good_version = copy.deepcopy(m.state_dict()), self.weights_version
                epochs_done += 1
                seconds = time.perf_counter() - t_epoch
                ips = seen / max(epoch_busy, 1e-9) * self.dist.world_size  # every rank's images
                eta = (total_steps - step) * busy / max(step, 1)
                self.history.append({
                    "stage": stage.name, "epoch": epoch, "seconds": round(seconds, 4), "images_per_sec": round(ips, 1),
                    "world_size": self.dist.world_size,
                    **{f"train_{k}": v for k, v in train_terms.items()},
                    **{f"val_{k}": v for k, v in val_terms.items()},
                    **self._grad_probe.record(self._grad_norms),
                    **self._kl_per_dim_record(),
                })
                yield EpochEnd(stage.name, epoch, stage.epochs, train_terms, val_terms, ips, eta, seconds, step, total_steps)
                if final:
                    final_history.append(self.history[-1])
                    yield from self._diagnosed(doctor.check_epoch(m, epoch, stage.epochs, stage_steps))
            if final:
                yield from self._diagnosed(doctor.check_end(final_history, stage_steps, stage.epochs))
        m.eval()
        yield Finished("completed", f"Finished {epochs_done} epoch(s).", epochs_done)

    def _batch(self, idx: torch.Tensor) -> torch.Tensor:
        """One training batch (rows `idx` of the training split) as float on the device."""
        x = self.train_rows(idx)
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def _autocast(self):
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._amp_dtype)

    def _step(self, stage: _Stage, opt: torch.optim.Optimizer, x_in: torch.Tensor,
              target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward, backward and one optimizer step; returns the loss terms (device tensors, not looked at)."""
        with self._autocast():
            terms = stage.step_fn(x_in, target)
        loss, scaler, clip = terms["total"], self._scaler, self.train_config.grad_clip
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            self._grad_norm_hook()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(stage.params, clip)
            opt.step()
        else:  # float16: scale the loss so small gradients do not flush to zero
            scaler.scale(loss).backward()
            if clip > 0 or getattr(self, "_measure_grads", None):
                scaler.unscale_(opt)
                self._grad_norm_hook()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(stage.params, clip)
            scaler.step(opt)
            scaler.update()
        self.weights_version += 1
        return terms

    def _grad_norm_hook(self) -> None:
        """On a batch the loop marked (each epoch's last), keep the per-layer gradient norms before
        clipping, as a device tensor (no host sync here; `GradNormProbe.record` reads it at epoch end)."""
        params = getattr(self, "_measure_grads", None)
        if params:
            self._grad_norms = self._grad_probe.measure(params)
            self._measure_grads = None

    def _nan_end(self, stage: str, epoch: int, bad: tuple[int, float], epochs_done: int,
                 good_state: dict) -> Iterator[Event]:
        """A non-finite training loss was seen (batch `bad[0]` of the epoch, 0-based, loss `bad[1]`):
        restore the last finite epoch and finish."""
        self._restore(good_state)
        batch, loss = bad
        msg = (f"The loss became {loss} in {stage} epoch {epoch}, batch {batch + 1}; "
               f"restored the weights of the last finite epoch ({epochs_done} done). "
               "Try a lower learning rate or a smaller beta/penalty weight.")
        yield from self._diagnosed(self.doctor.check_nan(stage, epoch, batch + 1, loss))
        yield Finished("nan", msg, epochs_done)

    def _restore(self, good_state: dict) -> None:
        """Back to the weights after the last completed epoch, and to their version (`val_codes`)."""
        self.model.load_state_dict(good_state)
        self.weights_version = self._good_version

    def _stop_message(self, good_state: dict, epochs_done: int, batches_into_epoch: int) -> str:
        """Stop in the middle of an epoch keeps the weights after the last completed epoch (restored
        here), so the weights, the history and every panel name the same epoch. Only a stop during the
        very first epoch keeps the current, partly trained weights (there is no completed epoch)."""
        if batches_into_epoch == 0:
            if epochs_done == 0:
                return "Stopped before the first batch; the model is untrained."
            return f"Stopped after epoch {epochs_done}; keeping the weights after epoch {epochs_done}."
        if epochs_done == 0:
            return "Stopped during epoch 1; keeping the current weights (epoch 1 was not finished)."
        self._restore(good_state)
        return f"Stopped during epoch {epochs_done + 1}; keeping the weights after epoch {epochs_done}."

    def _diagnosed(self, findings: list[Diagnosis]) -> Iterator[Diagnosis]:
        for d in findings:
            self.diagnoses.append(d.to_dict())
            yield d

    @torch.no_grad()
    def evaluate_terms(self, fn=None, batch_size: int = 1024) -> dict[str, float]:
        """Loss terms on the validation split (eval mode, fixed noise).

        A VAE validated on clean inputs also keeps the per-dimension KL of this pass, so that the
        epoch's `kl_per_dim` record needs no second pass over the split (`_kl_per_dim_record`)."""
        fn = fn or self._full_step
        m = self.model
        was_training = m.training
        m.eval()
        gen = torch.Generator(device=self.device).manual_seed(self.train_config.seed + 2)
        meter = _LossMeter()
        n = int(self.u8_val.shape[0])
        clean = not self.noise.active and fn == self._full_step
        keep_kl = self.model_config.kind == "vae" and clean
        kl_total = torch.zeros(self.model_config.latent, dtype=torch.float64, device=self.device) if keep_kl else None
        # codes as the map encodes them: clean images, full precision
        keep_codes = min(self.keep_val_codes, n) if clean and self._amp_dtype is None else 0
        codes: list[torch.Tensor] = []
        for i in range(0, n, batch_size):
            target = self.val_rows(slice(i, i + batch_size))  # a streamed set reads these from its cache
            if self._channels_last:
                target = target.contiguous(memory_format=torch.channels_last)
            kl_dims: list[torch.Tensor] = []
            kw: dict = {"kl_dims_out": kl_dims} if keep_kl else {}
            if i < keep_codes:
                kw["codes_out"] = codes
            with self._autocast():
                terms = fn(self.noise.apply(target, gen), target, **kw)
            if keep_kl:
                kl_total += kl_dims[0].double() * target.shape[0]
            meter.add(terms, target.shape[0])
        meter.flush()  # one host sync for the whole split
        m.train(was_training)
        self._val_kl_total = (kl_total, n) if keep_kl and n else None
        self._val_codes = (self.weights_version, torch.cat(codes)[:keep_codes].float().cpu()) if keep_codes else None
        return meter.means()

    def val_codes(self, n: int) -> torch.Tensor | None:
        """The codes (n, latent) of the first `n` validation images under the current weights, when the
        last validation pass kept them (`keep_val_codes`); else None."""
        kept = self._val_codes
        if kept is None or kept[0] != self.weights_version or kept[1].shape[0] < n:
            return None
        return kept[1][:n]

    @torch.no_grad()
    def _kl_per_dim_record(self, batch_size: int = 1024) -> dict[str, list[float]]:
        """A VAE's history record gets `kl_per_dim`: the mean KL of each latent dimension on the
        validation split, in nats (eval mode). Other kinds get nothing. Taken from the epoch's
        validation pass when it ran on clean inputs, else from a pass of the encoder."""
        m = self.model
        if self.model_config.kind != "vae" or self.u8_val.shape[0] == 0:
            return {}
        kept, self._val_kl_total = self._val_kl_total, None
        if kept is not None:
            total, n = kept
        else:
            was = m.training
            m.eval()
            total = torch.zeros(self.model_config.latent, dtype=torch.float64, device=self.device)
            n = int(self.u8_val.shape[0])
            for i in range(0, n, batch_size):
                code = m.encode(self.val_rows(slice(i, i + batch_size)))
                total += kl_normal(code.mu, code.logvar, per_dim=True).double() * code.mu.shape[0]
            m.train(was)
        return {"kl_per_dim": [round(float(v), 6) for v in (total / n).cpu()]}

    def val_images(self) -> np.ndarray:
        """The validation images as float32 numpy in [0, 1]."""
        return self.x_val.cpu().numpy()


def fit(model_config: ModelConfig, train_config: TrainConfig, data: ImageSet,
        callback: Callable[[Event], None] | None = None, control: Control | None = None) -> tuple[Trainer, Finished]:
    """Train to the end (or a stop), calling `callback` with each event. Returns the trainer and its last event."""
    trainer = Trainer(model_config, train_config, data, control=control or Control())
    last: Finished | None = None
    for event in trainer.run():
        if callback is not None:
            callback(event)
        if isinstance(event, Finished):
            last = event
    assert last is not None
    return trainer, last
