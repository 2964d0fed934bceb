"""The "Look inside" panel: what the model's layers learned and how they behave.

* Gradients: the gradient norm of every layer at the end of each epoch (log scale). Live during
  training: the numbers come with each epoch's snapshot (its history), at no extra cost. A first
  layer whose gradient is orders of magnitude below the last one's is a vanishing gradient.
* Codes: per code dimension, mean, standard deviation, range and the share of images on which it is
  active, from the snapshot's validation codes. Live too.
* Filters and Activations: the first layer's filters and the decoder's output weights as images,
  and histograms of every hidden layer's activations on validation images (sparsity shows as a
  tall bar at zero). These run the model, so they are computed on demand (the Compute button) on a
  pool thread, from the current snapshot.

The panel receives numpy arrays and plain numbers only.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from ..core.inspect import ACTIVE_THRESHOLD, code_statistics, grad_norms_per_layer, inspect_snapshot
from ..core.latent import dim_name
from ..workers.tasks import Task, start
from . import imaging, style

MAX_IMAGES = 512  # validation images run through the model for the histograms
MAX_CODE_ROWS = 256  # code dimensions listed in the statistics table
_ALIVE: list[Task] = []  # running tasks outlive a closed panel (a pool thread still runs them)


def filter_mosaic(filters: np.ndarray, gap: int = 1, columns: int | None = None) -> np.ndarray:
    """Tile filters (n, C, h, w) into one image (C, H, W) in [0, 1]. Each filter is scaled on its own,
    symmetrically: 0.5 is a zero weight, brighter positive, darker negative. Gaps are mid-grey."""
    f = np.asarray(filters, dtype=np.float32)
    if f.ndim != 4 or f.shape[0] == 0:
        return np.full((1, 1, 1), 0.5, np.float32)
    n, c, h, w = f.shape
    scale = np.abs(f).reshape(n, -1).max(1)
    scale[scale == 0] = 1.0
    f = 0.5 + 0.5 * f / scale[:, None, None, None]
    cols = columns or max(1, math.ceil(math.sqrt(n * h / max(w, 1))))
    rows = math.ceil(n / cols)
    out = np.full((c, rows * (h + gap) + gap, cols * (w + gap) + gap), 0.5, np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + k * (w + gap)
        out[:, y:y + h, x:x + w] = f[i]
    return out


class InspectPanel(QWidget):
    computed = Signal()  # filters and histograms arrived (or failed: see `status`)

    def __init__(self, state, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Look inside")
        self.snapshot = None
        self.result: dict | None = None  # the last on-demand result: filters, decoder, activity
        self.result_epoch: int | None = None
        self._task: Task | None = None
        self.grad_items: dict[str, pg.PlotDataItem] = {}

        lay = QVBoxLayout(self)
        style.tune_layout(lay)
        bar = QHBoxLayout()
        self.compute_button = QPushButton("Compute filters and activations")
        self.compute_button.setAccessibleName("Compute filters and activations")
        self.compute_button.setToolTip("Run the current model on validation images (in the background) to show its "
                                       "filters, decoder weights and activation histograms.")
        self.status = QLabel("Train a model or open a run to look inside it.")
        self.status.setAccessibleName("Look inside status")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(style.muted_css(self))
        bar.addWidget(self.compute_button)
        bar.addWidget(self.status, 1)
        lay.addLayout(bar)

        self.tabs = QTabWidget()
        # filters
        filters = QWidget()
        fl = QHBoxLayout(filters)
        fl.setContentsMargins(0, 0, 0, 0)
        self.filter_image = imaging.ScaledImage(min_side=96, placeholder="Press Compute")
        self.filter_image.setAccessibleName("First layer filters")
        self.filter_image.setToolTip("What each unit of the first layer looks for: its input weights as an image "
                                     "(grey is zero, bright positive, dark negative; each scaled on its own).")
        self.decoder_image = imaging.ScaledImage(min_side=96, placeholder="Press Compute")
        self.decoder_image.setAccessibleName("Decoder output weights")
        self.decoder_image.setToolTip("What each unit feeding the output paints into the image.")
        for title, widget in (("First layer filters", self.filter_image), ("Decoder output weights", self.decoder_image)):
            col = QVBoxLayout()
            col.addWidget(QLabel(title))
            col.addWidget(widget, 1)
            fl.addLayout(col, 1)
        self.tabs.addTab(filters, "Filters")
        # activations
        self.hist_view = pg.GraphicsLayoutWidget()
        self.hist_view.setAccessibleName("Activation histograms")
        self.hist_view.setToolTip(f"Hidden-unit activations per layer on validation images. 'active' counts values "
                                  f"above {ACTIVE_THRESHOLD:g} in magnitude; a sparse layer piles up at zero.")
        self.hist_view.setBackground(self.palette().color(self.backgroundRole()))
        self.hist_plots: dict[str, pg.PlotItem] = {}
        self.tabs.addTab(self.hist_view, "Activations")
        # gradients
        self.grad_plot = pg.PlotWidget()
        self.grad_plot.setAccessibleName("Gradient norms per layer")
        self.grad_plot.setLogMode(y=True)
        self.grad_plot.setLabel("bottom", "epoch")
        self.grad_plot.setLabel("left", "gradient norm (last batch of the epoch)")
        self.grad_plot.showGrid(x=True, y=True, alpha=0.2)
        self.grad_legend = imaging.legend_above(self.grad_plot.getPlotItem(), columns=4)  # never over a curve
        self.grad_plot.setToolTip("Each layer's gradient norm at the end of every epoch. Norms that shrink layer after "
                                  "layer towards the input are vanishing gradients.")
        imaging.style_plot(self.grad_plot, self.palette(), legend_frame=False)
        self.tabs.addTab(self.grad_plot, "Gradients")
        # codes
        self.code_table = QTableWidget(0, 5)
        self.code_table.setAccessibleName("Code statistics")
        self.code_table.setHorizontalHeaderLabels(["mean", "std", "min", "max", "active"])
        self.code_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.code_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.code_table.setToolTip(f"Per code dimension, on the validation images. 'active': the share of images "
                                   f"on which |z| > {ACTIVE_THRESHOLD:g}. A dimension with a tiny std carries nothing.")
        self.tabs.addTab(self.code_table, "Codes")
        lay.addWidget(self.tabs, 1)

        self.compute_button.clicked.connect(self.compute)
        state.snapshotChanged.connect(self._on_snapshot)
        self.compute_button.setEnabled(False)
        if getattr(state, "snapshot", None) is not None:
            self._on_snapshot(state.snapshot)

    # ---- live: from each snapshot ------------------------------------------------------------
    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        self.snapshot = snapshot
        self.compute_button.setEnabled(snapshot is not None and self._task is None)
        if snapshot is None:
            self._show_grads({})
            self._show_codes(np.zeros((0, 0), np.float32))
            self.status.setText("Train a model or open a run to look inside it.")
            return
        self._show_grads(grad_norms_per_layer(list(snapshot.history)))
        self._show_codes(snapshot.codes)
        if self.result is not None and self.result_epoch != snapshot.epoch:
            self.status.setText(f"Filters and activations show epoch {self.result_epoch}; press Compute for "
                                f"epoch {snapshot.epoch}.")
        elif self.result is None:
            self.status.setText("Gradients and codes follow training. Press Compute for filters and activations.")

    def _show_grads(self, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        for name in list(self.grad_items):
            if name not in curves:
                self.grad_plot.removeItem(self.grad_items.pop(name))
        names = list(curves)
        for i, name in enumerate(names):
            xs, ys = curves[name]
            keep = ys > 0  # log scale
            item = self.grad_items.get(name)
            if item is None:
                color = QColor(imaging.TABLEAU10[i % len(imaging.TABLEAU10)])
                item = pg.PlotDataItem(pen=pg.mkPen(color, width=2), symbol="o", symbolSize=4,
                                       symbolBrush=pg.mkBrush(color), symbolPen=None)
                self.grad_plot.addItem(item)
                self.grad_items[name] = item
            item.setData(xs[keep], ys[keep])
        self.grad_legend.clear()
        for name in names:
            self.grad_legend.addItem(self.grad_items[name], name)

    def _show_codes(self, codes: np.ndarray) -> None:
        codes = np.asarray(codes)
        stats = code_statistics(codes) if codes.ndim == 2 else code_statistics(np.zeros((0, 0)))
        n = min(len(stats["mean"]), MAX_CODE_ROWS)
        t = self.code_table
        t.setRowCount(n)
        t.setVerticalHeaderLabels([dim_name(i) for i in range(n)])
        for r in range(n):
            for c, key in enumerate(("mean", "std", "min", "max", "active")):
                v = stats[key][r]
                text = "–" if not np.isfinite(v) else (f"{100 * v:.0f}%" if key == "active" else f"{v:.3g}")
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                t.setItem(r, c, item)

    def code_rows(self) -> dict[str, list[str]]:
        t = self.code_table
        return {t.verticalHeaderItem(r).text(): [t.item(r, c).text() for c in range(t.columnCount())]
                for r in range(t.rowCount())}

    # ---- on demand: filters and histograms ---------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._task is not None

    @Slot()
    def compute(self) -> None:
        """Filters, decoder weights and histograms of the current snapshot, on a pool thread."""
        snap = self.snapshot
        if snap is None or self._task is not None:
            return
        images = np.asarray(snap.images[:MAX_IMAGES], dtype=np.float32)
        task = Task(inspect_snapshot, snap.model, images)
        task.signals.done.connect(self._on_computed)
        task.signals.failed.connect(self._on_failed)
        self._task = task
        self._task_epoch = snap.epoch
        self.compute_button.setEnabled(False)
        self.status.setText("Computing filters and activations …")
        _ALIVE[:] = [t for t in _ALIVE if not t.finished_event.is_set()] + [task]
        start(task)

    @Slot(object)
    def _on_computed(self, result: dict) -> None:
        self._task = None
        self.result, self.result_epoch = result, self._task_epoch
        self.compute_button.setEnabled(self.snapshot is not None)
        self.filter_image.set_image(filter_mosaic(result["filters"]))
        self.decoder_image.set_image(filter_mosaic(result["decoder"]))
        self._show_histograms(result["activity"])
        sparse = [f"{a.name} {100 * a.fraction_active:.0f}%" for a in result["activity"]]
        self.status.setText(f"Epoch {self.result_epoch}: {len(result['filters'])} filters; active values per layer: "
                            + ", ".join(sparse) + ".")
        self.computed.emit()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._task = None
        self.compute_button.setEnabled(self.snapshot is not None)
        self.status.setText(f"Could not look inside the model: {message}")
        self.computed.emit()

    def _show_histograms(self, activity) -> None:
        self.hist_view.clear()
        self.hist_plots = {}
        fg = self.palette().color(self.foregroundRole())
        for i, a in enumerate(activity):
            plot = self.hist_view.addPlot(row=i // 2, col=i % 2)
            plot.setTitle(f"{a.name}: {100 * a.fraction_active:.0f}% active, {a.dead_units} of {a.units} units silent",
                          color=fg, size="9pt")
            color = QColor(imaging.TABLEAU10[i % len(imaging.TABLEAU10)])
            bars = pg.PlotDataItem(a.edges, a.counts, stepMode="center", fillLevel=0, brush=pg.mkBrush(color),
                                   pen=pg.mkPen(color))
            plot.addItem(bars)
            plot.hideAxis("left")
            self.hist_plots[a.name] = plot
