"""The "Runs" panel: every run folder the studio knows, side by side.

A table lists the runs (recent ones, and every run in the folders the user added): name, model,
parameters, epochs, final training and validation loss, and whether the run is still being
written. Tick several runs to overlay their loss curves (one colour per run), to see their
`evaluate` metrics side by side with the best of each row marked, and to see the settings that
differ between them.

Listing and reading run folders, and evaluating runs, happen on pool threads (`workers.tasks.Task`);
the panel only receives `core.runs.RunInfo` values (plain Python data) and metric dicts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout,
                               QWidget)

from ..core.runs import RunInfo, RunRegistry, compare, config_diff, evaluate_folder, format_value, read_run_info
from ..workers.tasks import Task, start
from . import imaging, style

COLUMNS = ("Run", "Model", "Parameters", "Epochs", "Train loss", "Val loss", "Status")
CURVE_KEYS = {"Validation loss": "val_total", "Training loss": "train_total",
              "Validation reconstruction": "val_recon", "Training reconstruction": "train_recon"}
BEST_MARK = "★"
_ALIVE: list[Task] = []  # running tasks outlive a closed panel (a pool thread still runs them)


def _start(task: Task) -> None:
    _ALIVE[:] = [t for t in _ALIVE if not t.finished_event.is_set()] + [task]
    start(task)
STATUS_HELP = {
    "done": "The run folder is complete.",
    "writing": "A training process is still writing this run folder; refresh to see its latest state.",
    "quiet": "The run says it is still training, but nothing changed for a while: the process may have stopped.",
    "broken": "This folder cannot be read as a run.",
}


def load_infos() -> tuple[list[RunInfo], str | None]:
    """(every known run, a note about the stored list) — runs on a pool thread."""
    registry = RunRegistry.load()
    return [read_run_info(p) for p in registry.discover()], registry.warning


def evaluate_many(paths: list[str], progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate each run (pool thread): {path: metrics dict, or the one-line reason it failed}."""
    from ..core.errors import user_message

    out: dict[str, Any] = {}
    for i, p in enumerate(paths):
        if progress is not None:
            progress(i, len(paths))
        try:
            out[p] = evaluate_folder(p)
        except Exception as e:  # noqa: BLE001 - a per-run message, never a traceback
            message = user_message(e)
            if message is None:
                raise
            out[p] = " ".join(message.split())
    if progress is not None:
        progress(len(paths), len(paths))
    return out


