"""The "Traversal" lab: what each latent dimension does (a traversal grid), a walk between two
images (interpolation), random samples, and, on data with known generative factors (shapes), how
well each dimension tracks each factor. The computation lives in `aestudio.core.labs.traversal`.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ...core.config import PRIOR_KINDS
from ...core.labs.traversal import CAPTURED, METHOD_LABELS, TraversalResult, mosaic, tile_centres, traversal_experiment
from .. import imaging
from ..state import StudioState
from ...core.latent import dim_name
from .base import LabData, LabPanel, lab_data

THUMB = 30


def _image_plot(title: str, tooltip: str) -> tuple[pg.PlotItem, pg.ImageItem]:
    item = pg.PlotItem()
    item.setTitle(title, size="9pt")
    item.setMenuEnabled(False)
    item.setAspectLocked(True)
    item.invertY(True)
    item.hideButtons()
    item.getViewBox().setMouseEnabled(False, False)
    image = pg.ImageItem()
    item.addItem(image)
    item.setToolTip(tooltip)
    return item, image


def _set_mosaic(image: pg.ImageItem, item: pg.PlotItem, mosaic_chw: np.ndarray) -> None:
    a = imaging.to_uint8(mosaic_chw)
    image.setImage(a, levels=(0, 255), autoLevels=False)
    h, w = a.shape[:2]
    item.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)


class TraversalLab(LabPanel):
    title = "Traversal"
    help_text = (
        "Each grid row sweeps one latent dimension from −3σ to +3σ around a base code: what does it control? "
        "Rows are sorted by use (KL for VAEs, variance otherwise). A model is <i>disentangled</i> when each "
        "generative factor (position, size, …) has a dimension of its own; a β-VAE (β &gt; 1) presses codes towards "
        "the independent N(0, I) prior, which often yields such factors at the price of blurrier images."
    )

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self._params: dict[str, Any] = {}
        self._val_images: np.ndarray | None = None

        # -- controls --
        self.base_mode = QComboBox()
        self.base_mode.addItems(["mean code", "a chosen image"])
        self.base_mode.setAccessibleName("Traverse around")
        self.base_mode.setToolTip("The code the traversal starts from. The mean code is the centre of the data; "
                                  "a chosen image's code shows how that image changes along each dimension.")
        self.base_index = QSpinBox()
        self.base_index.setAccessibleName("Base image index")
        self.base_index.setToolTip("Which validation image to traverse around (its thumbnail is shown next to it).")
        self.base_thumb = self._thumb_label("Base image")
        self.base_index.setEnabled(False)
        self.base_mode.currentIndexChanged.connect(lambda i: self.base_index.setEnabled(i == 1))
        self.base_index.valueChanged.connect(lambda i: self._set_thumb(self.base_thumb, i))
        self.rows_spin = QSpinBox()
        self.rows_spin.setRange(1, 64)
        self.rows_spin.setValue(10)
        self.rows_spin.setPrefix("top ")
        self.rows_spin.setSuffix(" dims")
        self.rows_spin.setAccessibleName("Dimensions shown")
        self.rows_spin.setToolTip("How many dimensions to traverse (rows), the most used first.")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(3, 15)
        self.steps_spin.setValue(7)
        self.steps_spin.setSuffix(" steps")
        self.steps_spin.setAccessibleName("Traversal steps")
        self.steps_spin.setToolTip("Columns of the grid: values evenly spaced from −3σ to +3σ. σ is the prior's "
                                   "standard deviation (1) for a VAE and the spread of that dimension's codes otherwise.")
        self.n_samples = QSpinBox()
        self.n_samples.setRange(4, 128)
        self.n_samples.setValue(32)
        self.n_samples.setSuffix(" samples")
        self.n_samples.setAccessibleName("Random samples")
        self.n_samples.setToolTip("Random codes to decode. A VAE samples its prior N(0, I); other autoencoders have "
                                  "no prior, so a Gaussian fitted to their codes is used instead.")
        self.seed = QSpinBox()
        self.seed.setRange(0, 99_999)
        self.seed.setPrefix("seed ")
        self.seed.setAccessibleName("Sample seed")
        self.seed.setToolTip("Random seed for the samples: the same seed draws the same codes.")
        self.controls.addRow("Traverse around:", self._row(self.base_mode, self.base_index, self.base_thumb,
                                                           self.rows_spin, self.steps_spin, QLabel("  Samples:"),
                                                           self.n_samples, self.seed))

        self.index_a = QSpinBox()
        self.index_a.setAccessibleName("Interpolation start image")
        self.index_a.setToolTip("The validation image the walk starts from.")
        self.thumb_a = self._thumb_label("Start image")
        self.index_b = QSpinBox()
        self.index_b.setAccessibleName("Interpolation end image")
        self.index_b.setToolTip("The validation image the walk ends at.")
        self.thumb_b = self._thumb_label("End image")
        self.index_a.valueChanged.connect(lambda i: self._set_thumb(self.thumb_a, i))
        self.index_b.valueChanged.connect(lambda i: self._set_thumb(self.thumb_b, i))
        self.interp_steps = QSpinBox()
        self.interp_steps.setRange(3, 24)
        self.interp_steps.setValue(10)
        self.interp_steps.setSuffix(" steps")
        self.interp_steps.setAccessibleName("Interpolation steps")
        self.interp_steps.setToolTip("Images decoded along the path between the two codes, ends included. "
                                     "Linear follows a straight line; spherical (VAEs) follows the great circle, "
                                     "keeping codes as long as typical prior samples.")
        self.method = QComboBox()
        for key, label in METHOD_LABELS.items():
            self.method.addItem(label, key)
        self.method.setAccessibleName("Factor score")
        self.method.setToolTip("How to score a dimension against a known factor (data with factors only). "
                               "|Spearman correlation|: does the factor rise or fall steadily with the dimension? "
                               "Normalised mutual information: how much the dimension tells about the factor, "
                               "also for unordered factors such as shape (0 nothing, 1 everything); its gap score "
                               "is the Mutual Information Gap (MIG).")
        self.method_label = QLabel("  Factor score:")
        self.controls.addRow("Interpolate:", self._row(self.index_a, self.thumb_a, QLabel("→"), self.index_b,
                                                       self.thumb_b, self.interp_steps, self.method_label, self.method))

        # -- figure --
        fig = QWidget()
        fig.setAccessibleName("Traversal figure")
        fv = QVBoxLayout(fig)
        fv.setContentsMargins(0, 0, 0, 0)
        fv.setSpacing(4)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setAccessibleName("Traversal plots")
        self.view.setMinimumHeight(300)
        self.trav_plot, self.trav_image = _image_plot(
            "Traversal", "Each row sweeps one dimension from −3σ (left) to +3σ (right); the other dimensions stay "
                         "at the base code. A row that barely changes is a dimension the decoder ignores.")
        self.interp_plot, self.interp_image = _image_plot(
            "Interpolation", "Images decoded along the path between the codes of two images. Smooth, plausible "
                             "in-between images mean a well-organised code space.")
        self.samples_plot, self.samples_image = _image_plot(
            "Samples", "Decoded random codes: how the model imagines new images.")
        self.factor_plot, self.factor_image = _image_plot(
            "Dimensions × factors", "How strongly each dimension (row, same order as the traversal) tracks each "
                                    "known factor (column); bright = strong. One bright cell per column and per "
                                    "row is the disentangled ideal.")
        self.factor_plot.setAspectLocked(False)
        self.view.addItem(self.trav_plot, 0, 0, 3, 1)
        self.view.addItem(self.interp_plot, 0, 1)
        self.view.addItem(self.samples_plot, 1, 1)
        self._factor_shown = False
        lay = self.view.ci.layout
        lay.setColumnStretchFactor(0, 5)
        lay.setColumnStretchFactor(1, 4)
        lay.setRowStretchFactor(0, 2)
        lay.setRowStretchFactor(1, 3)
        lay.setRowStretchFactor(2, 3)
        self.factor_plot.setMinimumHeight(120)
        self._factor_marks: list[QGraphicsRectItem] = []
        self._style()
        fv.addWidget(self.view, 1)
        self.readout = QLabel()
        self.readout.setWordWrap(True)
        self.readout.setTextFormat(Qt.RichText)
        self.readout.setAccessibleName("Traversal read-out")
        fv.addWidget(self.readout)
        self.set_figure(fig)
        self.splitter.setSizes([700, 140])
        self._ready = True
        self.on_model_changed(lab_data(state))

    # ---- helpers ----
    @staticmethod
    def _row(*widgets: QWidget) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in widgets:
            lay.addWidget(w)
        lay.addStretch(1)
        return row

    def _thumb_label(self, name: str) -> QLabel:
        label = QLabel()
        label.setFixedSize(THUMB, THUMB)
        label.setAlignment(Qt.AlignCenter)
        label.setAccessibleName(f"{name} thumbnail")
        label.setToolTip(f"{name} (a validation image)")
        label.setStyleSheet("QLabel { border: 1px solid palette(mid); }")
        return label

    def _set_thumb(self, label: QLabel, index: int) -> None:
        if self._val_images is None or not len(self._val_images):
            label.clear()
            return
        i = int(np.clip(index, 0, len(self._val_images) - 1))
        label.setPixmap(imaging.to_pixmap(self._val_images[i], THUMB - 4))

    def _style(self) -> None:
        pal = self.palette()
        self.view.setBackground(pal.color(pal.ColorRole.Base))
        fg = pal.color(pal.ColorRole.Text)
        for item in (self.trav_plot, self.interp_plot, self.samples_plot, self.factor_plot):
            for name in ("left", "bottom"):
                axis = item.getAxis(name)
                axis.setPen(pg.mkPen(pal.color(pal.ColorRole.Mid)))
                axis.setTextPen(pg.mkPen(fg))  # after setPen: both set the label colour
            item.titleLabel.setAttr("color", fg.name())

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if getattr(self, "_ready", False) and event.type() == event.Type.PaletteChange:
            self._style()

    # ---- LabPanel API ----
    def on_model_changed(self, data: LabData | None) -> None:
        if not getattr(self, "_ready", False):
            return
        self._val_images = None if data is None else data.val.images
        n = 0 if data is None else data.val.n
        for spin in (self.base_index, self.index_a, self.index_b):
            spin.setRange(0, max(n - 1, 0))
        if n > 1 and self.index_a.value() == self.index_b.value():
            self.index_b.setValue(min(n - 1, self._other_class_index(data)))
        latent = data.model.config.latent if data is not None else 64
        self.rows_spin.setMaximum(max(1, latent))
        has_factors = data is not None and data.val.factors is not None and bool(data.val.factor_names)
        self.method.setEnabled(has_factors)
        self.method_label.setEnabled(has_factors)
        for label, spin in ((self.base_thumb, self.base_index), (self.thumb_a, self.index_a), (self.thumb_b, self.index_b)):
            self._set_thumb(label, spin.value())

    @staticmethod
    def _other_class_index(data: LabData) -> int:
        """A default end image: the first validation image of another class than image 0 (else image 1)."""
        labels = data.val.labels
        if labels is not None and len(labels) > 1:
            other = np.flatnonzero(labels != labels[0])
            if len(other):
                return int(other[0])
        return 1

    def run(self) -> None:
        self._params = {
            "base_index": self.base_index.value() if self.base_mode.currentIndex() == 1 else None,
            "max_rows": self.rows_spin.value(), "steps": self.steps_spin.value(),
            "pair": (self.index_a.value(), self.index_b.value()), "interp_steps": self.interp_steps.value(),
            "n_samples": self.n_samples.value(), "seed": self.seed.value(), "method": self.method.currentData(),
        }
        super().run()

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> TraversalResult:
        p = self._params or {}
        val = data.val
        factors = val.factors if val.factors is not None and val.factor_names else None
        return traversal_experiment(data.model, val.images, factors, val.factor_names if factors is not None else (),
                                    progress=progress, **p)

    def show_result(self, r: TraversalResult) -> None:
        h, w = r.image_size
        pad = r.pad
        # traversal grid with row labels (dimension and its score) and sigma columns
        _set_mosaic(self.trav_image, self.trav_plot, r.grid)
        short = "KL" if r.score_name == "KL" else "var"
        left = [(float(y), f"{dim_name(d)}  {short} {r.scores[d]:.2g}") for y, d in zip(tile_centres(len(r.dims), h, pad), r.dims)]
        bottom = [(float(x), f"{v:+.0f}".replace("+0", "0") if abs(v - round(v)) < 1e-6 else f"{v:+.1f}")
                  for x, v in zip(tile_centres(len(r.values), w, pad), r.values)]
        self.trav_plot.getAxis("left").setTicks([left, []])
        self.trav_plot.getAxis("bottom").setTicks([bottom, []])
        sig = "σ = 1 (the prior)" if r.kind in PRIOR_KINDS else "σ = code std"
        self.trav_plot.setTitle(f"Traversal around the {r.base}", size="9pt")
        self.trav_plot.setLabel("bottom", f"change in σ units ({sig})", color=self.palette().color(self.palette().ColorRole.Text).name())

        # interpolation: one row per mode
        strips = list(r.strips.items())
        stacked = mosaic(np.stack([s for _, s in strips]), len(strips), 1, pad)
        _set_mosaic(self.interp_image, self.interp_plot, stacked)
        steps = (stacked.shape[2] + pad) // (w + pad)
        self.interp_plot.getAxis("left").setTicks([[(float(y), name) for y, (name, _) in
                                                    zip(tile_centres(len(strips), h, pad), strips)], []])
        xs = tile_centres(steps, w, pad)
        self.interp_plot.getAxis("bottom").setTicks([[(float(xs[0]), "A"), (float(xs[-1]), "B")], []])
        self.interp_plot.setTitle(f"Interpolation: image {r.pair[0]} → image {r.pair[1]}", size="9pt")

        # samples
        _set_mosaic(self.samples_image, self.samples_plot, r.samples)
        self.samples_plot.getAxis("left").setTicks([[], []])
        self.samples_plot.getAxis("bottom").setTicks([[], []])
        self.samples_plot.setTitle("Samples from the prior N(0, I)" if r.kind in PRIOR_KINDS else
                                   "Samples from a Gaussian fitted to the codes (no prior)", size="9pt")

        # factors: a heat map, factors as rows, dimensions as columns in the traversal's order
        for mark in self._factor_marks:
            self.factor_plot.removeItem(mark)
        self._factor_marks = []
        lines = [(f"Rows: the {len(r.dims)} most used of {len(r.scores)} dimensions, by "
                 f"{'KL to the prior (nats)' if r.score_name == 'KL' else 'code variance'}. {r.sample_note}")]
        if r.factor_matrix is not None and r.factor_summary is not None:
            s = r.factor_summary
            m = r.factor_matrix[r.dims].T  # (factors, shown dims)
            self.factor_image.setImage(imaging.heatmap(m, 0.0, 1.0), levels=(0, 255), autoLevels=False)
            self.factor_plot.setRange(xRange=(0, m.shape[1]), yRange=(0, m.shape[0]), padding=0.02)
            self.factor_plot.getAxis("left").setTicks([[(k + 0.5, n) for k, n in enumerate(s.factor_names)], []])
            self.factor_plot.getAxis("bottom").setTicks([[(i + 0.5, f"{dim_name(d)}") for i, d in enumerate(r.dims)], []])
            for k, d in enumerate(s.best_dim):
                if int(d) in r.dims and s.best_score[k] >= CAPTURED:
                    col = r.dims.index(int(d))
                    mark = QGraphicsRectItem(col + 0.04, k + 0.04, 0.92, 0.92)
                    pen = pg.mkPen(QColor("#ffffff"), width=2)
                    pen.setCosmetic(True)
                    mark.setPen(pen)
                    self.factor_plot.addItem(mark)
                    self._factor_marks.append(mark)
            self.factor_plot.setTitle(f"Factor scores ({METHOD_LABELS[s.method]}; framed: best per factor, if ≥ {CAPTURED:g})",
                                     size="9pt")
            self._show_factor_plot(True)
            label = "MIG" if s.method == "mi" else "MIG-like gap score"
            lines.append(f"<b>Disentanglement</b> (best dimension per factor): {s.line.split('  ·  ')[0]}. "
                         f"<b>{label} {s.gap_score:.2f}</b> (mean over factors of best minus runner-up; "
                         f"0: shared, 1: one dimension per factor). {s.verdict}")
        else:
            self.factor_image.clear()
            self._show_factor_plot(False)
        self.readout.setText("<br>".join(lines))
        self.set_numbers(*r.rows())
        if r.factor_summary is not None:
            self._bold_best(r)

    def _show_factor_plot(self, show: bool) -> None:
        if show and not self._factor_shown:
            self.view.addItem(self.factor_plot, 2, 1)
        elif not show and self._factor_shown:
            self.view.removeItem(self.factor_plot)
        self._factor_shown = show

    def _bold_best(self, r: TraversalResult) -> None:
        """Bold each factor's best dimension in the numbers table (where it tracks the factor at all)."""
        s = r.factor_summary
        order = [row[0] for row in self.number_rows]
        for k, d in enumerate(s.best_dim):
            name = f"{dim_name(int(d))}"
            if name in order and s.best_score[k] >= CAPTURED:
                item = self.table.item(order.index(name), 2 + k)
                if item is not None:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
