"""Training off the GUI thread.

`TrainingWorker` lives on a QThread and drives the core `Trainer` generator. It emits plain
Python / numpy data only, throttled so the GUI never drowns: batch progress at most ~10 times a
second, an image-grid preview every couple of seconds, and at each epoch end a `ModelSnapshot`
(an eval-mode CPU copy of the weights plus the validation codes) that the GUI may decode with
while training goes on.

`TrainingController` is the GUI-side object panels talk to: `start()`, `pause()`, `resume()`,
`stop()`, `shutdown()`; it re-emits the worker's signals from GUI-thread slots.
"""
from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ..core.config import ModelConfig, TrainConfig
from ..core.datasets import ImageSet
from ..core.errors import user_message
from ..core.evaluation import encode_images
from .priority import all_cores, lower_this_thread, training_threads
from ..core.labs.selection import pick_spread
from ..core.models import Autoencoder
from ..core.noise import parse_noise
from ..core.trained import TrainedModel, copy_optimizer_state, from_trainer, resume_trainer
from ..core.training import BatchEnd, Control, Diagnosis, EpochEnd, Finished, StageStarted, Trainer

PROGRESS_INTERVAL_S = 0.25  # 4 updates a second: live enough, and the GUI thread stays mostly idle
PREVIEW_INTERVAL_S = 2.0
MAX_MAP_POINTS = 10_000
KEPT_STAGE = "kept"  # Preview.stage of the weights kept when training ends early (stop, NaN)
PREVIEW_SEED = 12345  # the noise seed of the image grid's corrupted inputs (live previews and snapshots alike)


def epoch_label(epoch: int) -> str:
    """How panels name the epoch of a snapshot: "epoch 3"; 0 is a stop during the first epoch."""
    return f"epoch {epoch}" if epoch > 0 else "epoch 1 (unfinished)"


@dataclass
class Preview:
    """Rows of the image grid, float32 (n, C, H, W) in [0, 1]."""

    originals: np.ndarray
    noisy: np.ndarray | None
    outputs: np.ndarray
    epoch: int
    stage: str
    indices: np.ndarray | None = None  # validation-set index of each column (None: 0, 1, 2, ...)


