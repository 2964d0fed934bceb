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

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Union

import numpy as np
import torch

from .config import ConfigError, ModelConfig, TrainConfig
from .datasets import ImageSet, split_indices
from .doctor import Diagnosis, Doctor
from .losses import loss_terms, reconstruction
from .models import Autoencoder
from .noise import parse_noise


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


#: Optimizer steps that the default settings aim for. Measured on the held-out sets of
#: benchmarks/robustness.py: fewer steps leave small folders under-trained (the model is still
#: improving fast when training ends), however many epochs that takes.
STEP_BUDGET = 4000


def suggest_epochs(n_train: int, batch_size: int, steps: int = STEP_BUDGET, least: int = 5, most: int = 2000) -> int:
    """Epochs that give about `steps` optimizer steps on `n_train` images (within [least, most])."""
    per_epoch = max(1, math.ceil(max(n_train, 1) / max(batch_size, 1)))
    return int(min(most, max(least, math.ceil(steps / per_epoch))))


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


@dataclass
class Trainer:
    model_config: ModelConfig
    train_config: TrainConfig
    data: ImageSet
    control: Control = field(default_factory=Control)
    model: Autoencoder | None = None  # pass one to continue training it
    val_data: ImageSet | None = None  # validate on this set and train on all of `data` (else a seeded split)

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

        check_training_fits(self.model_config, cfg.batch_size,
                            self.data.n + (self.val_data.n if self.val_data is not None else 0), self.device)
        self.noise = parse_noise(cfg.noise)
        torch.manual_seed(cfg.seed)
        fresh = self.model is None
        if fresh:
            self.model = Autoencoder(self.model_config)
        self.model.to(self.device)
        x = torch.from_numpy(self.data.images)
        if self.val_data is None:
            self.train_idx, self.val_idx = split_indices(self.data.n, cfg.val_fraction, cfg.seed)
            self.x_train = x[torch.from_numpy(self.train_idx)].to(self.device).float().div_(255.0)
            self.x_val = x[torch.from_numpy(self.val_idx)].to(self.device).float().div_(255.0)
            self.val_set = self.data.subset(self.val_idx)
        else:
            if tuple(self.val_data.shape) != tuple(self.data.shape):
                raise ConfigError(f"validation images have shape {self.val_data.shape}, training images {self.data.shape}")
            self.train_idx, self.val_idx = np.arange(self.data.n), np.arange(self.val_data.n)
            self.val_set = self.val_data
            self.x_train = x.to(self.device).float().div_(255.0)
            self.x_val = torch.from_numpy(self.val_data.images).to(self.device).float().div_(255.0)
        if fresh:
            self.model.init_data_stats(self.x_train)  # standardised inputs, output starts at the mean image (models.py)
        self.history: list[dict[str, float | str | int]] = []
        self.doctor = Doctor(self.model_config, cfg, self.x_train.shape[0], math.ceil(self.x_train.shape[0] / cfg.batch_size),
                             self.x_train, self.x_val)
        self.diagnoses: list[dict] = []  # the doctor's findings so far, as {code, epoch, message, remedy}
        self._shuffle = torch.Generator().manual_seed(cfg.seed)
        self._noise_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)

    # -- stages --
    def _stages(self) -> list[_Stage]:
        cfg, m = self.train_config, self.model
        full = _Stage("train", cfg.epochs, list(m.parameters()), self._warm_step, self._full_step)
        if not self.model_config.stacked or cfg.pretrain_epochs == 0:
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

    def _full_step(self, x_in: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return loss_terms(self.model, x_in, target)

    def _warm_step(self, x_in: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """A training step whose VAE KL weight follows the warm-up ramp (validation uses the full beta)."""
        return loss_terms(self.model, x_in, target, kl_weight=self._kl_weight)

    def _update_kl_weight(self, step: int, total_steps: int) -> None:
        """KL warm-up: beta ramps linearly from 0 over the first `kl_warmup` of the run's steps.

        Without it a VAE that starts at the mean image (see models.py) has nothing to gain from
        its code yet and the KL term pushes every dimension onto the prior before the decoder
        learns to use it: posterior collapse, measured on sparse strokes and on a 200-image folder.
        """
        beta, warm = self.model_config.beta, self.train_config.kl_warmup * total_steps
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
        n_train, bs = self.x_train.shape[0], cfg.batch_size
        batches = math.ceil(n_train / bs)
        stages = self._stages()
        total_steps = sum(s.epochs for s in stages) * batches
        step, images, busy = 0, 0, 0.0
        good_state = copy.deepcopy(m.state_dict())
        epochs_done = 0
        doctor, final_history = self.doctor, []
        yield from self._diagnosed(doctor.check_data(self.data))
        for si, stage in enumerate(stages):
            final = si == len(stages) - 1  # the doctor judges the fit of the final stage only
            stage_steps = 0
            yield StageStarted(stage.name, si, len(stages), stage.epochs)
            opt = torch.optim.Adam(stage.params, lr=cfg.lr)
            for epoch in range(1, stage.epochs + 1):
                m.train()
                t_epoch = time.perf_counter()
                epoch_busy = 0.0
                sums: dict[str, float] = {}
                seen = 0
                order = torch.randperm(n_train, generator=self._shuffle).to(self.device)
                for b in range(batches):
                    ctl.wait_while_paused()
                    if ctl.stopped:
                        yield Finished("stopped", self._stop_message(m, good_state, epochs_done, b), epochs_done)
                        return
                    t0 = time.perf_counter()
                    target = self.x_train[order[b * bs:(b + 1) * bs]]
                    self._update_kl_weight(step, total_steps)
                    x_in = self.noise.apply(target, self._noise_gen)
                    terms = stage.step_fn(x_in, target)
                    loss = terms["total"]
                    if not torch.isfinite(loss):
                        m.load_state_dict(good_state)
                        msg = (f"The loss became {loss.item()} in {stage.name} epoch {epoch}, batch {b + 1}; "
                               f"restored the weights of the last finite epoch ({epochs_done} done). "
                               "Try a lower learning rate or a smaller beta/penalty weight.")
                        yield from self._diagnosed(doctor.check_nan(stage.name, epoch, b + 1, loss.item()))
                        yield Finished("nan", msg, epochs_done)
                        return
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(stage.params, cfg.grad_clip)
                    opt.step()
                    values = {k: float(v.detach()) for k, v in terms.items()}
                    dt = time.perf_counter() - t0
                    busy += dt
                    epoch_busy += dt
                    step += 1
                    if final:
                        stage_steps += 1
                        doctor.record_batch(values["total"])
                    images += target.shape[0]
                    seen += target.shape[0]
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v * target.shape[0]
                    ips = images / max(busy, 1e-9)
                    eta = (total_steps - step) * busy / step
                    yield BatchEnd(stage.name, epoch, stage.epochs, b + 1, batches, step, total_steps, values, ips, eta)
                train_terms = {k: v / max(seen, 1) for k, v in sums.items()}
                val_terms = self.evaluate_terms(stage.eval_fn) if stage.eval_fn else {}
                if val_terms and not math.isfinite(val_terms.get("total", 0.0)):
                    m.load_state_dict(good_state)
                    yield from self._diagnosed(doctor.check_nan(stage.name, epoch, None, val_terms.get("total")))
                    yield Finished("nan", f"The validation loss became non-finite in epoch {epoch}; "
                                          "restored the weights of the last finite epoch.", epochs_done)
                    return
                good_state = copy.deepcopy(m.state_dict())
                epochs_done += 1
                seconds = time.perf_counter() - t_epoch
                ips = seen / max(epoch_busy, 1e-9)
                eta = (total_steps - step) * busy / max(step, 1)
                self.history.append({
                    "stage": stage.name, "epoch": epoch, "seconds": round(seconds, 4), "images_per_sec": round(ips, 1),
                    **{f"train_{k}": v for k, v in train_terms.items()},
                    **{f"val_{k}": v for k, v in val_terms.items()},
                })
                yield EpochEnd(stage.name, epoch, stage.epochs, train_terms, val_terms, ips, eta, seconds, step, total_steps)
                if final:
                    final_history.append(self.history[-1])
                    yield from self._diagnosed(doctor.check_epoch(m, epoch, stage.epochs, stage_steps))
            if final:
                yield from self._diagnosed(doctor.check_end(final_history, stage_steps, stage.epochs))
        m.eval()
        yield Finished("completed", f"Finished {epochs_done} epoch(s).", epochs_done)

    @staticmethod
    def _stop_message(m: Autoencoder, good_state: dict, epochs_done: int, batches_into_epoch: int) -> str:
        """Stop in the middle of an epoch keeps the weights after the last completed epoch (restored
        here), so the weights, the history and every panel name the same epoch. Only a stop during the
        very first epoch keeps the current, partly trained weights (there is no completed epoch)."""
        if batches_into_epoch == 0:
            if epochs_done == 0:
                return "Stopped before the first batch; the model is untrained."
            return f"Stopped after epoch {epochs_done}; keeping the weights after epoch {epochs_done}."
        if epochs_done == 0:
            return "Stopped during epoch 1; keeping the current weights (epoch 1 was not finished)."
        m.load_state_dict(good_state)
        return f"Stopped during epoch {epochs_done + 1}; keeping the weights after epoch {epochs_done}."

    def _diagnosed(self, findings: list[Diagnosis]) -> Iterator[Diagnosis]:
        for d in findings:
            self.diagnoses.append(d.to_dict())
            yield d

    @torch.no_grad()
    def evaluate_terms(self, fn=None, batch_size: int = 1024) -> dict[str, float]:
        """Loss terms on the validation split (eval mode, fixed noise)."""
        fn = fn or self._full_step
        m = self.model
        was_training = m.training
        m.eval()
        gen = torch.Generator(device=self.device).manual_seed(self.train_config.seed + 2)
        sums: dict[str, float] = {}
        n = self.x_val.shape[0]
        for i in range(0, n, batch_size):
            target = self.x_val[i:i + batch_size]
            terms = fn(self.noise.apply(target, gen), target)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * target.shape[0]
        m.train(was_training)
        return {k: v / n for k, v in sums.items()}

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
