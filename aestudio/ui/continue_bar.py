"""Continue or start over: the strip under the Training panel once there is a trained model.

*Continue training* trains the current model further: the same weights, optimizer state and
train / validation split, its loss history appended and its epochs numbered on. Settings changed
since it was trained (anything but the epochs and the device) make a fork: a new run whose
config.json names this one as its parent. *Train from scratch* starts a new model.
The strip says which of the two Continue will do before it is clicked.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from ..core.trained import settings_changes
from . import style
from .state import StudioState

CONTINUE_TIP = ("Train this model further: the same weights, optimizer state and validation split; its loss "
                "history is kept and the new epochs are numbered on. Epochs sets how many more to train. "
                "Changing any other setting first makes a fork: a new run that names this one as its parent.")
SCRATCH_TIP = "Start a new model from random weights with the settings above (the current model is left as it is)."


class ContinueBar(QWidget):
    continueRequested = Signal()

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Continue or start over")
        self.status = style.WrappedLabel()
        self.status.setAccessibleName("Continue status")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.continue_button = QPushButton("Continue training")
        self.continue_button.setAccessibleName("Continue training")
        self.continue_button.setToolTip(CONTINUE_TIP)
        self.continue_button.setIcon(style.icon("fa5s.forward", self))
        self.scratch_button = QPushButton("Train from scratch")
        self.scratch_button.setAccessibleName("Train from scratch")
        self.scratch_button.setToolTip(SCRATCH_TIP)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.continue_button, 1)
        buttons.addWidget(self.scratch_button, 1)
        lay = QVBoxLayout(self)
        style.tune_layout(lay, 8, 4)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.continue_button.clicked.connect(self.continueRequested)
        self.scratch_button.clicked.connect(self._scratch)
        for signal in (state.snapshotChanged, state.modelConfigChanged, state.trainConfigChanged,
                       state.datasetChanged):
            signal.connect(self.refresh)
        state.training.runningChanged.connect(self.refresh)
        self.refresh()

    @Slot()
    def _scratch(self) -> None:
        self.state.start_training()

    @Slot()
    @Slot(object)
    def refresh(self, *_args) -> None:
        trained = self.state.trained
        self.setVisible(trained is not None)
        if trained is None:
            self.continue_button.setEnabled(False)  # nothing to continue (the Training menu's action follows)
            return
        running = self.state.training.running
        problem = None if running else self.state.continue_problem(check_weights=False)
        self.continue_button.setEnabled(not running and problem is None)
        self.scratch_button.setEnabled(not running and self.state.dataset is not None)
        where = f"{trained.source.rstrip('/').rsplit('/', 1)[-1]}, " if trained.source else ""
        if running:
            text = "Training…"
        elif problem:
            text = problem
        else:
            changes = settings_changes(trained, self.state.model_config, self.state.train_config)
            if changes:
                text = (f"Changed since this model ({where}epoch {trained.epoch}) was trained: {', '.join(changes)}. "
                        "Continue training makes a fork, a new run that names this one as its parent.")
            else:
                text = (f"Continue this model ({where}epoch {trained.epoch}) for {self.state.train_config.epochs} "
                        "more epoch(s), or train a new one from scratch.")
            if trained.optimizer is None:
                text += " Its optimizer state was not saved, so a fresh optimizer takes over."
        self.status.setText(text)
        self.status.setStyleSheet(style.muted_css(self) if not problem else "")
