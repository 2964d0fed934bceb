"""Small shared helpers for showing images and plots in the studio.

* numpy images (C, H, W) or (H, W), float in [0, 1] (or uint8), to `QImage` / `QPixmap`,
  upscaled nearest-neighbour so pixels stay crisp;
* a perceptual heat-map colouring (`heatmap`) and its colour bar;
* a categorical palette for class colours (`class_colors`);
* `ScaledImage`, a widget that paints one image as large as fits, nearest-neighbour, keeping
  its aspect ratio;
* `style_plot`, which takes a pyqtgraph plot's colours from a Qt palette (light / dark themes);
* `OpaqueAxis`, an axis whose lines and grid are drawn in opaque colours, under the data.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

# Tableau 10: distinct, readable on light and dark backgrounds.
TABLEAU10 = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
             "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


# ---- numpy -> Qt --------------------------------------------------------------------------------
def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) float in [0, 1] (or uint8) -> C-contiguous uint8 (H, W) or (H, W, 3)."""
    a = np.asarray(image)
    if a.ndim == 3:
        if a.shape[0] == 1:
            a = a[0]
        elif a.shape[0] == 3:
            a = a.transpose(1, 2, 0)
        elif a.shape[-1] not in (1, 3):
            raise ValueError(f"expected 1 or 3 channels, got image of shape {a.shape}")
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
    elif a.ndim != 2:
        raise ValueError(f"expected an image (C, H, W) or (H, W), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32, copy=False)), 0.0, 1.0) * 255.0 + 0.5
        a = a.astype(np.uint8)
    return np.ascontiguousarray(a)


def upscale(a: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (H, W) or (H, W, C) by an integer factor."""
    if factor <= 1:
        return a
    return np.ascontiguousarray(np.repeat(np.repeat(a, factor, axis=0), factor, axis=1))


def scale_factor(shape: tuple[int, ...], target: int) -> int:
    """The integer factor that brings the longer image side closest to `target` pixels (>= 1)."""
    side = max(shape[-2:]) if len(shape) >= 2 else 1
    return max(1, int(round(target / max(side, 1))))


def qimage_from_uint8(a: np.ndarray) -> QImage:
    """uint8 (H, W) grayscale or (H, W, 3) RGB -> a QImage that owns a copy of the pixels."""
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    elif a.shape[2] == 3:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    elif a.shape[2] == 4:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGBA8888)
    else:
        raise ValueError(f"cannot make a QImage from shape {a.shape}")
    return img.copy()  # detach from the numpy buffer


def to_qimage(image: np.ndarray, size: int | None = None) -> QImage:
    """A numpy image (see `to_uint8`) as a QImage, upscaled nearest-neighbour to about `size` px."""
    a = to_uint8(image)
    if size:
        a = upscale(a, scale_factor(a.shape[:2], size))
    return qimage_from_uint8(a)


def to_pixmap(image: np.ndarray, size: int | None = 64) -> QPixmap:
    """A numpy image as a QPixmap, upscaled nearest-neighbour to about `size` px on its longer side."""
    return QPixmap.fromImage(to_qimage(image, size))


def image_mode(image: np.ndarray) -> str:
    """'gray' or 'rgb' for an image (C, H, W) / (H, W)."""
    a = np.asarray(image)
    return "rgb" if a.ndim == 3 and 3 in (a.shape[0], a.shape[-1]) else "gray"


# ---- heat maps -------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def colormap_lut(name: str = "viridis") -> np.ndarray:
    """(256, 3) uint8 lookup table of a pyqtgraph colour map (viridis, inferno, CET-L*, ...)."""
    cmap = pg.colormap.get(name)
    lut = cmap.getLookupTable(0.0, 1.0, 256, alpha=False)
    lut = np.asarray(lut)
    if lut.dtype != np.uint8:
        lut = np.clip(lut * (255.0 if lut.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    lut = np.ascontiguousarray(lut[:, :3])
    lut.setflags(write=False)
    return lut


def heatmap(values: np.ndarray, vmin: float = 0.0, vmax: float | None = None, cmap: str = "viridis") -> np.ndarray:
    """Colour a 2-D array: (H, W) floats -> (H, W, 3) uint8, `vmin`..`vmax` mapped onto `cmap`."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 3:  # (C, H, W): average the channels
        v = v.mean(0)
    if vmax is None:
        vmax = float(np.nanmax(v)) if v.size else 1.0
    span = max(float(vmax) - float(vmin), 1e-12)
    idx = np.clip((np.nan_to_num(v) - vmin) * (255.0 / span), 0, 255).astype(np.uint8)
    return colormap_lut(cmap)[idx]


def colorbar(width: int = 16, height: int = 160, cmap: str = "viridis", horizontal: bool = False) -> QImage:
    """A colour-bar image, high values at the top (or at the right when `horizontal`)."""
    lut = colormap_lut(cmap)
    if horizontal:
        idx = np.linspace(0, 255, width).astype(np.uint8)
        a = np.repeat(lut[idx][None, :, :], height, axis=0)
    else:
        idx = np.linspace(255, 0, height).astype(np.uint8)
        a = np.repeat(lut[idx][:, None, :], width, axis=1)
    return qimage_from_uint8(a)


# ---- colours -----------------------------------------------------------------------------------------
def class_colors(n: int) -> list[QColor]:
    """`n` distinct colours for classes: Tableau 10, then evenly spaced hues."""
    if n <= len(TABLEAU10):
        return [QColor(c) for c in TABLEAU10[:n]]
    return [QColor.fromHsvF((i * 0.618034) % 1.0, 0.65, 0.9) for i in range(n)]


def over(color: QColor, background: QColor) -> QColor:
    """The opaque colour that `color` (with its alpha) gives when drawn over `background`."""
    a = color.alphaF()
    return QColor.fromRgbF(*(a * c + (1 - a) * b for c, b in zip(color.getRgbF()[:3], background.getRgbF()[:3])))


class OpaqueAxis(pg.AxisItem):
    """A pyqtgraph axis that draws its line, ticks and grid in opaque colours, the grid under the data.

    pyqtgraph draws ticks and grid lines in the axis colour with some transparency. Qt's raster
    engine splits each semi-transparent line longer than about 96 pixels across its GUI thread pool
    and waits for it, all while the GUI thread holds Python's lock: the loss plot's grid took 240
    thread wake-ups and 11 of its 25 ms per repaint, and while a model trained, every repaint held
    up the training thread. So each colour is blended with the plot's `background` first (the same
    pixels where nothing is plotted), and the axis sits under the view, so that curves cover the
    grid instead of the grid crossing the curves."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.background = QColor("white")  # style_plot sets the plot's own
        self.setZValue(-200.0)

    def setZValue(self, z: float) -> None:  # noqa: N802 (Qt)
        """Always under the ViewBox (-100) and what it shows (PlotItem puts axes at 0.5, over it);
        the tick labels lie outside the view, so nothing covers them."""
        super().setZValue(min(z, -200.0))

    def set_background(self, color: QColor) -> None:
        self.background = QColor(color)
        self.picture = None  # redraw the cached lines in the new colours
        self.update()

    def _opaque(self, pen: QPen) -> QPen:
        if pen.color().alpha() == 255:
            return pen
        pen = QPen(pen)
        pen.setColor(over(pen.color(), self.background))
        return pen

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):  # noqa: N802 (pyqtgraph)
        pen, p1, p2 = axisSpec
        super().drawPicture(p, (self._opaque(pen), p1, p2), [(self._opaque(t), a, b) for t, a, b in tickSpecs],
                            textSpecs)


def opaque_axes(*names: str) -> dict[str, OpaqueAxis]:
    """`axisItems` for a pyqtgraph plot: `OpaqueAxis` on each side named (default left and bottom)."""
    return {name: OpaqueAxis(name) for name in (names or ("left", "bottom"))}


def style_plot(plot: pg.PlotWidget, palette: QPalette, legend_frame: bool = True) -> None:
    """Take a plot's background, axis and text colours from a Qt palette (and its legend's, if any:
    filled and framed when `legend_frame`, else transparent). Axis lines are opaque (a muted text
    colour, see `OpaqueAxis`)."""
    bg = palette.color(QPalette.ColorRole.Base)
    fg = palette.color(QPalette.ColorRole.Text)
    plot.setBackground(bg)
    item = plot.getPlotItem()
    muted = QColor(fg)
    muted.setAlphaF(0.75)
    muted = over(muted, bg)
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(muted))
        axis.setTextPen(pg.mkPen(fg))
        if isinstance(axis, OpaqueAxis):
            axis.set_background(bg)
    legend = item.legend
    if legend is not None:
        fill = QColor(bg)
        fill.setAlphaF(0.85)
        border = QColor(fg)
        border.setAlphaF(0.25)
        legend.setBrush(pg.mkBrush(fill) if legend_frame else pg.mkBrush(None))
        legend.setPen(pg.mkPen(border) if legend_frame else pg.mkPen(None))
        legend.setLabelTextColor(fg)


def legend_above(item: pg.PlotItem, columns: int = 6, label_size: str = "9pt", sample_type=None) -> pg.LegendItem:
    """A legend in the plot's title row, above the view, so it never hides a curve (a legend
    inside the view covered the last points, where a curve ends and the reading matters most).
    Replaces the plot's title; entries run in rows of `columns`."""
    kw = {"sampleType": sample_type} if sample_type is not None else {}
    legend = pg.LegendItem(labelTextSize=label_size, horSpacing=6, verSpacing=-6, colCount=columns,
                           pen=None, brush=None, **kw)
    item.layout.removeItem(item.titleLabel)
    item.titleLabel.hide()
    item.layout.addItem(legend, 0, 1)
    item.layout.setAlignment(legend, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    legend.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
    item.legend = legend  # curves added with name=... join it, as with addLegend
    return legend


def fit_legend_columns(legend: pg.LegendItem, width: float, most: int = 6) -> int:
    """Lay `legend`'s entries out in as many columns as fit `width` pixels (at most `most`), so a
    narrow plot wraps them into rows instead of cutting the last ones off. Returns the count."""
    # a label's own text width (its item's bounding rect is the grid cell it was stretched to)
    entries = [sample.boundingRect().width() + label.item.boundingRect().width() + 12 for sample, label in legend.items]
    if not entries:
        return legend.columnCount
    n = min(most, len(entries))  # entries fill rows left to right: entry i sits in column i % n
    while n > 1 and sum(max(entries[j::n]) for j in range(n)) > width:
        n -= 1
    if n != legend.columnCount:
        legend.setColumnCount(n)
    return n


# ---- a crisp, aspect-keeping image widget ----------------------------------------------------------------
class LineName(pg.TextItem):
    """The name of a `pg.InfiniteLine`, as a text item of its own beside the line in the same plot.

    pyqtgraph's built-in line label (`InfiniteLine(label=...)`, an `InfLineLabel`) is a child item
    of its line in a Python reference cycle with it; collecting that pair after Qt had deleted the
    plot crashed the interpreter (a segfault in the label's deallocation, traced with gdb; seen
    running tests/test_views.py on its own). This item is a sibling of the line instead: it follows
    the line's value and visibility, and sits `at` (0-1) along the line's extent in the view.
    """

    def __init__(self, line: pg.InfiniteLine, text: str, color, at: float = 0.95,
                 anchor: tuple[float, float] = (0.0, 1.0), angle: float = 0.0):
        super().__init__(text, color=color, anchor=anchor, angle=angle)
        self._line, self._at = line, float(at)
        line.sigPositionChanged.connect(self.follow)
        line.visibleChanged.connect(self.follow)

    def attach(self, plot_item: pg.PlotItem) -> "LineName":
        """Add to `plot_item` (the line's plot) and keep in place as the view moves."""
        plot_item.addItem(self, ignoreBounds=True)
        plot_item.getViewBox().sigRangeChanged.connect(self.follow)
        self.follow()
        return self

    def follow(self, *_args) -> None:
        line = self._line
        self.setVisible(line.isVisible())
        vb = self.getViewBox()
        if vb is None:
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        if line.angle % 180 == 90:  # vertical: at the line's x, a share of the way up
            self.setPos(line.value(), y0 + self._at * (y1 - y0))
        else:
            self.setPos(x0 + self._at * (x1 - x0), line.value())


class ScaledImage(QWidget):
    """Paints one image as large as fits, nearest-neighbour, centred, keeping its aspect ratio."""

    def __init__(self, parent: QWidget | None = None, min_side: int = 64, placeholder: str = ""):
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = placeholder
        self._min_side = min_side
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(min_side, min_side)

    def set_image(self, image: np.ndarray | QImage | None) -> None:
        if image is None:
            self._image = None
        elif isinstance(image, QImage):
            self._image = image
        else:
            self._image = to_qimage(image)
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(4 * self._min_side, 4 * self._min_side)

    def hasHeightForWidth(self) -> bool:
        return False

    def target_rect(self) -> QRect:
        if self._image is None or self._image.isNull():
            return QRect()
        w, h = self._image.width(), self._image.height()
        area = self.contentsRect()
        s = min(area.width() / w, area.height() / h)
        if s >= 1:
            s = max(1, int(s))  # whole-pixel scaling: every source pixel becomes an equal square
        tw, th = max(1, int(w * s)), max(1, int(h * s))
        return QRect(area.x() + (area.width() - tw) // 2, area.y() + (area.height() - th) // 2, tw, th)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        if self._image is None or self._image.isNull():
            if self._placeholder:
                p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
                flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
                p.drawText(self.contentsRect().adjusted(8, 8, -8, -8), flags, self._placeholder)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        r = self.target_rect()
        p.drawImage(r, self._image)
        frame = QColor(self.palette().color(QPalette.ColorRole.Text))
        frame.setAlphaF(0.2)
        p.setPen(frame)
        p.drawRect(r.adjusted(0, 0, -1, -1))
