"""The "Training" panel: how to train, the Train / Pause / Stop buttons and the progress bar.

The settings are `TrainConfig`'s field table (`ui(...)` metadata in `aestudio.core.config`) built
by `aestudio.ui.forms.ConfigForm`; rows that only matter for some models (pretraining epochs for
stacked models, KL warm-up for VAEs) follow the state's model config. Writes `state.train_config`
on every edit; reads the model's problems from the state to say why Train is disabled; shows the
controller's progress (stage, epoch, batch, images/s, ETA) and how the last run ended.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..core.augment import auto_choice
from ..core.config import AUGMENT_LABELS, TrainConfig
from ..core.datasets import validation_count
from ..core.evaluation import is_linear_model
from ..workers.training import epoch_label
from . import style
from .diagnosis_panel import DiagnosisPanel
from .forms import ConfigForm
from .state import StudioState

TIPS = {
    "train": "Train a new model with these settings (the plots update as it learns).",
    "pause": "Pause training after the current batch; press again to resume.",
    "stop": "Stop training after the current batch; the model so far stays available for exploring and saving.",
    "progress": "Stage, epoch, batch, throughput in images per second and the estimated time left.",
}


def _button(icon: str, text: str, tip: str, parent: QWidget, color: str | None = None) -> QPushButton:
    b = QPushButton(style.icon(icon, parent, color), text)
    b.setAccessibleName(text)
    b.setToolTip(tip)
    b.setMinimumHeight(30)
    b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return b


class ButtonAction(QAction):
    """A menu action (with a keyboard shortcut) that presses `button`: enabled exactly when the button
    is, so a shortcut never does what the button could not. The button's tooltip names the shortcut,
    whatever tooltip the panel gives it later."""

    def __init__(self, button: QPushButton, text: str, shortcuts: list[str], parent: QObject):
        super().__init__(button.icon(), text, parent)
        self.button = button
        self.setShortcuts([QKeySequence(k) for k in shortcuts])
        self.setToolTip(button.toolTip())
        self.setStatusTip(button.toolTip().split("\n")[0])
        self.setEnabled(button.isEnabled())
        self.triggered.connect(self._press)
        self.hint = "Shortcut: " + QKeySequence(shortcuts[0]).toString(QKeySequence.SequenceFormat.NativeText)
        self._name_shortcut()
        button.installEventFilter(self)

    def _name_shortcut(self) -> None:
        tip = self.button.toolTip()
        if not tip.endswith(self.hint):
            self.button.setToolTip(f"{tip}\n\n{self.hint}" if tip else self.hint)

    @Slot()
    def _press(self) -> None:
        if self.button.isEnabled():
            self.button.click()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.button:
            if event.type() == QEvent.Type.EnabledChange:
                self.setEnabled(self.button.isEnabled())
            elif event.type() == QEvent.Type.ToolTipChange:
                self._name_shortcut()
        return False


class TrainingPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Training")
        self.setToolTip("How to train the model, and the controls to start, pause and stop.")
        self._last_finish = ""
        self._notes = ""  # settings this run ignores here (Trainer.notes), shown with its status
        self._progress_line = ""
        self._rate_line = ""
        self._base = state.train_config  # fields without a widget come from here
        self.form = ConfigForm(TrainConfig, title="Training")
        self.train_btn = _button("fa5s.play", "Train", TIPS["train"], self, style.OK)
        self.train_btn.setDefault(True)
        self.train_btn.setMinimumWidth(90)
        self.pause_btn = _button("fa5s.pause", "Pause", TIPS["pause"], self)
        self.pause_btn.setAccessibleDescription("Pause training")
        self.stop_btn = _button("fa5s.stop", "Stop", TIPS["stop"], self, style.ERROR)
        # the main window's Training menu: the same three buttons, with shortcuts
        self.train_action = ButtonAction(self.train_btn, "&Train", ["Ctrl+Return", "F5"], self)
        self.pause_action = ButtonAction(self.pause_btn, "&Pause", ["F6"], self)
        self.stop_action = ButtonAction(self.stop_btn, "&Stop", ["Shift+F5"], self)
        self.progress = self._progress_bar()
        self.status = style.WrappedLabel(" ")
        self.status.setAccessibleName("Training status")
        self.status.setToolTip("Why Train is unavailable, or how the last run ended.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.diagnosis = DiagnosisPanel(self.state)  # the training doctor's findings for this run
        lay = style.tune_layout(QVBoxLayout(self), style.MARGIN, 8)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        for w in (self.train_btn, self.pause_btn, self.stop_btn):
            buttons.addWidget(w)
        lay.addWidget(self.form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.diagnosis, 1)

        self._show(state.train_config)
        self.form.changed.connect(self._edited)
        self.train_btn.clicked.connect(self._train)
        self.pause_btn.clicked.connect(self._pause_resume)
        self.stop_btn.clicked.connect(self._stop)
        ctl = state.training
        ctl.started.connect(self._on_started)
        ctl.runningChanged.connect(self._on_running)
        ctl.pausedChanged.connect(self._on_paused)
        ctl.stageStarted.connect(self._on_stage)
        ctl.progress.connect(self._on_progress)
        ctl.finished.connect(self._on_finished)
        ctl.errored.connect(self._on_errored)
        ctl.notes.connect(self._on_notes)
        state.trainConfigChanged.connect(self._on_state_config)
        state.modelConfigChanged.connect(self._update_buttons)
        state.datasetChanged.connect(self._update_buttons)
        self._update_buttons()

    def _progress_bar(self) -> QProgressBar:
        bar = QProgressBar()
        bar.setAccessibleName("Progress")
        bar.setToolTip(TIPS["progress"])
        bar.setRange(0, 1000)
        bar.setValue(0)
        bar.setTextVisible(True)
        bar.setFormat("Ready")
        font = bar.font()
        font.setPointSizeF(font.pointSizeF() * 0.92)
        bar.setFont(font)
        bar.setMinimumHeight(2 * bar.fontMetrics().height() + 8)  # two lines of text
        return bar

    def widget(self, name: str) -> QWidget:
        """The widget of a `TrainConfig` field (e.g. "lr")."""
        return self.form.widget(name)

    @property
    def lr(self) -> QWidget:
        return self.widget("lr")

    # ---- config <-> widgets ------------------------------------------------------------------
    def config(self) -> TrainConfig:
        """The training settings the widgets describe (a new config)."""
        return self.form.apply(self._base)

    def set_config(self, cfg: TrainConfig) -> None:
        self._show(cfg)
        self.state.set_train_config(self.config())

    def _show(self, cfg: TrainConfig) -> None:
        self._base = cfg
        self.form.set_values(cfg)
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        """Rows that depend on the model (pretraining for stacked models, KL warm-up for VAEs)."""
        self.form.set_context(self.state.model_config)

    @Slot()
    def _edited(self, *_) -> None:
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
        self._name_auto_augment()
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

    def _name_auto_augment(self) -> None:
        """The Augmentation field's "Auto" says what it does for this data set and number of epochs
        (shifts depend on both: augment.py), with why in its tooltip, before a run starts."""
        combo = self.form.widget("augment")
        i = combo.findData("auto")
        data, cfg = self.state.dataset, self.state.train_config
        if i < 0 or data is None or data.n < 2 or not 0.0 < cfg.val_fraction < 1.0 or cfg.epochs < 1:
            if i >= 0:
                combo.setItemText(i, AUGMENT_LABELS["auto"])
                combo.setItemData(i, "", Qt.ItemDataRole.ToolTipRole)
            return
        n_train = data.n - validation_count(data.n, cfg.val_fraction)
        shift, why = auto_choice(n_train, tuple(data.shape), cfg.epochs, linear=is_linear_model(self.state.model_config))
        combo.setItemText(i, f"Auto (shifts of up to {shift} px here)" if shift else "Auto (no shifts here)")
        combo.setItemData(i, why[0].upper() + why[1:] + ".", Qt.ItemDataRole.ToolTipRole)

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
        self._notes = ""
        self._set_status("Training…", None)

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        self._update_buttons()
        if not running and self.progress.format().startswith("Starting"):
            self.progress.setFormat("Ready")

    @Slot(bool)
    def _on_paused(self, paused: bool) -> None:
        self.pause_btn.setText("Resume" if paused else "Pause")
        self.pause_action.setText("&Resume" if paused else "&Pause")
        self.pause_btn.setIcon(style.icon("fa5s.play" if paused else "fa5s.pause", self))
        self.pause_btn.setAccessibleDescription("Resume training" if paused else "Pause training")
        self.pause_btn.setToolTip("Continue training where it paused." if paused else TIPS["pause"])
        if self.state.training.running and self._progress_line:
            self._show_progress_text()
        if paused or self.state.training.running:
            self._show_running_status(paused)

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
        self._last_finish = (e.reason, self._with_notes(e.message))
        self._set_status(*self._last_finish_style())

    @Slot(object)
    def _on_notes(self, notes) -> None:
        """Settings the run ignores on this machine (e.g. mixed precision on a CPU without bfloat16
        instructions): shown under the buttons for the run and after it."""
        self._notes = " ".join(f"Note: {n[:1].upper()}{n[1:]}." for n in notes)
        if self.state.training.running:
            self._show_running_status(self.state.training.paused)

    def _show_running_status(self, paused: bool) -> None:
        self._set_status(self._with_notes("Paused." if paused else "Training…"), None)

    def _with_notes(self, text: str) -> str:
        return f"{text} {self._notes}" if self._notes else text

    @Slot(str)
    def _on_errored(self, message: str) -> None:
        self.progress.setFormat("Failed")
        self._last_finish = ("error", message)
        self._set_status(message, style.error_color())
