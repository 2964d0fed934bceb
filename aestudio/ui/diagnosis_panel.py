"""The "Diagnosis" panel: what the training doctor found in the current run.

Each finding shows its sentence (with the evidence) and its remedy; a finding whose remedy is a
setting gets an "Apply and retrain" button that writes the setting into the model / training
configuration (the builder and the Training panel follow) and starts training again. The panel
clears when a new run starts. Findings arrive from the training worker as plain `Diagnosis`
data through `TrainingController.diagnosis`.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.config import ModelConfig, TrainConfig
from ..core.doctor import Diagnosis
from . import style
from .state import StudioState

EMPTY_TEXT = "No problems found so far."
TIP = ("The training doctor watches each run and names what went wrong (a collapsed output, dead units, "
       "posterior collapse, too little training, overfitting, bad data), with the evidence and a remedy.")
TITLES = {
    "constant_output": "Output collapsed",
    "dead_units": "Dead units",
    "posterior_collapse": "Posterior collapse",
    "too_few_steps": "Too few training steps",
    "overfitting": "Overfitting",
    "still_improving": "Still improving",
    "nan": "Training diverged",
    "mostly_transparent": "Mostly transparent images",
    "mostly_blank": "Mostly blank images",
}

_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def describe_settings(settings: dict) -> str:
    """`lr = 0.001, batch_norm = on` for a tooltip."""
    def fmt(v):
        if isinstance(v, bool):
            return "on" if v else "off"
        if v is None:
            return "default"
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k} = {fmt(v)}" for k, v in settings.items() if v is not None or k != "activations")


def apply_settings(model_config: ModelConfig, train_config: TrainConfig,
                   settings: dict) -> tuple[ModelConfig, TrainConfig]:
    """Copies of the two configs with a finding's settings written into whichever owns each field."""
    train = {k: v for k, v in settings.items() if k in _TRAIN_FIELDS}
    model = {k: v for k, v in settings.items() if k in _MODEL_FIELDS and k not in _TRAIN_FIELDS}
    return dataclasses.replace(model_config, **model), dataclasses.replace(train_config, **train)


class _FindingCard(QFrame):
    def __init__(self, d: Diagnosis, parent: QWidget | None = None):
        super().__init__(parent)
        self.diagnosis = d
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"Finding: {d.code}")
        lay = QVBoxLayout(self)
        style.tune_layout(lay, 6, 3)
        title = QLabel(TITLES.get(d.code, d.code))
        title.setStyleSheet(f"QLabel {{ color: {style.WARN}; font-weight: 600; }}")
        when = QLabel("before training" if d.epoch == 0 else f"epoch {d.epoch}")
        when.setStyleSheet(style.muted_css(self))
        top = QHBoxLayout()
        top.addWidget(title, 1)
        # the button sits on the title row, so a long finding in a short panel never hides it
        self.apply_btn: QPushButton | None = None
        if d.settings:
            btn = QPushButton(style.icon("fa5s.redo", self), "Apply and retrain")
            btn.setAccessibleName("Apply and retrain")
            btn.setToolTip(f"Set {describe_settings(d.settings)} and train a new model with it.")
            top.addWidget(btn)
            self.apply_btn = btn
        top.addWidget(when)
        lay.addLayout(top)
        self.message = QLabel(d.message)
        self.remedy = QLabel(f"Remedy: {d.remedy}")
        for label in (self.message, self.remedy):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
            lay.addWidget(label)
        self.message.setAccessibleName("Finding")
        self.remedy.setAccessibleName("Remedy")


class DiagnosisPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Diagnosis")
        self.setToolTip(TIP)
        self.findings: list[Diagnosis] = []
        self._cards: list[_FindingCard] = []
        self._retrain_pending = False

        outer = QVBoxLayout(self)
        style.tune_layout(outer, 0, 4)
        self.head = head = QLabel("Diagnosis")  # with the number of findings: some may be scrolled out of view
        head.setAccessibleName("Diagnosis heading")
        head.setStyleSheet("QLabel { font-weight: 600; }")
        head.setToolTip(TIP)
        outer.addWidget(head)
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setAccessibleName("Diagnosis status")
        self.empty.setStyleSheet(style.muted_css(self))
        self.empty.setWordWrap(True)
        outer.addWidget(self.empty)

        self._list = QWidget()
        self._list_layout = QVBoxLayout(self._list)
        style.tune_layout(self._list_layout, 0, 4)
        self._list_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self._list)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumHeight(110)
        self.scroll.setVisible(False)
        outer.addWidget(self.scroll, 1)
        outer.addStretch(1)  # keeps the empty state at the top; off while findings fill the scroll area
        self._outer = outer

        ctl = state.training
        ctl.started.connect(self._on_started)
        ctl.diagnosis.connect(self._on_diagnosis)
        ctl.runningChanged.connect(self._on_running)

    # ---- content -------------------------------------------------------------------------
    def clear(self) -> None:
        for card in self._cards:
            self._list_layout.removeWidget(card)
            card.deleteLater()
        self._cards.clear()
        self.findings.clear()
        self.head.setText("Diagnosis")
        self.empty.setText(EMPTY_TEXT)
        self.empty.setVisible(True)
        self.scroll.setVisible(False)
        self._outer.setStretch(self._outer.count() - 1, 1)

    def add(self, d: Diagnosis) -> None:
        if any(f.code == d.code for f in self.findings):
            return
        self.findings.append(d)
        card = _FindingCard(d, self._list)
        if card.apply_btn is not None:
            card.apply_btn.clicked.connect(self._on_apply_clicked)
        self._list_layout.insertWidget(self._list_layout.count() - 1, card)
        self._cards.append(card)
        n = len(self.findings)
        self.head.setText(f"Diagnosis · {n} finding{'s' if n > 1 else ''}")
        self.empty.setVisible(False)
        self.scroll.setVisible(True)
        self._outer.setStretch(self._outer.count() - 1, 0)

    def text(self) -> str:
        """Every finding as `code: message Remedy: remedy` lines (what the CLI prints)."""
        return "\n".join(d.text() for d in self.findings)

    def apply_and_retrain(self, d: Diagnosis) -> None:
        """Write `d.settings` into the model / training configuration and train again."""
        st = self.state
        mc, tc = apply_settings(st.model_config, st.train_config, d.settings)
        st.set_model_config(mc)
        st.set_train_config(tc)
        st.statusMessage.emit(f"Applied {describe_settings(d.settings)}; training again.")
        if st.training.running:
            self._retrain_pending = True
            st.training.stop()
        else:
            st.start_training()

    # ---- slots ---------------------------------------------------------------------------
    @Slot()
    def _on_apply_clicked(self) -> None:
        btn = self.sender()
        for card in self._cards:
            if card.apply_btn is btn:
                self.apply_and_retrain(card.diagnosis)
                return

    @Slot()
    def _on_started(self) -> None:
        self.clear()
        self.empty.setText("Watching this run: no problems found so far.")

    @Slot(object)
    def _on_diagnosis(self, d) -> None:
        self.add(d)

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        if not running and self._retrain_pending:
            self._retrain_pending = False
            self.state.start_training()
        elif not running and not self.findings and self.empty.text() != EMPTY_TEXT:
            self.empty.setText("No problems found in this run.")
