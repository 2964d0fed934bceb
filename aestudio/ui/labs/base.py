"""What every exploration lab shares: a header with inline help, a Run button that computes off
the GUI thread with visible progress, a figure area, a numbers table, and export of the figure
(PNG or SVG) and the numbers (CSV).

A lab subclasses `LabPanel`, fills `self.controls` (a QFormLayout) and `self.figure` (any
QWidget, usually a pyqtgraph GraphicsLayoutWidget), implements `compute()` (runs on a pool
thread with Qt-free core code; returns a result object) and `show_result(result)` (GUI thread:
setData on kept items, fill the table with `set_numbers`).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QPoint, QRectF, QSize, Qt, Slot
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSizePolicy,
    QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from ...core.datasets import ImageSet, split_indices
from ...core.doctor import lab_caution
from ...workers.tasks import Task, start
from ...workers.training import ModelSnapshot
from ..state import StudioState


def column_decimals(rows: list[list[Any]]) -> list[int | None]:
    """Decimal places for each column of a lab's table, so that a column's numbers line up: four
    significant digits of the column's largest value (0.0146 and 0.0004 read 0.01460 and 0.00040, not
    0.0146 and 0.0004; 12.3 and 11.79 read 12.30 and 11.79). None: the column has no fractional numbers,
    or values too large or too small for fixed decimals, which keep four significant digits each."""
    width = max((len(r) for r in rows), default=0)
    out: list[int | None] = []
    for j in range(width):
        vals = [abs(float(r[j])) for r in rows if j < len(r) and isinstance(r[j], (float, np.floating))
                and math.isfinite(float(r[j]))]
        top = max(vals, default=0.0)
        if top == 0.0 or top >= 1e6 or top < 1e-4:
            out.append(None)
        else:
            out.append(min(6, max(0, 3 - math.floor(math.log10(top)))))
    return out


def format_cell(value: Any, decimals: int | None) -> str:
    """A table cell's text: floats with their column's decimals (four significant digits without one)."""
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return "–" if math.isnan(float(value)) else str(float(value))
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:.4g}"
    return str(value)


@dataclass
class LabData:
    """What a lab computes on: the trained model and the run's own train / validation split."""

    snapshot: ModelSnapshot
    train: ImageSet
    val: ImageSet

    @property
    def model(self):
        return self.snapshot.model


def lab_data(state: StudioState) -> LabData | None:
    """The current model with the train / validation split it was trained with, or None."""
    snap, data = state.snapshot, state.dataset
    if snap is None or data is None or tuple(data.shape) != tuple(snap.model_config.input_shape):
        return None
    trained = snap.trained  # the model's own split and settings, whatever the settings say today
    split = trained.split
    if split is not None and max(len(split[0]), len(split[1])) and \
            int(max(split[0].max(initial=-1), split[1].max(initial=-1))) < data.n:
        train_idx, val_idx = split
    else:  # validated on a separate set: split this data set as its training settings would
        cfg = trained.train_config
        train_idx, val_idx = split_indices(data.n, cfg.val_fraction, cfg.seed)
    return LabData(snap, data.subset(train_idx), data.subset(val_idx))


def model_train_config(state: StudioState):
    """The training settings of the model on show (labs train their comparison models like it), or
    today's settings when there is no model yet."""
    trained = state.trained
    return trained.train_config if trained is not None else state.train_config


NOTE_COLOR = "#b9770e"  # amber: readable on light and dark backgrounds


