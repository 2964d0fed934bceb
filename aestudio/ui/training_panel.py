"""The "Training" panel: how to train, the Train / Pause / Stop buttons and the progress bar.

Writes `state.train_config` on every edit; reads the model's problems from the state to say why
Train is disabled; shows the controller's progress (stage, epoch, batch, images/s, ETA) and how
the last run ended.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.config import TrainConfig
from ..core.noise import NoiseError, parse_noise
from ..core.training import available_devices
from ..workers.training import epoch_label
from . import style
from .diagnosis_panel import DiagnosisPanel
from .state import StudioState

NOISE_ITEMS = [
    ("none", "None"),
    ("gaussian", "Gaussian"),
    ("saltpepper", "Salt and pepper"),
    ("mask", "Masking"),
]
DEVICE_LABELS = {"auto": "Auto (best available)", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}

TIPS = {
    "device": ("Where the network trains. Only devices present on this machine are listed; Auto picks a GPU "
               "when there is one."),
    "epochs": "Passes over the training images. More epochs fit the data better, until the validation loss stops falling.",
    "batch_size": ("Images per gradient step. Larger batches give smoother, faster steps per image; smaller ones "
                   "update more often and add helpful noise."),
    "lr": ("Learning rate: the step size of the Adam optimiser. Too high and the loss jumps or becomes NaN; too "
           "low and training crawls. 1e-3 is a good start."),
    "noise": ("Corrupt the input, but score the output against the clean image: a denoising autoencoder. It "
              "must learn the structure of the images rather than copy pixels, which also lets an overcomplete "
              "code learn something useful."),
    "noise_level": ("Gaussian: standard deviation of the added noise (pixels are in [0, 1]). Salt and pepper / "
                    "masking: fraction of pixels set to black or white / to zero."),
    "val_fraction": ("Share of the images held out for validation. They are never trained on, so their loss shows "
                     "how well the model generalises, and the latent map shows their codes."),
    "seed": "Random seed for the split, the initial weights, shuffling and noise: the same seed repeats a run.",
    "pretrain_epochs": ("Stacked models only: epochs spent pretraining each encoder/decoder pair on its own before "
                        "the end-to-end fine-tuning."),
    "grad_clip": "Rescale gradients whose norm exceeds this value (0: off); steadies training with high learning rates.",
    "train": "Train a new model with these settings (the plots update as it learns).",
    "pause": "Pause training after the current batch; press again to resume.",
    "stop": "Stop training after the current batch; the model so far stays available for exploring and saving.",
    "progress": "Stage, epoch, batch, throughput in images per second and the estimated time left.",
}


class TrainingPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Training")
        self.setToolTip("How to train the model, and the controls to start, pause and stop.")
        self._loading = False
        self._last_finish = ""
        self._progress_line = ""
        self._rate_line = ""
        self._build()
        self._show(state.train_config)
        ctl = state.training
        ctl.started.connect(self._on_started)
        ctl.runningChanged.connect(self._on_running)
        ctl.pausedChanged.connect(self._on_paused)
        ctl.stageStarted.connect(self._on_stage)
        ctl.progress.connect(self._on_progress)
        ctl.finished.connect(self._on_finished)
        ctl.errored.connect(self._on_errored)
        state.trainConfigChanged.connect(self._on_state_config)
        state.modelConfigChanged.connect(self._update_buttons)
        state.datasetChanged.connect(self._update_buttons)
        self._update_buttons()

    # ---- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        style.tune_layout(lay, style.MARGIN, 8)
        form = style.tune_form(QFormLayout())
        self.form = form

        self.device = style.NoWheelComboBox()
        for name in ["auto", *available_devices()]:
            self.device.addItem(DEVICE_LABELS.get(name, name), name)
        self.device.setToolTip(TIPS["device"])
        self.device.setAccessibleName("Device")

        self.epochs = self._spin(1, 100000, TIPS["epochs"], "Epochs")
        self.batch_size = self._spin(1, 65536, TIPS["batch_size"], "Batch size")
        self.lr = style.FloatSpin(1e-7, 10.0, log=True)
        self.lr.setToolTip(TIPS["lr"])
        self.lr.setAccessibleName("Learning rate")
        self.noise = style.NoWheelComboBox()
        for value, label in NOISE_ITEMS:
            self.noise.addItem(label, value)
        self.noise.setToolTip(TIPS["noise"])
        self.noise.setAccessibleName("Noise")
        self.noise_level = style.FloatSpin(0.0, 10.0, 0.05)
        self.noise_level.setToolTip(TIPS["noise_level"])
        self.noise_level.setAccessibleName("Noise level")
        self.noise_level.set_exact(0.3)
        noise_row = QHBoxLayout()
        noise_row.setSpacing(4)
        noise_row.addWidget(self.noise, 3)
        noise_row.addWidget(self.noise_level, 2)
        self.val_fraction = style.FloatSpin(0.01, 0.9, 0.05)
        self.val_fraction.setToolTip(TIPS["val_fraction"])
        self.val_fraction.setAccessibleName("Validation fraction")
        self.seed = self._spin(0, 2**31 - 1, TIPS["seed"], "Seed")
        self.pretrain_epochs = self._spin(0, 10000, TIPS["pretrain_epochs"], "Pretraining epochs")
        self.grad_clip = style.FloatSpin(0.0, 1e6, 0.5)
        self.grad_clip.setToolTip(TIPS["grad_clip"])
        self.grad_clip.setAccessibleName("Gradient clipping")

        pair = QHBoxLayout()
        pair.setSpacing(6)
        pair.addWidget(self.epochs, 1)
        bl = QLabel("Batch")
        bl.setToolTip(TIPS["batch_size"])
        pair.addWidget(bl)
        pair.addWidget(self.batch_size, 1)
        form.addRow("Epochs", pair)
        pair2 = QHBoxLayout()
        pair2.setSpacing(6)
        pair2.addWidget(self.val_fraction, 1)
        sl = QLabel("Seed")
        sl.setToolTip(TIPS["seed"])
        pair2.addWidget(sl)
        pair2.addWidget(self.seed, 1)
        form.addRow("Learning rate", self.lr)
        form.addRow("Noise", noise_row)
        form.addRow("Validation", pair2)
        form.addRow("Pretrain epochs", self.pretrain_epochs)
        form.addRow("Grad clip", self.grad_clip)
        form.addRow("Device", self.device)
        lay.addLayout(form)

        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.train_btn = QPushButton(style.icon("fa5s.play", self, style.OK), "Train")
        self.train_btn.setAccessibleName("Train")
        self.train_btn.setToolTip(TIPS["train"])
        self.train_btn.setDefault(True)
        self.pause_btn = QPushButton(style.icon("fa5s.pause", self), "Pause")
        self.pause_btn.setAccessibleName("Pause")
        self.pause_btn.setAccessibleDescription("Pause training")
        self.pause_btn.setToolTip(TIPS["pause"])
        self.stop_btn = QPushButton(style.icon("fa5s.stop", self, style.ERROR), "Stop")
        self.stop_btn.setAccessibleName("Stop")
        self.stop_btn.setToolTip(TIPS["stop"])
        for b in (self.train_btn, self.pause_btn, self.stop_btn):
            b.setMinimumHeight(30)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            buttons.addWidget(b)
        self.train_btn.setMinimumWidth(90)
        lay.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Progress")
        self.progress.setToolTip(TIPS["progress"])
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        font = self.progress.font()
        font.setPointSizeF(font.pointSizeF() * 0.92)
        self.progress.setFont(font)
        self.progress.setMinimumHeight(2 * self.progress.fontMetrics().height() + 8)  # two lines of text
        lay.addWidget(self.progress)

        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Training status")
        self.status.setToolTip("Why Train is unavailable, or how the last run ended.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        self.diagnosis = DiagnosisPanel(self.state)  # the training doctor's findings for this run
        lay.addWidget(self.diagnosis, 1)

        for s in (self.epochs, self.batch_size, self.seed, self.pretrain_epochs):
            s.valueChanged.connect(self._edited)
        for s in (self.lr, self.noise_level, self.val_fraction, self.grad_clip):
            s.valueChanged.connect(self._edited)
        self.device.currentIndexChanged.connect(self._edited)
        self.noise.currentIndexChanged.connect(self._edited)
        self.train_btn.clicked.connect(self._train)
        self.pause_btn.clicked.connect(self._pause_resume)
        self.stop_btn.clicked.connect(self._stop)

    def _spin(self, lo: int, hi: int, tip: str, name: str) -> QSpinBox:
        s = style.NoWheelSpinBox()
        s.setRange(lo, hi)
        s.setToolTip(tip)
        s.setAccessibleName(name)
        s.setKeyboardTracking(False)
        s.setGroupSeparatorShown(False)
        return s

    # ---- config <-> widgets ------------------------------------------------------------------
    def config(self) -> TrainConfig:
        kind = self.noise.currentData()
        level = self.noise_level.exact()
        if kind == "none":
            noise = "none"
        elif isinstance(kind, str) and kind.startswith("raw:"):
            noise = kind[4:]
        else:
            noise = f"{kind}:{level!r}"  # repr: the shortest text that reads back as the same float
        return TrainConfig(
            epochs=int(self.epochs.value()),
            batch_size=int(self.batch_size.value()),
            lr=self.lr.exact(),
            noise=noise,
            val_fraction=self.val_fraction.exact(),
            seed=int(self.seed.value()),
            device=self.device.currentData(),
            pretrain_epochs=int(self.pretrain_epochs.value()),
            grad_clip=self.grad_clip.exact(),
        )

    def set_config(self, cfg: TrainConfig) -> None:
        self._show(cfg)
        self.state.set_train_config(self.config())

    def _show(self, cfg: TrainConfig) -> None:
        self._loading = True
        try:
            self.epochs.setValue(int(cfg.epochs))
            self.batch_size.setValue(int(cfg.batch_size))
            self.lr.set_exact(cfg.lr)
            try:
                n = parse_noise(cfg.noise)
                i = self.noise.findData(n.kind)
                self.noise.setCurrentIndex(max(i, 0))
                if n.kind != "none":
                    self.noise_level.set_exact(n.level)
            except NoiseError:  # keep it as typed; problems() reports it
                self.noise.addItem(f"{cfg.noise} (invalid)", f"raw:{cfg.noise}")
                self.noise.setCurrentIndex(self.noise.count() - 1)
            self.val_fraction.set_exact(cfg.val_fraction)
            self.seed.setValue(int(cfg.seed))
            i = self.device.findData(cfg.device)
            # a device this machine lacks (e.g. from another computer's run) shows as auto
            self.device.setCurrentIndex(max(i, 0))
            self.pretrain_epochs.setValue(int(cfg.pretrain_epochs))
            self.grad_clip.set_exact(cfg.grad_clip)
        finally:
            self._loading = False
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        self.noise_level.setEnabled(self.noise.currentData() not in ("none",))
        self.form.setRowVisible(self.pretrain_epochs, bool(self.state.model_config.stacked))

    @Slot()
    def _edited(self, *_) -> None:
        if self._loading:
            return
        self._refresh_rows()
        self.state.set_train_config(self.config())

    @Slot(object)
    def _on_state_config(self, cfg: TrainConfig) -> None:
        if cfg != self.config():
            self._show(cfg)
            if self.config() != cfg:  # normalised (e.g. a device this machine lacks became auto)
                self.state.set_train_config(self.config())
                return
        self._update_buttons()

    # ---- buttons ---------------------------------------------------------------------------
    def blockers(self) -> list[str]:
        """Why Train is unavailable right now (empty when it can start)."""
        if self.state.training.running:
            return ["Training is running."]
        if self.state.dataset is None:
            return ["Load a data set first."]
        out = [f"Model: {p}" for p in self.state.model_config.problems()]
        out += [f"Training: {p}" for p in self.state.train_config.problems()]
        if not out and tuple(self.state.model_config.input_shape) != tuple(self.state.dataset.shape):
            out.append("The model's input shape does not match the data set.")
        return out

    @Slot()
    def _update_buttons(self, *_) -> None:
        self._refresh_rows()
        running = self.state.training.running
        blockers = self.blockers()
        self.train_btn.setEnabled(not blockers)
        self.pause_btn.setEnabled(running)
        self.stop_btn.setEnabled(running)
        if running:
            return
        if blockers:
            self.train_btn.setToolTip(TIPS["train"] + "\n\nUnavailable: " + " ".join(blockers))
            text = "Cannot train yet: " + blockers[0][0].lower() + blockers[0][1:]
            if len(blockers) > 1:
                text += f" (+{len(blockers) - 1} more)"
            self._set_status(text, style.error_color())
        else:
            self.train_btn.setToolTip(TIPS["train"])
            if self._last_finish:
                self._set_status(*self._last_finish_style())
            else:
                self._set_status("Ready to train.", None)

    def _set_status(self, text: str, color: str | None) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"QLabel {{ color: {color}; }}" if color else style.muted_css(self))

    def _last_finish_style(self) -> tuple[str, str | None]:
        kind, text = self._last_finish
        color = {"completed": style.OK, "stopped": None, "nan": style.WARN, "error": style.error_color()}.get(kind)
        return text, color

    @Slot()
    def _train(self) -> None:
        self.state.set_train_config(self.config())
        if self.blockers():
            self._update_buttons()
            return
        self._last_finish = ""
        self.state.start_training()

    @Slot()
    def _pause_resume(self) -> None:
        ctl = self.state.training
        if not ctl.running:
            return
        if ctl.paused:
            ctl.resume()
        else:
            ctl.pause()

    @Slot()
    def _stop(self) -> None:
        self.state.training.stop()
        self.stop_btn.setEnabled(False)
        self._set_status("Stopping after the current batch…", None)

    # ---- controller signals ----------------------------------------------------------------
    @Slot()
    def _on_started(self) -> None:
        self._progress_line, self._rate_line = "", "Starting…"
        self.progress.setValue(0)
        self.progress.setFormat("Starting…")
        self._set_status("Training…", None)

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        self._update_buttons()
        if not running and self.progress.format().startswith("Starting"):
            self.progress.setFormat("Ready")

    @Slot(bool)
    def _on_paused(self, paused: bool) -> None:
        self.pause_btn.setText("Resume" if paused else "Pause")
        self.pause_btn.setIcon(style.icon("fa5s.play" if paused else "fa5s.pause", self))
        self.pause_btn.setAccessibleDescription("Resume training" if paused else "Pause training")
        self.pause_btn.setToolTip("Continue training where it paused." if paused else TIPS["pause"])
        if self.state.training.running and self._progress_line:
            self._show_progress_text()
        if paused:
            self._set_status("Paused.", None)
        elif self.state.training.running:
            self._set_status("Training…", None)

    @Slot(object)
    def _on_stage(self, e) -> None:
        self._progress_line = f"{e.name} · starting"
        self._show_progress_text()

    @Slot(object)
    def _on_progress(self, e) -> None:
        self.progress.setValue(round(1000 * e.progress))
        eta = style.fmt_duration(e.eta_s)
        self._progress_line = f"{e.stage} · epoch {e.epoch}/{e.epochs} · batch {e.batch}/{e.batches}"
        self._rate_line = f"{e.images_per_sec:,.0f} images/s · ETA {eta}"
        self._show_progress_text()
        self.progress.setToolTip(
            f"{TIPS['progress']}\n\nStage: {e.stage}\nEpoch {e.epoch} of {e.epochs}, batch {e.batch} of {e.batches}"
            f"\n{e.images_per_sec:,.0f} images per second\nAbout {eta} left (mm:ss)")

    def _show_progress_text(self) -> None:
        second = "Paused" if self.state.training.paused else self._rate_line
        self.progress.setFormat(f"{self._progress_line}\n{second}" if self._progress_line else second)

    @Slot(object)
    def _on_finished(self, e) -> None:
        if e.reason == "completed":
            self.progress.setValue(1000)
            self.progress.setFormat(f"Done · {e.epochs_done} epoch(s)")
        elif e.reason == "stopped":
            self.progress.setFormat(f"Stopped · keeping {epoch_label(e.epochs_done)}")
        else:
            self.progress.setFormat("Stopped: the loss became NaN")
        self._last_finish = (e.reason, e.message)
        self._set_status(*self._last_finish_style())

    @Slot(str)
    def _on_errored(self, message: str) -> None:
        self.progress.setFormat("Failed")
        self._last_finish = ("error", message)
        self._set_status(message, style.error_color())
