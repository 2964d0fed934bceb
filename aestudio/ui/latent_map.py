"""The "Latent map" panel: the validation codes as points on a plane, coloured by class.

A 2-D latent space is drawn as it is; a larger one is projected to 2-D (PCA by default, or
t-SNE / UMAP) off the GUI thread; a 1-D code is drawn as a strip per class (x is the code,
y only separates the classes). Hovering shows the nearest image; clicking anywhere decodes
that spot of the plane: the point itself in 2-D, or the projection's inverse otherwise (exact
for PCA, interpolated between nearby codes for t-SNE / UMAP).

Drawing: one ScatterPlotItem per class (one brush each, no pens), updated with `setData`;
hover and click use a k-d tree on the 2-D points, never pyqtgraph's per-point hit testing.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QLabel, QProgressBar,
                               QToolButton, QVBoxLayout, QWidget)
from superqt import QFlowLayout

from ..core.latent import Projection, available_methods
from ..workers.tasks import Task, start
from ..workers.training import epoch_label
from . import imaging
from .state import StudioState

METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
METHOD_HELP = {
    "pca": "PCA: the flat view that keeps the most variance of the codes. Distances and directions are "
           "faithful (a linear map), and clicking decodes exactly the code on that plane.",
    "tsne": "t-SNE: keeps neighbours together, so clusters stand out, but distances between clusters and "
            "cluster sizes mean little. Clicking decodes a blend of the nearest codes. Slow: up to a minute.",
    "umap": "UMAP: like t-SNE keeps neighbourhoods and is faster; global layout is somewhat more meaningful. "
            "Clicking decodes a blend of the nearest codes.",
}
PLOT_HELP = ("Each point is one validation image's code. Hover a point to see its image; click anywhere, "
             "between points too, to decode that spot into a new image. Drag to pan, scroll to zoom.")
HOVER_PX = 18  # hover shows a point only this close to the cursor (screen pixels)
SEED = 0


# Tasks still running, kept alive here so a runnable never outlives its Python object (a panel may be
# closed while its projection runs); finished ones are dropped whenever a new one starts.
_IN_FLIGHT: set[Task] = set()


def _fit_projection(codes: np.ndarray, method: str, seed: int) -> Projection:
    """Runs on a worker thread."""
    return Projection().fit(codes, method=method, seed=seed)



class _Points(pg.ScatterPlotItem):
    """A scatter item that the mouse passes through, with its bounding rectangle remembered.

    pyqtgraph finds the items under every click and hover by asking each for its bounding rectangle,
    which a ScatterPlotItem recomputes (data bounds plus a pixel margin from the view's transform)
    on every call: about 120 calls and 5 ms per click on the map's ten classes, on the GUI thread,
    measured with cProfile in benchmarks/responsiveness.py. The rectangle only changes when
    pyqtgraph drops its cached data bounds (`self.bounds`, replaced by a new list on new data, new
    spot sizes or a new view transform), so it is kept until then. Clicks are not searched among
    the points either: the map decodes the clicked spot itself and hovers with its own k-d tree."""

    _rect_for: list | None = None
    _rect = None

    def boundingRect(self):  # noqa: N802 (Qt)
        if self._rect_for is not self.bounds:
            rect = super().boundingRect()  # fills self.bounds in place
            self._rect, self._rect_for = rect, self.bounds
        return QRectF(self._rect)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph)
        ev.ignore()


class _Marker(_Points):
    """A one-point mark on the map (hover ring, click cross, the sliders' code). Moving it repaints
    its own few pixels only: pyqtgraph would otherwise treat every move as a change of the data's
    extent and, while the view follows the data (auto-range), re-measure all 10,000 points and
    repaint the whole plot, axes included (5 ms per move, 60 times a second while a slider is
    dragged). Marks never count towards the range (they are added with ignoreBounds)."""

    def informViewBoundsChanged(self) -> None:  # noqa: N802 (pyqtgraph)
        pass

class _Thumb(QFrame):
    """The hover overlay: a small image and its label."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.image = QLabel(self)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel(self)
        self.text.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 3)
        lay.setSpacing(2)
        lay.addWidget(self.image)
        lay.addWidget(self.text)
        self.hide()


class _ClassChips(QWidget):
    """A legend outside the plot: one toggle per class, in its colour; unticked classes are hidden."""

    toggled = Signal(int, bool)

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.buttons: list[QToolButton] = []
        # wraps onto new rows, so class names keep their full text instead of being elided
        self.flow = QFlowLayout(self)
        self.flow.setContentsMargins(0, 0, 0, 0)
        self.flow.setHorizontalSpacing(2)
        self.flow.setVerticalSpacing(0)

    def set_classes(self, names: list[str], colors: list[QColor]) -> None:
        for b in self.buttons:
            self.flow.removeWidget(b)
            b.deleteLater()
        self.buttons = []
        if not names:
            self.hide()
            return
        for name, color in zip(names, colors):
            b = QToolButton(self)
            b.setText(name)
            b.setCheckable(True)
            b.setChecked(True)
            b.setAutoRaise(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setIcon(self._dot_icon(color))
            b.setAccessibleName(f"Show class {name}")
            b.setToolTip(f"Show or hide the points of class \"{name}\" (its colour on the map).")
            b.toggled.connect(self._on_toggled)
            self.flow.addWidget(b)
            self.buttons.append(b)
        self.show()

    @staticmethod
    def _dot_icon(color: QColor) -> QIcon:
        icon = QIcon()
        for state, alpha in ((QIcon.State.On, 1.0), (QIcon.State.Off, 0.2)):
            pm = QPixmap(12, 12)
            pm.fill(Qt.GlobalColor.transparent)
            p = QPainter(pm)
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            c = QColor(color)
            c.setAlphaF(alpha)
            p.setBrush(c)
            p.setPen(Qt.PenStyle.NoPen)
            p.drawEllipse(1, 1, 10, 10)
            p.end()
            for mode in (QIcon.Mode.Normal, QIcon.Mode.Active):
                icon.addPixmap(pm, mode, state)
        return icon

    @Slot(bool)
    def _on_toggled(self, on: bool) -> None:
        b = self.sender()
        if b in self.buttons:
            self.toggled.emit(self.buttons.index(b), on)


class LatentMapPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Latent map")

        # what is on show: a coherent set of points, the snapshot they came from, and the way back
        self.snapshot = None
        self.points = np.empty((0, 2), np.float32)  # (M, 2) as drawn
        self.point_rows = np.empty(0, np.int64)  # (M,) row of each point in snapshot.codes
        self.projection: Projection | None = None  # None when the codes are drawn directly
        self.mode = "none"  # "none" | "direct" (2-D) | "strip" (1-D) | "projection"
        self.last_code: np.ndarray | None = None
        self.hover_index = -1
        self._flip = np.ones(2, np.float32)
        self._tree = None  # a scipy cKDTree of the shown points, built on first use
        self._tree_idx = np.empty(0, np.int64)  # tree row -> point index (hidden classes left out)
        self._scale = np.ones(2, np.float32)
        self._task: Task | None = None
        self._task_request: tuple | None = None
        self._pending = False
        self._class_items: list[pg.ScatterPlotItem] = []
        self._class_key: tuple | None = None

        # -- controls --
        self.method_combo = QComboBox(self)
        self.method_combo.setAccessibleName("Projection method")
        for m in available_methods():
            self.method_combo.addItem(METHOD_NAMES.get(m, m), m)
            self.method_combo.setItemData(self.method_combo.count() - 1, METHOD_HELP.get(m, ""),
                                          Qt.ItemDataRole.ToolTipRole)
        self.method_combo.setToolTip(self._combo_tip())
        self.method_combo.currentIndexChanged.connect(self._on_method_changed)
        self.method_label = QLabel("Projection:", self)
        self.method_label.setBuddy(self.method_combo)
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.setAccessibleName("Projection in progress")
        self.busy.hide()
        self.busy_label = QLabel(self)
        self.busy_label.hide()
        self.info = QLabel("Train a model to see where it puts each image in its latent space.", self)
        self.info.setAccessibleName("Latent map status")
        self.info.setWordWrap(True)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(6)
        top.addWidget(self.method_label)
        top.addWidget(self.method_combo)
        top.addWidget(self.busy)
        top.addWidget(self.busy_label)
        top.addStretch(1)

        # -- plot --
        self.plot = pg.PlotWidget(self, axisItems=imaging.opaque_axes())  # cheap grid while a model trains
        self.plot.setAccessibleName("Latent map plot")
        self.plot.setToolTip(PLOT_HELP)
        pi = self.plot.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.12)
        pi.hideButtons()
        for axis in ("left", "bottom"):
            pi.getAxis(axis).enableAutoSIPrefix(False)
        self.vb = pi.getViewBox()
        self.ring = _Marker(size=15, symbol="o", brush=None, pxMode=True)
        self.ring.setZValue(20)
        self.cross = _Marker(size=18, symbol="+", pxMode=True)
        self.cross.setZValue(21)
        # where the latent sliders' code lies on the map: one item, moved with setData
        self.code_mark = _Marker(size=17, symbol="star", pxMode=True)
        self.code_mark.setZValue(22)
        self.code_mark.setToolTip("The code the latent sliders hold.")
        self.marked_code: np.ndarray | None = None
        pi.addItem(self.ring, ignoreBounds=True)
        pi.addItem(self.cross, ignoreBounds=True)
        pi.addItem(self.code_mark, ignoreBounds=True)
        self.chips = _ClassChips(self)
        self.chips.toggled.connect(self._on_class_toggled)
        self.chips.hide()
        self.thumb = _Thumb(self)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        lay.addLayout(top)
        lay.addWidget(self.chips)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.info)
        self._apply_palette()
        self._set_controls()
        self._set_axes_visible(False)  # no codes yet: no axes

        scene = self.plot.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self.plot.viewport().installEventFilter(self)
        state.snapshotChanged.connect(self._on_snapshot)
        state.codeChosen.connect(self._on_code_chosen)

    # ---- public API ------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.method_combo.currentData() or "pca"

    def set_method(self, method: str) -> None:
        i = self.method_combo.findData(method)
        if i < 0:
            raise ValueError(f"projection {method!r} is not available here")
        self.method_combo.setCurrentIndex(i)

    @property
    def busy_computing(self) -> bool:
        return self._task is not None

    def click_at(self, x: float, y: float) -> np.ndarray | None:
        """Decode the code at map position (x, y), publish the image and mark the spot. Returns the code."""
        snap = self.snapshot
        if snap is None or self.mode == "none":
            return None
        code = self.code_at(x, y)
        image = snap.decode(code)[0]
        self.last_code = code
        self.cross.setData([x], [y])
        self.state.show_decoded(image, f"latent map ({x:.2f}, {y:.2f})")
        if self.mode == "direct":
            how = "exactly: the map of a 2-D code is the code itself"
        elif self.mode == "strip":
            how = "the horizontal position is the code"
        else:
            method = METHOD_NAMES.get(self.projection.method, self.projection.method)
            how = ("through the inverse of PCA" if self.projection.method == "pca" else
                   f"blended from the nearest codes ({method} has no exact inverse)")
        self.state.choose_code(code.copy(), "map", f"The code at the map point ({x:.2f}, {y:.2f}), {how}.")
        self.mark_code(code)
        return code

    def map_position(self, code) -> tuple[float, float] | None:
        """Where a code (latent,) lies on the map as drawn, or None when nothing is drawn."""
        if self.snapshot is None or self.mode == "none":
            return None
        z = np.asarray(code, np.float32).reshape(-1)
        if self.mode == "direct" and len(z) == 2:
            return float(z[0]), float(z[1])
        if self.mode == "strip" and len(z) == 1:
            return float(z[0]), -0.75  # below the class strips
        if self.mode == "projection" and self.projection is not None and len(z) == self.projection.codes.shape[1]:
            p = np.asarray(self.projection.locate(z[None]), np.float32)[0] * self._flip
            return float(p[0]), float(p[1])
        return None

    def mark_code(self, code) -> None:
        """Mark a code (the sliders') on the map; None removes the mark."""
        self.marked_code = None if code is None else np.asarray(code, np.float32).reshape(-1).copy()
        self._place_mark()

    def code_at(self, x: float, y: float) -> np.ndarray:
        """The latent code this panel decodes for map position (x, y)."""
        if self.mode == "direct":
            return np.array([x, y], np.float32)
        if self.mode == "strip":
            return np.array([x], np.float32)
        p = np.array([[x, y]], np.float32) * self._flip
        return np.asarray(self.projection.inverse(p)[0], np.float32)

    def hover_at(self, x: float, y: float, max_px: float | None = None) -> int:
        """Highlight the point nearest to map position (x, y) and show its image. Returns its index in
        `points` (-1 when there are none, or none within `max_px` screen pixels)."""
        i = self._nearest(x, y, max_px)
        if i < 0:
            self._hide_hover()
            return -1
        if i != self.hover_index or not self.thumb.isVisible():  # a mouse move over the same point redraws nothing
            self.hover_index = i
            px, py = self.points[i]
            self.ring.setData([px], [py])
            self._fill_thumb(i)
        self._place_thumb(i)  # the view may have moved under the cursor
        return i

    @Slot(object, str, str)
    def _on_code_chosen(self, code, origin: str, _description: str) -> None:
        if origin != "map":
            self.mark_code(code)

    def _place_mark(self) -> None:
        pos = None if self.marked_code is None else self.map_position(self.marked_code)
        if pos is None:
            self.code_mark.setData([], [])
        else:
            self.code_mark.setData([pos[0]], [pos[1]])

    # ---- snapshot and projection -----------------------------------------------------------------
    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        if snapshot is None:
            self._clear()
            return
        latent = snapshot.codes.shape[1] if snapshot.codes.ndim == 2 else 1
        if latent > 2:
            self._request_projection(snapshot)
        else:
            self._set_controls(latent)
            rows = np.arange(len(snapshot.codes))
            codes = np.asarray(snapshot.codes, np.float32).reshape(len(rows), -1)
            if latent == 2:
                self._show(snapshot, codes, rows, None, "direct")
            else:
                self._show(snapshot, self._strip_points(codes[:, 0], snapshot.labels), rows, None, "strip")

    @Slot(int)
    def _on_method_changed(self, _index: int) -> None:
        self.method_combo.setToolTip(self._combo_tip())
        snap = self.state.snapshot or self.snapshot
        if snap is not None and snap.codes.ndim == 2 and snap.codes.shape[1] > 2:
            self._request_projection(snap)

    def _request_projection(self, snapshot) -> None:
        self._set_controls(snapshot.codes.shape[1])
        if self._task is not None:  # one at a time; the latest request runs when this one ends
            self._pending = True
            return
        method = self.method
        codes = np.asarray(snapshot.codes, np.float32)
        task = Task(_fit_projection, codes, method, SEED)
        task.signals.done.connect(self._on_projection_done)
        task.signals.failed.connect(self._on_projection_failed)
        self._task, self._task_request = task, (snapshot, method)
        self._pending = False
        self.busy.show()
        n = len(codes)
        self.busy_label.setText(f"Computing {METHOD_NAMES.get(method, method)} of {n:,} codes…" +
                                (" (up to a minute)" if method == "tsne" and n > 2000 else ""))
        self.busy_label.show()
        _IN_FLIGHT.difference_update({t for t in _IN_FLIGHT if t.finished_event.is_set()})
        _IN_FLIGHT.add(task)
        start(task)

    @Slot(object)
    def _on_projection_done(self, projection) -> None:
        snapshot, method = self._task_request
        self._task = self._task_request = None
        self.busy.hide()
        self.busy_label.hide()
        if method == self.method or self.mode == "none":
            rows = np.asarray(projection.indices if projection.indices is not None else
                              np.arange(len(projection.points)))
            self._show(snapshot, np.asarray(projection.points, np.float32), rows, projection, "projection")
        self._run_pending()

    @Slot(str)
    def _on_projection_failed(self, message: str) -> None:
        _snapshot, method = self._task_request
        self._task = self._task_request = None
        self.busy.hide()
        self.busy_label.hide()
        self.info.setText(f"{METHOD_NAMES.get(method, method)} failed: {message}")
        self.state.errorMessage.emit(f"Latent map: {METHOD_NAMES.get(method, method)} failed: {message}")
        self._run_pending()

    def _run_pending(self) -> None:
        if self._pending and self.state.snapshot is not None:
            snap = self.state.snapshot
            if snap.codes.ndim == 2 and snap.codes.shape[1] > 2:
                self._request_projection(snap)
                return
        self._pending = False

    # ---- drawing ------------------------------------------------------------------------------------
    def _show(self, snapshot, points: np.ndarray, rows: np.ndarray, projection, mode: str) -> None:
        previous_rows, previous_points = self.point_rows, self.points
        fresh = (self.snapshot is None or mode != self.mode or
                 (projection is not None and self.projection is not None and
                  projection.method != self.projection.method))
        if mode == "projection":
            points = self._align(points, rows, previous_points, previous_rows, fresh)
        self.snapshot, self.projection, self.mode = snapshot, projection, mode
        self.points = np.ascontiguousarray(points, np.float32)
        self.point_rows = np.asarray(rows, np.int64)
        self._draw_points()
        self._build_tree()
        self._hide_hover()
        self.cross.setData([], [])
        self._place_mark()
        self._label_axes()
        self._set_axes_visible(True)
        if fresh:
            self.vb.enableAutoRange()
        self._update_info()

    def _align(self, points, rows, prev_points, prev_rows, fresh) -> np.ndarray:
        """Flip projected axes to match the previous map (PCA / t-SNE signs are arbitrary), so the
        map does not mirror itself from one epoch to the next. The flip is undone in `code_at`."""
        self._flip = np.ones(2, np.float32)
        if fresh or len(prev_rows) != len(rows) or not np.array_equal(prev_rows, rows) or len(rows) < 3:
            return points
        for d in range(2):
            a, b = points[:, d], prev_points[:, d]
            if np.std(a) > 0 and np.std(b) > 0 and np.corrcoef(a, b)[0, 1] < 0:
                self._flip[d] = -1.0
        return points * self._flip

    def _draw_points(self) -> None:
        snap = self.snapshot
        labels = None if snap.labels is None else np.asarray(snap.labels)[self.point_rows]
        names = list(snap.class_names) if labels is not None else []
        if labels is not None and len(labels) and labels.max() >= len(names):
            names += [str(k) for k in range(len(names), int(labels.max()) + 1)]
        key = tuple(names) if labels is not None else ("codes",)
        if key != self._class_key:
            self._make_class_items(key, labeled=labels is not None)
        n = len(self.points)
        size = 6 if n < 2000 else 4 if n < 20000 else 3
        if labels is None:
            self._class_items[0].setData(pos=self.points, size=size)
            return
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(len(names) + 1))
        for k, item in enumerate(self._class_items):
            item.setData(pos=self.points[order[bounds[k]:bounds[k + 1]]], size=size)

    def _make_class_items(self, key: tuple, labeled: bool) -> None:
        pi = self.plot.getPlotItem()
        for item in self._class_items:
            pi.removeItem(item)
        self._class_items = []
        colors = imaging.class_colors(len(key)) if labeled else [QColor(imaging.TABLEAU10[0])]
        for name, color in zip(key, colors):
            c = QColor(color)
            c.setAlphaF(0.75)
            item = _Points(pxMode=True, size=4, pen=None, brush=pg.mkBrush(c), name=str(name))
            pi.addItem(item)
            self._class_items.append(item)
        self.chips.set_classes([str(k) for k in key] if labeled and len(key) <= 30 else [], colors)
        self._class_key = key

    def _strip_points(self, code: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        rng = np.random.default_rng(SEED)
        jitter = rng.uniform(-0.3, 0.3, len(code)).astype(np.float32)
        y = jitter if labels is None else np.asarray(labels, np.float32) + jitter
        return np.stack([np.asarray(code, np.float32), y], axis=1)

    def _label_axes(self) -> None:
        pi = self.plot.getPlotItem()
        left, bottom = pi.getAxis("left"), pi.getAxis("bottom")
        left.setTicks(None)
        if self.mode == "direct":
            x, y = "z1 (code dimension 1)", "z2 (code dimension 2)"
            tip = ("The code has two numbers, so each point sits exactly at its code: nothing is projected "
                   "and clicking decodes exactly the code under the cursor.")
        elif self.mode == "strip":
            x = "z (the one code dimension)"
            snap = self.snapshot
            if snap.labels is not None:
                y = "class (spread out so points do not overlap)"
                left.setTicks([[(k, name) for k, name in enumerate(snap.class_names)]])
            else:
                y = "random spread (no meaning)"
            tip = ("The code is a single number (the horizontal position); the vertical position only separates "
                   "the classes. Clicking decodes the number under the cursor.")
        else:
            method = self.projection.method
            name = METHOD_NAMES.get(method, method)
            x, y = f"{name} 1", f"{name} 2"
            if method == "pca":
                ratios = getattr(getattr(self.projection, "_pca", None), "explained_variance_ratio_", None)
                if ratios is not None and len(ratios) >= 2:
                    x = f"PC 1 ({100 * ratios[0]:.0f}% of the code variance)"
                    y = f"PC 2 ({100 * ratios[1]:.0f}%)"
            tip = METHOD_HELP.get(method, "")
        pi.setLabel("bottom", x)
        pi.setLabel("left", y)
        for axis in (left, bottom):
            axis.setToolTip(tip)

    @property
    def axes_visible(self) -> bool:
        return self.plot.getPlotItem().getAxis("bottom").isVisible()

    def _set_axes_visible(self, on: bool) -> None:
        pi = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            (pi.showAxis if on else pi.hideAxis)(axis)

    def _update_info(self) -> None:
        snap = self.snapshot
        latent = snap.codes.shape[1] if snap.codes.ndim == 2 else 1
        n, total = len(self.points), len(snap.codes)
        shown = f"{n:,} validation codes" + (f" (a random {n:,} of {total:,})" if n < total else "")
        if self.mode == "projection":
            how = f"{latent}-D codes by {METHOD_NAMES.get(self.projection.method, self.projection.method)}"
        elif self.mode == "direct":
            how = "2-D codes, drawn as they are"
        else:
            how = "1-D codes"
        self.info.setText(f"{epoch_label(snap.epoch).capitalize()}: {shown}; {how}. Hover a point to see its image; "
                          "click anywhere to decode that spot.")

    def _set_controls(self, latent: int | None = None) -> None:
        projected = latent is not None and latent > 2
        self.method_combo.setEnabled(projected)
        self.method_label.setEnabled(projected)
        if latent is not None and not projected:
            self.method_combo.setToolTip(f"This model has a {latent}-D code, so the map shows the codes "
                                         "themselves: no projection is needed.")
        else:
            self.method_combo.setToolTip(self._combo_tip())

    def _combo_tip(self) -> str:
        lines = ["How to flatten codes with more than two dimensions onto the map."]
        for m in available_methods():
            lines.append(METHOD_HELP.get(m, m))
        if "umap" not in available_methods():
            lines.append("UMAP appears here when the optional umap-learn package is installed.")
        return "<br><br>".join(lines)

    def _clear(self) -> None:
        self.snapshot = None
        self.projection = None
        self.mode = "none"
        self.points = np.empty((0, 2), np.float32)
        self.point_rows = np.empty(0, np.int64)
        self._tree = None
        pi = self.plot.getPlotItem()
        for item in self._class_items:  # the old data set's classes (and their legend) go with it
            pi.removeItem(item)
        self._class_items = []
        self._class_key = None
        self.chips.set_classes([], [])
        self._hide_hover()
        self.cross.setData([], [])
        self.marked_code = None
        self.code_mark.setData([], [])
        self._set_axes_visible(False)
        self._set_controls()
        self.info.setText("Train a model to see where it puts each image in its latent space.")

    # ---- hover ------------------------------------------------------------------------------------------
    def _build_tree(self) -> None:
        self._tree = None
        if len(self.points) == 0:
            return
        span = np.ptp(self.points, axis=0)
        self._scale = np.where(span > 0, 1.0 / np.maximum(span, 1e-12), 1.0).astype(np.float32)
        self._tree_idx = np.arange(len(self.points))
        hidden = [k for k, item in enumerate(self._class_items) if not item.isVisible()]
        snap = self.snapshot
        if hidden and snap is not None and snap.labels is not None:
            labels = np.asarray(snap.labels)[self.point_rows]
            self._tree_idx = np.flatnonzero(~np.isin(labels, hidden))
        if len(self._tree_idx):
            from scipy.spatial import cKDTree  # here, not at import: scipy.spatial costs a second at start-up

            self._tree = cKDTree(self.points[self._tree_idx] * self._scale)

    @Slot(int, bool)
    def _on_class_toggled(self, k: int, on: bool) -> None:
        if 0 <= k < len(self._class_items):
            self._class_items[k].setVisible(on)
            self._hide_hover()
            self._build_tree()

    def _nearest(self, x: float, y: float, max_px: float | None) -> int:
        if self._tree is None:
            return -1
        k = min(8, len(self._tree_idx))
        _, idx = self._tree.query(np.array([x, y], np.float32) * self._scale, k=k)
        idx = self._tree_idx[np.atleast_1d(idx)]
        # of the few nearest in data units, take the nearest on screen (axes may be scaled differently)
        px = self._pixels_per_unit()
        d = np.hypot((self.points[idx, 0] - x) * px[0], (self.points[idx, 1] - y) * px[1])
        j = int(np.argmin(d))
        if max_px is not None and d[j] > max_px:
            return -1
        return int(idx[j])

    def _pixels_per_unit(self) -> np.ndarray:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        r = self.vb.sceneBoundingRect()
        return np.array([r.width() / max(x1 - x0, 1e-12), r.height() / max(y1 - y0, 1e-12)])

    def _fill_thumb(self, i: int) -> None:
        snap = self.snapshot
        row = int(self.point_rows[i])
        self.thumb.image.setPixmap(imaging.to_pixmap(snap.images[row], 72))
        text = f"#{row + 1}"
        if snap.labels is not None:
            k = int(snap.labels[row])
            text += f" · {snap.class_names[k] if k < len(snap.class_names) else k}"
        self.thumb.text.setText(text)
        self.thumb.adjustSize()

    def _place_thumb(self, i: int) -> None:
        x, y = self.points[i]
        scene_pt = self.vb.mapViewToScene(QPointF(float(x), float(y)))
        at = self.plot.viewport().mapTo(self, self.plot.mapFromScene(scene_pt))
        pos = at + QPoint(14, 14)
        if pos.x() + self.thumb.width() > self.width():
            pos.setX(at.x() - 14 - self.thumb.width())
        if pos.y() + self.thumb.height() > self.height():
            pos.setY(at.y() - 14 - self.thumb.height())
        self.thumb.move(pos)
        self.thumb.show()
        self.thumb.raise_()

    def _hide_hover(self) -> None:
        self.hover_index = -1
        self.ring.setData([], [])
        self.thumb.hide()

    # ---- mouse ------------------------------------------------------------------------------------------
    def _in_plot_area(self, scene_pos) -> bool:
        return self.vb.sceneBoundingRect().contains(scene_pos)

    @Slot(object)
    def _on_mouse_moved(self, scene_pos) -> None:
        if self._tree is None or not self._in_plot_area(scene_pos):
            self._hide_hover()
            return
        p = self.vb.mapSceneToView(scene_pos)
        self.hover_at(p.x(), p.y(), max_px=HOVER_PX)

    @Slot(object)
    def _on_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        scene_pos = event.scenePos()
        if not self._in_plot_area(scene_pos):
            return
        p = self.vb.mapSceneToView(scene_pos)
        self.click_at(p.x(), p.y())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        if event.type() == QEvent.Type.Leave:
            self._hide_hover()
        return False

    # ---- theme ---------------------------------------------------------------------------------------------
    def _apply_palette(self) -> None:
        imaging.style_plot(self.plot, self.palette())
        fg = self.palette().color(QPalette.ColorRole.Text)
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        self.ring.setPen(pg.mkPen(fg, width=2))
        self.cross.setPen(pg.mkPen(accent, width=3))
        self.cross.setBrush(pg.mkBrush(accent))
        self.code_mark.setPen(pg.mkPen(fg, width=1.5))
        self.code_mark.setBrush(pg.mkBrush(accent))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._apply_palette()
        super().changeEvent(event)