def training_note_label(tooltip: str = "") -> QLabel:
    """The prominent line shown next to a lab's verdict when a model it trained was still improving
    when its step budget ran out (hidden while there is nothing to say)."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setAccessibleName("Training note")
    label.setToolTip(tooltip or "Shown when a model this lab trained was still improving when its training steps "
                                "ran out: its numbers may understate what it can do. Raise Training steps.")
    label.setStyleSheet(f"color: {NOTE_COLOR}; font-weight: 600; border-left: 3px solid {NOTE_COLOR}; "
                        "padding-left: 6px;")
    label.setVisible(False)
    return label


def set_training_note(label: QLabel, note: str | None) -> None:
    label.setText(f"⚠ {note}" if note else "")
    label.setVisible(bool(note))


def steps_spinbox(value: int, name: str, tooltip: str) -> QSpinBox:
    """A "Training steps" field: optimizer steps per trained model."""
    box = QSpinBox()
    box.setRange(10, 100_000)
    box.setSingleStep(100)
    box.setValue(int(value))
    box.setSuffix(" steps")
    box.setGroupSeparatorShown(True)
    box.setAccessibleName(name)
    box.setToolTip(tooltip)
    # as wide as its text: a form row would otherwise stretch it across the whole lab
    box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    return box


def steps_text(n: int) -> str:
    return f"{n:,} step{'s' if n != 1 else ''}"


class LabPanel(QWidget):
    title = "Lab"
    help_text = ""
    needs_model = True

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName(self.title)
        self.setObjectName(self.title.replace(" ", "_").lower())
        self._task: Task | None = None
        self.last_result: Any = None
        self._hidden_axes: list[tuple[Any, str]] = []  # axes hidden until the first result (set_figure)
        self.number_header: list[str] = []
        self.number_rows: list[list[Any]] = []

        header = QLabel(f"<b>{self.title}</b><br>{self.help_text}")
        header.setWordWrap(True)
        header.setTextFormat(Qt.RichText)
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: palette(mid);")
        # what the training doctor said about the model on show, when it changes how its numbers read
        self.model_caution = training_note_label(
            "Shown when the training doctor found that the model this lab measures is under-trained or "
            "learned little: its numbers then say less about the architecture.")
        self.model_caution.setAccessibleName("Model caution")

        self.controls = QFormLayout()
        self.controls.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.run_button = QPushButton("Run")
        self.run_button.setAccessibleName(f"Run {self.title}")
        self.run_button.setToolTip("Compute this lab on the current model, off the GUI thread.")
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setAccessibleName(f"{self.title} progress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.export_figure_button = QPushButton("Export figure…")
        self.export_figure_button.setToolTip("Save the figure as PNG or SVG.")
        self.export_figure_button.clicked.connect(self._ask_export_figure)
        self.export_numbers_button = QPushButton("Export numbers…")
        self.export_numbers_button.setToolTip("Save the numbers in the table as CSV.")
        self.export_numbers_button.clicked.connect(self._ask_export_numbers)
        for b in (self.export_figure_button, self.export_numbers_button):
            b.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_figure_button)
        buttons.addWidget(self.export_numbers_button)

        self.figure: QWidget = QWidget()
        self.table = QTableWidget(0, 0)
        self.table.setAccessibleName(f"{self.title} numbers")
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        # columns as wide as their contents: a stretched last column put its right-aligned numbers
        # a window's width away from the header that names them
        self.table.horizontalHeader().setStretchLastSection(False)
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(header)
        layout.addLayout(self.controls)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.notice)
        layout.addWidget(self.model_caution)
        layout.addWidget(self.splitter, 1)

        state.snapshotChanged.connect(self._on_snapshot)
        state.datasetChanged.connect(self._on_snapshot)
        self._on_snapshot(state.snapshot)

    # ---- subclass API ----
    def set_figure(self, widget: QWidget) -> None:
        """Install the figure widget (call once from the subclass constructor)."""
        self.figure = widget
        widget.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.splitter.insertWidget(0, widget)
        self.splitter.addWidget(self.table)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self._hidden_axes = [(item, name) for item, name in self._figure_axes() if item.getAxis(name).isVisible()]
        for item, name in self._hidden_axes:  # an empty plot shows no axes: they would mean nothing yet
            item.hideAxis(name)

    def _figure_axes(self) -> list[tuple[Any, str]]:
        """(plot item, axis name) of the left and bottom axes of every plot in the figure."""
        import pyqtgraph as pg

        views = [w for w in (self.figure, *self.figure.findChildren(QWidget)) if isinstance(w, pg.GraphicsView)]
        items = [it for v in views for it in v.scene().items() if isinstance(it, pg.PlotItem)]
        return [(it, name) for it in items for name in ("left", "bottom")]

    @property
    def axes_hidden(self) -> bool:
        """True while the figure's plots hide the axes they will show once there is a result."""
        return bool(self._hidden_axes)

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def show_result(self, result: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def on_model_changed(self, data: LabData | None) -> None:
        """Called when the model or data changes (GUI thread); reset views if needed."""

    def on_idle(self) -> None:
        """Called after each computation ends, done or failed (GUI thread): re-enable actions, run queued work."""

    def set_numbers(self, header: list[str], rows: list[list[Any]]) -> None:
        self.number_header, self.number_rows = list(header), [list(r) for r in rows]
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(header)
        decimals = column_decimals(rows)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                text = format_cell(value, decimals[j] if j < len(decimals) else None)
                item = QTableWidgetItem(text)
                if isinstance(value, (int, float, np.integer, np.floating)):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    if isinstance(value, (float, np.floating)) and text != f"{value:.6g}":
                        item.setToolTip(f"{value:.6g}")  # the digits the column's format leaves out
                self.table.setItem(i, j, item)
        self.export_numbers_button.setEnabled(bool(rows))

    # ---- running ----
    @property
    def busy(self) -> bool:
        return self._task is not None

    @Slot()
    def run(self) -> None:
        if self.busy:
            return
        data = lab_data(self.state)
        if data is None and self.needs_model:
            self.notice.setText("Train a model (or open a run) first: this lab measures a trained autoencoder.")
            return
        self.notice.setText("Working…")
        self.run_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first progress report
        task = Task(self.compute, data, progress=True)
        task.signals.progress.connect(self._on_progress)
        task.signals.done.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        self._task = start(task)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    @Slot(object)
    def _on_done(self, result: Any) -> None:
        self._task = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.run_button.setEnabled(True)
        self.notice.setText("")
        self.last_result = result
        for item, name in self._hidden_axes:  # there is data now (show_result may hide what it wants)
            item.showAxis(name)
        self._hidden_axes = []
        self.show_result(result)
        self.export_figure_button.setEnabled(True)
        self.on_idle()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._task = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.run_button.setEnabled(True)
        self.notice.setText(f"<span style='color:#c0392b'>{message}</span>")
        self.on_idle()

    @Slot(object)
    def _on_snapshot(self, _obj: Any = None) -> None:
        data = lab_data(self.state)
        ready = data is not None or not self.needs_model
        self.run_button.setEnabled(ready and not self.busy)
        if not ready:
            self.notice.setText("Train a model (or open a run) to use this lab.")
        elif not self.busy:
            self.notice.setText("")
        trained = data.snapshot.trained if data is not None and self.needs_model else None
        set_training_note(self.model_caution,
                          lab_caution(trained.diagnoses, trained.epoch) if trained is not None else None)
        self.on_model_changed(data)

    def wait_until_idle(self, timeout_s: float = 60.0) -> bool:
        """For tests and shutdown: block until the running computation has finished."""
        return self._task is None or self._task.finished_event.wait(timeout_s)

    # ---- export ----
    def export_figure(self, path: str | Path) -> Path:
        """Save the figure: SVG when the name ends in .svg, else PNG."""
        path = Path(path)
        if path.suffix.lower() == ".svg":
            size = self.figure.size()
            gen = QSvgGenerator()
            gen.setFileName(str(path))
            gen.setSize(QSize(size.width(), size.height()))
            gen.setViewBox(QRectF(0, 0, size.width(), size.height()))
            gen.setTitle(self.title)
            painter = QPainter(gen)
            self.figure.render(painter, QPoint())
            painter.end()
        else:
            if path.suffix.lower() != ".png":
                path = path.with_suffix(".png")
            self.figure.grab().save(str(path), "PNG")
        return path

    def export_numbers(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.number_header)
            writer.writerows(self.number_rows)
        return path

    @Slot()
    def _ask_export_figure(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, f"Export {self.title} figure", f"{self.objectName()}.png",
                                              "PNG image (*.png);;SVG drawing (*.svg)")
        if name:
            self.export_figure(name)

    @Slot()
    def _ask_export_numbers(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, f"Export {self.title} numbers", f"{self.objectName()}.csv",
                                              "CSV (*.csv)")
        if name:
            self.export_numbers(name)