class RunsPanel(QWidget):
    loaded = Signal()  # the list of runs was (re)read
    evaluated = Signal()  # an evaluation finished (its metrics are in the runs' infos)
    selectionChanged = Signal()  # the ticked runs changed
    openRequested = Signal(str)  # a run's folder, double-clicked: open it in the studio

    def __init__(self, state=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Runs")
        self.infos: list[RunInfo] = []
        self._ticked: set[str] = set()
        self._load_task: Task | None = None
        self._eval_task: Task | None = None
        self.errors: dict[str, str] = {}  # path -> why its evaluation failed
        # Chooses a folder of runs to add: choose_folder(start) -> path ("" cancels). None: a folder dialog.
        self.choose_folder: Callable[[str], str] | None = None
        self.curve_items: dict[str, pg.PlotDataItem] = {}

        lay = QVBoxLayout(self)
        style.tune_layout(lay)
        bar = QHBoxLayout()
        self.add_button = QPushButton("Add folder…")
        self.add_button.setIcon(style.icon("fa5s.folder-plus", self))
        self.add_button.setToolTip("Add a run folder, or a folder holding run folders (one level deep), to this list.")
        self.add_button.setAccessibleName("Add runs folder")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the run folders again (runs still being written change).")
        self.refresh_button.setAccessibleName("Refresh runs")
        self.evaluate_button = QPushButton("Evaluate ticked")
        self.evaluate_button.setToolTip("Measure the ticked runs that have no stored evaluation, as `aestudio evaluate` "
                                        "does, on each run's own validation split. Stored beside each run.")
        self.evaluate_button.setAccessibleName("Evaluate ticked runs")
        # on its own row under the buttons: beside them, in a narrow dock, it wrapped into a column
        # one word wide and pushed the buttons down
        self.status = style.WrappedLabel("")
        self.status.setStyleSheet(style.muted_css(self))
        self.status.setAccessibleName("Runs status")
        for w in (self.add_button, self.refresh_button, self.evaluate_button):
            bar.addWidget(w)
        bar.addStretch(1)
        lay.addLayout(bar)
        lay.addWidget(self.status)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Runs table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("Tick runs to compare them below; double-click a run to open it in the studio.")

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Run comparison")
        curves = QWidget()
        cl = QVBoxLayout(curves)
        cl.setContentsMargins(0, 0, 0, 0)
        self.curve_key = QComboBox()
        self.curve_key.addItems(list(CURVE_KEYS))
        self.curve_key.setAccessibleName("Curve to overlay")
        self.curve_key.setToolTip("Which loss to draw for each ticked run.")
        self.plot = pg.PlotWidget()
        self.plot.setAccessibleName("Overlaid loss curves")
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "loss per image")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = imaging.legend_above(self.plot.getPlotItem(), columns=4)  # above: never over a curve
        self.plot_hint = pg.TextItem("Tick runs in the table\nto overlay their curves", anchor=(0.5, 0.5))
        self.plot_hint.setPos(0.5, 0.5)
        self.plot.addItem(self.plot_hint, ignoreBounds=True)
        imaging.style_plot(self.plot, self.palette(), legend_frame=False)
        cl.addWidget(self.curve_key, 0, Qt.AlignmentFlag.AlignLeft)
        cl.addWidget(self.plot, 1)
        self.metrics_table = QTableWidget(0, 0)
        self.metrics_table.setAccessibleName("Metrics side by side")
        self.metrics_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.metrics_table.setToolTip(f"{BEST_MARK} marks the best value of a row among the ticked runs. Rows "
                                      "without a direction (baselines that depend only on the data) are not ranked.")
        self.diff_table = QTableWidget(0, 0)
        self.diff_table.setAccessibleName("Config diff")
        self.diff_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff_table.setToolTip("The settings that differ between the ticked runs.")
        self.tabs.addTab(curves, "Loss curves")
        self.tabs.addTab(self.metrics_table, "Metrics")
        self.tabs.addTab(self.diff_table, "Config diff")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 2)
        lay.addWidget(split, 1)

        self.add_button.clicked.connect(self.add_folder)
        self.refresh_button.clicked.connect(self.refresh)
        self.evaluate_button.clicked.connect(self.evaluate_ticked)
        self.curve_key.currentIndexChanged.connect(self._draw_curves)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.cellDoubleClicked.connect(self._on_double_clicked)
        self._update_buttons()

    # ---- reading the runs -----------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().showEvent(event)
        self.refresh()  # cheap (config and history files only), on a pool thread

    @Slot(int, int)
    def _on_double_clicked(self, row: int, _column: int) -> None:
        """Double-click a readable run: ask the studio to open it (a run still being written too)."""
        if 0 <= row < len(self.infos) and self.infos[row].ok:
            self.openRequested.emit(str(self.infos[row].path))

    @property
    def busy(self) -> bool:
        return self._load_task is not None or self._eval_task is not None

    @Slot()
    def refresh(self) -> None:
        """Re-read every known run on a pool thread; `loaded` follows."""
        if self._load_task is not None:
            return
        task = Task(load_infos)
        task.signals.done.connect(self._on_loaded)
        task.signals.failed.connect(self._on_failed)
        self._load_task = task
        self.status.setText("Reading run folders …")
        self._update_buttons()
        _start(task)

    @Slot(object)
    def _on_loaded(self, result) -> None:
        self._load_task = None
        infos, warning = result
        self.infos = list(infos)
        known = {str(i.path) for i in self.infos if i.ok}
        self._ticked &= known
        self._fill_table()
        broken = sum(1 for i in self.infos if not i.ok and i.status == "broken")
        text = f"{len(self.infos)} run(s)" + (f", {broken} cannot be read (hover for why)" if broken else "")
        if not self.infos:
            text = "No runs yet: train and save one, or add a folder of runs."
        self.status.setText(text + (f". Note: {warning}" if warning else ""))
        self._update_buttons()
        self._update_comparison()
        self.loaded.emit()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._load_task = None
        self.status.setText(f"Could not read the runs: {message}")
        self._update_buttons()
        self.loaded.emit()

    def add_folder(self, path: str | None = None) -> None:
        """Add a run folder or a folder of runs (`choose_folder` hook, else a folder dialog) and refresh."""
        if not path:
            start_dir = str(Path.home())
            if self.choose_folder is not None:
                path = self.choose_folder(start_dir)
            else:
                path = QFileDialog.getExistingDirectory(self, "Add a folder of runs", start_dir)
        if not path:
            return
        registry = RunRegistry.load()
        registry.add_folder(path)
        try:
            registry.save()
        except OSError as e:
            self.status.setText(f"The folder is listed for now, but the list could not be stored: {e.strerror or e}")
        self.refresh()

    # ---- the table ---------------------------------------------------------------------------
    def _fill_table(self) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.infos))
        muted = QColor(style.muted_color(self))
        for row, info in enumerate(self.infos):
            final = info.final()
            values = [info.name, info.describe() or "–", format_value(info.params), str(info.epochs),
                      format_value(final.get("train_total")), format_value(final.get("val_total")), info.status]
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(str(info.path) if col == 0 else STATUS_HELP.get(info.status, "") if col == 6 else text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, str(info.path))
                    if info.ok:
                        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                        item.setCheckState(Qt.CheckState.Checked if str(info.path) in self._ticked
                                           else Qt.CheckState.Unchecked)
                    else:
                        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                if not info.ok:
                    item.setForeground(QBrush(muted))
                    item.setToolTip(info.error or "")
                elif info.warnings:
                    item.setToolTip(item.toolTip() + "\n" + "\n".join(info.warnings))
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)

    @Slot(QTableWidgetItem)
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        path = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self._ticked.add(path)
        else:
            self._ticked.discard(path)
        self._update_buttons()
        self._update_comparison()
        self.selectionChanged.emit()

    def set_ticked(self, names_or_paths) -> None:
        """Tick exactly these runs (by folder name or path)."""
        wanted = {str(x) for x in names_or_paths}
        self.table.blockSignals(True)
        self._ticked = set()
        for row, info in enumerate(self.infos):
            on = info.ok and (info.name in wanted or str(info.path) in wanted)
            if on:
                self._ticked.add(str(info.path))
            item = self.table.item(row, 0)
            if item is not None and info.ok:
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.table.blockSignals(False)
        self._update_buttons()
        self._update_comparison()
        self.selectionChanged.emit()

    def ticked(self) -> list[RunInfo]:
        """The ticked runs, in table order."""
        return [i for i in self.infos if str(i.path) in self._ticked]

    def _update_buttons(self) -> None:
        self.refresh_button.setEnabled(self._load_task is None)
        self.add_button.setEnabled(self._load_task is None)
        self.evaluate_button.setEnabled(self._eval_task is None and any(
            i.evaluation is None and i.status != "writing" for i in self.ticked()))

    # ---- comparing -------------------------------------------------------------------------------
    def _update_comparison(self) -> None:
        self._draw_curves()
        self._fill_metrics()
        self._fill_diff()

    @Slot()
    def _draw_curves(self) -> None:
        key = CURVE_KEYS[self.curve_key.currentText()]
        runs = self.ticked()
        for name in list(self.curve_items):
            if name not in {str(r.path) for r in runs}:
                item = self.curve_items.pop(name)
                self.plot.removeItem(item)
        for i, info in enumerate(runs):
            color = QColor(imaging.TABLEAU10[i % len(imaging.TABLEAU10)])
            item = self.curve_items.get(str(info.path))
            if item is None:
                item = pg.PlotDataItem(name=info.name)
                self.plot.addItem(item)
                self.curve_items[str(info.path)] = item
            xs, ys = info.curve(key)
            item.setData(xs, ys)
            item.setPen(pg.mkPen(color, width=2))
            item.setSymbol("o")
            item.setSymbolSize(5)
            item.setSymbolBrush(pg.mkBrush(color))
            item.setSymbolPen(None)
        # the legend follows the table order (items were added in ticking order)
        self.legend.clear()
        for info in runs:
            self.legend.addItem(self.curve_items[str(info.path)], info.name)
        self.plot.setLabel("left", self.curve_key.currentText().lower())
        self.plot_hint.setVisible(not runs)
        for name in ("left", "bottom"):  # an empty plot's axes would mean nothing
            self.plot.getPlotItem().showAxis(name, bool(runs))
        if runs:
            self.plot.enableAutoRange()
        else:
            self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)

    def _fill_metrics(self) -> None:
        runs = self.ticked()
        t = self.metrics_table
        t.clear()
        if not runs:
            t.setRowCount(0)
            t.setColumnCount(0)
            return
        table = compare(runs)
        rows = [r for r in table.rows if r.section != "settings" or r.key in ("arch", "kind", "latent", "params")]
        t.setColumnCount(len(runs))
        t.setRowCount(len(rows))
        t.setHorizontalHeaderLabels([r.name for r in runs])
        labels = []
        bold = QFont(t.font())
        bold.setBold(True)
        best_bg = QColor(style.OK)
        best_bg.setAlphaF(0.25)
        for r, row in enumerate(rows):
            arrow = {"lower": " ↓", "higher": " ↑"}.get(row.better or "", "")
            labels.append(row.label + arrow)
            for c, value in enumerate(row.values):
                best = c in row.best
                item = QTableWidgetItem(format_value(value) + (f" {BEST_MARK}" if best else ""))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                tip = {"lower": "lower is better", "higher": "higher is better"}.get(row.better or "", row.note)
                if best:
                    item.setFont(bold)
                    item.setBackground(QBrush(best_bg))
                    tip = f"best of the ticked runs ({tip})"
                if row.section == "evaluation" and value is None:
                    why = self.errors.get(str(runs[c].path))
                    tip = f"not evaluated: {why}" if why else "not evaluated yet: press Evaluate ticked"
                item.setToolTip(tip)
                t.setItem(r, c, item)
        t.setVerticalHeaderLabels(labels)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def _fill_diff(self) -> None:
        runs = self.ticked()
        t = self.diff_table
        t.clear()
        diff = config_diff(runs) if len(runs) >= 2 else []
        t.setColumnCount(len(runs))
        t.setRowCount(len(diff))
        t.setHorizontalHeaderLabels([r.name for r in runs])
        t.setVerticalHeaderLabels([k for k, _ in diff])
        for r, (_key, values) in enumerate(diff):
            for c, value in enumerate(values):
                t.setItem(r, c, QTableWidgetItem(format_value(value)))
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def diff_rows(self) -> dict[str, list[str]]:
        """What the config diff table shows: {setting: [text per ticked run]}."""
        t = self.diff_table
        return {t.verticalHeaderItem(r).text(): [t.item(r, c).text() for c in range(t.columnCount())]
                for r in range(t.rowCount())}

    def metric_cells(self) -> dict[str, list[str]]:
        """What the metrics table shows: {row label: [cell text per ticked run]}."""
        t = self.metrics_table
        return {t.verticalHeaderItem(r).text(): [t.item(r, c).text() for c in range(t.columnCount())]
                for r in range(t.rowCount())}

    # ---- evaluating ------------------------------------------------------------------------------
    @Slot()
    def evaluate_ticked(self) -> None:
        """Evaluate the ticked runs without a stored evaluation, on a pool thread; `evaluated` follows."""
        if self._eval_task is not None:
            return
        paths = [str(i.path) for i in self.ticked() if i.evaluation is None and i.status != "writing"]
        if not paths:
            self.status.setText("Every ticked run has its evaluation already.")
            return
        task = Task(evaluate_many, paths, progress=True)
        task.signals.done.connect(self._on_evaluated)
        task.signals.failed.connect(self._on_evaluate_failed)
        task.signals.progress.connect(self._on_evaluate_progress)
        self._eval_task = task
        self.status.setText(f"Evaluating {len(paths)} run(s) …")
        self._update_buttons()
        _start(task)

    @Slot(int, int)
    def _on_evaluate_progress(self, done: int, total: int) -> None:
        if self._eval_task is not None and done < total:
            self.status.setText(f"Evaluating run {done + 1} of {total} …")

    @Slot(object)
    def _on_evaluated(self, results: dict) -> None:
        self._eval_task = None
        failed = []
        for info in self.infos:
            result = results.get(str(info.path))
            if isinstance(result, dict):
                info.evaluation = result
                self.errors.pop(str(info.path), None)
            elif isinstance(result, str):
                self.errors[str(info.path)] = result
                failed.append(f"{info.name}: {result}")
        self.status.setText("Evaluated." if not failed else "Could not evaluate " + "; ".join(failed))
        self._update_buttons()
        self._fill_metrics()
        self.evaluated.emit()

    @Slot(str)
    def _on_evaluate_failed(self, message: str) -> None:
        self._eval_task = None
        self.status.setText(f"Could not evaluate: {message}")
        self._update_buttons()
        self.evaluated.emit()