@dataclass(eq=False)
class ModelSnapshot:
    """A trained model (`core.trained.TrainedModel`: weights, frozen configs, split, history, epoch)
    plus what the latent views need: the codes of its validation images. `model` is an eval-mode CPU
    module built from the value's weights, for decoding; nothing trains it."""

    trained: TrainedModel
    codes: np.ndarray  # (n, latent) validation codes (mu for VAEs)
    labels: np.ndarray | None
    images: np.ndarray  # (n, C, H, W) float32, the images the codes belong to
    class_names: list[str]
    model: Autoencoder | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = self.trained.build_model()

    # what every panel reads: the trained value's, never today's settings
    @property
    def model_config(self) -> ModelConfig:
        return self.trained.model_config

    @property
    def train_config(self) -> TrainConfig:
        return self.trained.train_config

    @property
    def epoch(self) -> int:
        return self.trained.epoch

    @property
    def history(self) -> tuple[dict, ...]:
        return self.trained.history

    @property
    def split(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self.trained.split

    @torch.no_grad()
    def reconstruct(self, originals: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(corrupted inputs or None, outputs) for a few images (n, C, H, W) in [0, 1], with the noise the
        model was trained with (seeded as the live previews are)."""
        try:
            noise = parse_noise(self.train_config.noise)
        except ValueError:
            noise = parse_noise(None)
        x = torch.from_numpy(np.ascontiguousarray(originals, dtype=np.float32))
        x_in = noise.apply(x, torch.Generator().manual_seed(PREVIEW_SEED)) if noise.active else x
        out = self.model(x_in).clamp(0, 1).numpy()
        return (x_in.numpy() if noise.active else None), out

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decode codes (n, latent) or one code (latent,) to images in [0, 1]; cheap for a few codes."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))
        out = self.model.decode(torch.from_numpy(z))
        return out.clamp(0, 1).numpy()

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        return self.model.encode(torch.from_numpy(x)).mu.numpy()


def torch_threads() -> int:
    """The threads torch trains with (the status bar shows it)."""
    return default_threads()


def default_threads() -> int:
    """Torch threads for the worker: every core, the GUI thread idles most of the time."""
    return all_cores()


@torch.no_grad()
def make_snapshot(trainer: Trainer, epoch: int, max_points: int = MAX_MAP_POINTS, *,
                  trained: TrainedModel | None = None, **value: Any) -> ModelSnapshot:
    """The trainer's model now, as a TrainedModel (built by core.trained.from_trainer with `value`'s
    data_spec / kept / parent, unless `trained` is given) plus the codes of its validation images."""
    trained = trained if trained is not None else from_trainer(trainer, epoch=epoch, **value)
    model = trained.build_model()
    n = min(len(trainer.val_idx), max_points)
    images = trainer.val_rows(slice(0, n)).cpu().numpy()
    kept = trainer.val_codes(n)  # from this epoch's validation pass, when it kept them
    codes = kept.numpy() if kept is not None else encode_images(trainer.model, images)
    labels = trainer.val_set.labels[:n] if trainer.val_set.labels is not None else None
    return ModelSnapshot(trained, codes, labels, images, list(trainer.val_set.class_names), model)


@torch.no_grad()
def snapshot_of(trained: TrainedModel, data: ImageSet, max_points: int = MAX_MAP_POINTS) -> ModelSnapshot:
    """A ModelSnapshot of a TrainedModel (an opened run) on its data set: the codes of its validation split."""
    if trained.split is None:
        raise ValueError("the model was validated on a separate set; there is no split of this data set to show")
    val_idx = trained.val_idx[:max_points]
    images = data.images[val_idx].astype(np.float32) / np.float32(255.0)
    model = trained.build_model()
    labels = data.labels[val_idx] if data.labels is not None else None
    return ModelSnapshot(trained, encode_images(model, images), labels, images, list(data.class_names), model)


class TrainingWorker(QObject):
    stageStarted = Signal(object)  # StageStarted
    progress = Signal(object)  # BatchEnd
    epochEnded = Signal(object)  # EpochEnd
    preview = Signal(object)  # Preview
    snapshot = Signal(object)  # ModelSnapshot
    finished = Signal(object)  # Finished
    diagnosis = Signal(object)  # Diagnosis: a finding of the training doctor (plain data)
    notes = Signal(object)  # list[str]: speed settings that do not apply here (Trainer.notes)
    errored = Signal(str)
    done = Signal()  # always last: the thread may quit

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, data: ImageSet,
                 preview_count: int = 8, threads: int | None = None, model: Autoencoder | None = None, *,
                 resume: TrainedModel | None = None, parent: dict | None = None, data_spec: str | None = None):
        super().__init__()
        self.model_config, self.train_config, self.data = model_config, train_config, data
        self.preview_count = preview_count
        self.threads = threads or default_threads()
        self.control = Control()
        self.initial_model = model
        self.resume = resume  # continue this trained model (its weights, optimizer state, split, history)
        # what every snapshot's TrainedModel says about where it came from
        self.value = {"data_spec": data_spec, "parent": parent if parent is not None else
                      (dict(resume.parent) if resume is not None and resume.parent else None)}
        self.trainer: Trainer | None = None
        self.gui_busy = False  # a snapshot is on its way to the GUI (TrainingController clears it)

    @Slot()
    def work(self) -> None:
        lower_this_thread()  # before torch starts this thread's compute threads: they inherit it
        try:
            with training_threads(self.threads):  # this thread's team is the only one (workers/priority.py)
                self._train()
        except Exception as e:
            message = user_message(e)
            if message is None:
                traceback.print_exc()
                message = f"Training failed: {type(e).__name__}: {e}"
            self.errored.emit(message)
        finally:
            self.done.emit()

    def _train(self) -> None:
        if self.resume is not None:
            self.trainer = resume_trainer(self.resume, self.model_config, self.train_config, self.data, self.control)
        else:
            self.trainer = Trainer(self.model_config, self.train_config, self.data, control=self.control,
                                   model=self.initial_model)
        self.trainer.keep_val_codes = MAX_MAP_POINTS  # the map's codes come with each validation pass
        notes = list(self.trainer.notes)
        if self.trainer.augment_line and self.train_config.augment == "auto":  # say what auto chose
            notes.append(f"{self.trainer.augment_line}; Augmentation under More settings turns them off")
        elif self.trainer.augment_skipped:
            notes.append(f"{self.trainer.augment_skipped}; Augmentation under More settings turns them on")
        if notes:
            self.notes.emit(notes)
        self._loop(self.trainer)

    def _loop(self, trainer: Trainer) -> None:
        last_progress = last_preview = 0.0
        epoch = getattr(trainer, "epoch_offset", 0)  # a continued model's epochs are numbered on
        last_optimizer: dict | None = None  # the optimizer state after the last completed epoch
        last_stage = ("train", epoch)
        self.gui_busy = False
        self.preview.emit(self._preview(trainer, 0, "start"))
        for event in trainer.run():
            now = time.perf_counter()
            if isinstance(event, BatchEnd):
                # loss values come at the engine's sync points only (at most SYNC_EVERY_S apart)
                if event.terms and (now - last_progress >= PROGRESS_INTERVAL_S or event.batch == event.batches):
                    last_progress = now
                    self.progress.emit(event)
                if now - last_preview >= PREVIEW_INTERVAL_S:
                    last_preview = now
                    self.preview.emit(self._preview(trainer, event.epoch, event.stage))
            elif isinstance(event, EpochEnd):
                epoch += 1
                self.epochEnded.emit(event)
                final_stage = event.stage in ("train", "fine-tune")
                if final_stage and trainer.optimizer is not None:
                    last_optimizer = copy_optimizer_state(trainer.optimizer.state_dict())
                # A new model for the panels, unless they are still busy with the previous one (epochs of a
                # tiny data set take milliseconds; queued snapshots would delay Stop's answer by seconds).
                # The last epoch's snapshot waits for Finished: its value then holds the doctor's final findings.
                last_stage = (event.stage, event.epoch)
                if not (final_stage and (self.gui_busy or event.epoch >= event.epochs)):
                    self.preview.emit(self._preview(trainer, event.epoch, event.stage))
                    last_preview = time.perf_counter()
                    if final_stage and event.epoch < event.epochs:
                        self.gui_busy = True  # cleared by TrainingController once the GUI has taken it
                        self.snapshot.emit(make_snapshot(trainer, epoch, **self.value))
            elif isinstance(event, StageStarted):
                self.stageStarted.emit(event)
            elif isinstance(event, Diagnosis):
                self.diagnosis.emit(copy.deepcopy(event))
            elif isinstance(event, Finished):
                if event.reason == "completed" and epoch > 0:
                    self.preview.emit(self._preview(trainer, last_stage[1], last_stage[0]))  # the final model
                    self.snapshot.emit(make_snapshot(trainer, epoch, **self.value))
                else:
                    # the weights kept (after a stop: those of the last completed epoch, see Trainer):
                    # the grid's last preview and the snapshot show the same epoch
                    self.preview.emit(self._preview(trainer, epoch, KEPT_STAGE))
                    kept = "" if event.reason == "completed" else (
                        f"the weights after epoch {epoch}" if epoch > 0 else "the current weights (epoch 1 unfinished)")
                    # weights restored to the last completed epoch go with that epoch's optimizer state
                    opt = None
                    if event.reason != "completed" and epoch > 0:
                        opt = last_optimizer or (self.resume.optimizer if self.resume else None)
                    self.snapshot.emit(make_snapshot(trainer, epoch, kept=kept, optimizer=opt, **self.value))
                self.finished.emit(event)

    @torch.no_grad()
    def _preview(self, trainer: Trainer, epoch: int, stage: str) -> Preview:
        m = trainer.model
        was = m.training
        m.eval()
        labels = trainer.val_set.labels
        idx = pick_spread(None if labels is None else labels[:MAX_MAP_POINTS], self.preview_count,
                          total=min(len(trainer.val_idx), MAX_MAP_POINTS))  # a spread of classes, not the first few
        clean = trainer.val_rows(torch.from_numpy(idx).to(trainer.device))
        gen = torch.Generator(device=clean.device).manual_seed(12345)
        noisy = trainer.noise.apply(clean, gen) if trainer.noise.active else None
        out = m(noisy if noisy is not None else clean).clamp(0, 1)
        m.train(was)
        return Preview(clean.cpu().numpy(), None if noisy is None else noisy.cpu().numpy(), out.cpu().numpy(), epoch, stage,
                       idx)


class TrainingController(QObject):
    """GUI-thread owner of one training run at a time."""

    started = Signal()
    stageStarted = Signal(object)
    progress = Signal(object)
    epochEnded = Signal(object)
    preview = Signal(object)
    snapshot = Signal(object)
    finished = Signal(object)
    diagnosis = Signal(object)  # Diagnosis
    notes = Signal(object)  # list[str]: settings the run ignores here, one sentence each
    errored = Signal(str)
    runningChanged = Signal(bool)
    pausedChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self.last_trainer: Trainer | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def paused(self) -> bool:
        return self._worker is not None and self._worker.control.paused

    def start(self, model_config: ModelConfig, train_config: TrainConfig, data: ImageSet,
              threads: int | None = None, model: Autoencoder | None = None, *, resume: TrainedModel | None = None,
              parent: dict | None = None, data_spec: str | None = None) -> None:
        """Train from scratch, or continue `resume` (a fork when `parent` names the run it branches from)."""
        if self.running:
            raise RuntimeError("a training run is already in progress")
        worker = TrainingWorker(model_config, train_config, data, threads=threads, model=model, resume=resume,
                                parent=parent, data_spec=data_spec)
        thread = QThread()
        thread.setObjectName("aestudio-training")
        worker.moveToThread(thread)
        thread.started.connect(worker.work)
        worker.stageStarted.connect(self._on_stage)
        worker.progress.connect(self._on_progress)
        worker.epochEnded.connect(self._on_epoch)
        worker.preview.connect(self._on_preview)
        worker.snapshot.connect(self._on_snapshot)
        worker.finished.connect(self._on_finished)
        worker.diagnosis.connect(self._on_diagnosis)
        worker.notes.connect(self._on_notes)
        worker.errored.connect(self._on_errored)
        worker.done.connect(thread.quit, Qt.DirectConnection)  # QThread.quit is thread-safe
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        thread.start()
        self.runningChanged.emit(True)
        self.started.emit()

    def pause(self) -> None:
        if self._worker is not None:
            self._worker.control.pause()
            self.pausedChanged.emit(True)

    def resume(self) -> None:
        if self._worker is not None:
            self._worker.control.resume()
            self.pausedChanged.emit(False)

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.control.stop()

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop and wait for the thread (window closing). True when it ended in time."""
        if self._thread is None:
            return True
        self.stop()
        self._thread.quit()  # leaves the thread's event loop as soon as the worker returns
        ok = self._thread.wait(timeout_ms)
        if ok:
            self._on_thread_finished()
        return ok

    # -- GUI-thread relays --
    @Slot(object)
    def _on_stage(self, e) -> None:
        self.stageStarted.emit(e)

    @Slot(object)
    def _on_progress(self, e) -> None:
        self.progress.emit(e)

    @Slot(object)
    def _on_epoch(self, e) -> None:
        self.epochEnded.emit(e)

    @Slot(object)
    def _on_preview(self, p) -> None:
        self.preview.emit(p)

    @Slot(object)
    def _on_snapshot(self, s) -> None:
        self.snapshot.emit(s)
        if self._worker is not None:
            self._worker.gui_busy = False  # every panel has drawn it: the worker may send the next one

    @Slot(object)
    def _on_finished(self, e) -> None:
        self.finished.emit(e)

    @Slot(object)
    def _on_diagnosis(self, d) -> None:
        self.diagnosis.emit(d)

    @Slot(object)
    def _on_notes(self, notes) -> None:
        self.notes.emit(notes)

    @Slot(str)
    def _on_errored(self, message: str) -> None:
        self.errored.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None:
            return
        if self._worker is not None:
            self.last_trainer = self._worker.trainer
            self._worker.deleteLater()
        self._thread.deleteLater()
        self._thread, self._worker = None, None
        self.pausedChanged.emit(False)
        self.runningChanged.emit(False)
