"""PCA vs autoencoder: is the network's code better than the best linear one?

Run: PCA's validation error at every code size from 1 to 64 (fitted once at the largest size and
truncated, so it is cheap) against the current model's error at its own size; PCA's 2-D map beside
the autoencoder's 2-D map; reconstructions of the same images by PCA and by the model at equal
size; one sentence saying which wins. "Train sizes" trains the current architecture at a few code
sizes (a budget of optimizer steps each, off the GUI thread) and adds them to the curve as markers;
a note beside the verdict says when a size was still improving when its steps ran out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ...core.labs import pca_compare as core
from ...core.training import Control
from .. import imaging
from .base import LabData, LabPanel, model_train_config, set_training_note, steps_spinbox, steps_text, training_note_label
from .denoising_lab import ImageRow, ImageRows, stop_all

DEFAULT_STEPS = core.SWEEP_STEPS
PCA_COLOR = "#4e79a7"
AE_COLOR = "#e15759"

CURVE_HELP = ("Validation reconstruction error (MSE per pixel, lower is better) against the size of the code. "
              "PCA (line) is the best any linear encoder and decoder can do with that many numbers; the "
              "autoencoder (markers; the star is the current model) can beat it by bending its code to the data.")
PCA_MAP_HELP = ("Every validation image placed by its first two principal components (PCA-2), coloured by class: "
                "the best flat 2-D view of the pixels.")
AE_MAP_HELP = ("The same images placed by the autoencoder: its codes themselves when the code is 2-D, else the "
               "first two principal components of its codes. Tighter, better separated clusters mean a code "
               "that groups similar images.")


@dataclass
class PcaLabResult:
    curve: core.PcaCurve
    comparison: core.SizeComparison
    sweep: list[core.SweepPoint] = field(default_factory=list)  # newly trained sizes (job "sweep")
    class_names: list[str] = field(default_factory=list)


def parse_sizes(text: str) -> list[int]:
    """Latent sizes from text like "2, 4, 8 16" (whole numbers from 1 to 1024)."""
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    sizes = []
    for p in parts:
        if not p.isdecimal() or not 1 <= int(p) <= 1024:
            raise ValueError(f"{p!r} is not a latent size (a whole number from 1 to 1024)")
        sizes.append(int(p))
    if not sizes:
        raise ValueError("give at least one latent size, e.g. 2, 4, 8, 16, 32")
    return sorted(set(sizes))


class PcaVsAutoencoderLab(LabPanel):
    title = "PCA vs autoencoder"
    help_text = (
        "PCA is the best <i>linear</i> autoencoder: no linear encoder and decoder reconstruct better with the same "
        "number of values. Does the non-linear network beat it on your data, and at which code sizes? "
        "<i>Run</i> compares PCA at every size with the current model; <i>Train sizes</i> trains the current "
        "architecture at a few more code sizes (a budget of training steps each; a note says when that was too few)."
    )

    def __init__(self, state, parent: QWidget | None = None):
        self._request: dict[str, Any] = {}
        self._controls_started: list[Control] = []
        self._sweep: dict[int, core.SweepPoint] = {}
        self._sweep_key: tuple | None = None
        super().__init__(state, parent)
        self.destroyed.connect(lambda *_a, c=self._controls_started: stop_all(c))

        # -- controls --
        self.sizes_edit = QLineEdit(", ".join(str(s) for s in core.DEFAULT_SWEEP))
        self.sizes_edit.setAccessibleName("Latent sizes to train")
        self.sizes_edit.setToolTip("Code (latent) sizes to train the current architecture at, separated by commas. "
                                   "The hidden layers stay the same; only the bottleneck changes.")
        self.sizes_edit.setMaximumWidth(220)
        self.steps = steps_spinbox(
            DEFAULT_STEPS, "Training steps",
            "Optimizer steps each size trains for (on this run's training split, with its batch size and learning "
            "rate), however many images that is. Too few favour PCA, which needs no training: a note beside the "
            "verdict says when a size was still improving at the end.")
        self.sweep_button = QPushButton()
        self.sweep_button.setAccessibleName("Train sizes")
        self.sweep_button.setToolTip("Train a fresh model of the current architecture at each of these code sizes "
                                     "and add its validation error to the curve (off the GUI thread; can take a while).")
        self.sweep_button.clicked.connect(self.train_sizes)
        row = QHBoxLayout()
        row.addWidget(self.sizes_edit)
        row.addWidget(self.steps)
        row.addWidget(self.sweep_button)
        row.addStretch(1)
        label = QLabel("Latent sizes:")
        label.setBuddy(self.sizes_edit)
        label.setToolTip(self.sizes_edit.toolTip())
        self.controls.addRow(label, row)

        # -- figure --
        fig = QWidget()
        fig.setAccessibleName("PCA vs autoencoder figure")
        self.verdict_label = QLabel("Press Run to compare PCA with the current model.")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAccessibleName("Verdict")
        self.verdict_label.setToolTip("Which of the two reconstructs the validation images better at the current "
                                      "model's code size, and by how much (MSE per pixel).")
        font = self.verdict_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setWeight(QFont.Weight.DemiBold)
        self.verdict_label.setFont(font)
        self.note_label = training_note_label()

        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setAccessibleName("Error against latent size")
        self.curve_plot.setToolTip(CURVE_HELP)
        cp = self.curve_plot.getPlotItem()
        cp.hideButtons()
        cp.setMenuEnabled(False)
        cp.setLogMode(x=True, y=False)
        cp.setLabel("bottom", "code size (latent dimensions)")
        cp.setLabel("left", "validation MSE")
        cp.showGrid(x=True, y=True, alpha=0.15)
        cp.getAxis("left").enableAutoSIPrefix(False)
        self.pca_line = cp.plot([], [], pen=pg.mkPen(PCA_COLOR, width=2))
        self.ae_points = cp.plot([], [], pen=None, symbol="o", symbolSize=9, symbolBrush=AE_COLOR,
                                 symbolPen=pg.mkPen("w", width=0.8))
        self.ae_current = cp.plot([], [], pen=None, symbol="star", symbolSize=16, symbolBrush=AE_COLOR,
                                  symbolPen=pg.mkPen("k", width=0.8))

        self.pca_map = pg.PlotWidget()
        self.ae_map = pg.PlotWidget()
        self.pca_map.setAccessibleName("PCA 2-D map")
        self.ae_map.setAccessibleName("Autoencoder 2-D map")
        self.pca_map.setToolTip(PCA_MAP_HELP)
        self.ae_map.setToolTip(AE_MAP_HELP)
        for plot in (self.pca_map, self.ae_map):
            pi = plot.getPlotItem()
            pi.hideButtons()
            pi.setMenuEnabled(False)
            pi.hideAxis("left")
            pi.hideAxis("bottom")
        self.class_key = QLabel()
        self.class_key.setTextFormat(Qt.TextFormat.RichText)
        self.class_key.setWordWrap(True)
        self.class_key.setAccessibleName("Class colours")
        self.class_key.setToolTip("The colour of each class in both maps.")

        plots = QHBoxLayout()
        plots.setSpacing(6)
        plots.addWidget(self.curve_plot, 4)
        plots.addWidget(self.pca_map, 3)
        plots.addWidget(self.ae_map, 3)
        for plot in (self.curve_plot, self.pca_map, self.ae_map):
            imaging.style_plot(plot, self.palette())
            plot.setMinimumHeight(170)
        self._set_titles("PCA-2 map of the images", "Autoencoder's 2-D map")

        self.recons = ImageRows(tile=48)
        self.recons.setAccessibleName("Reconstructions at equal size")
        lay = QVBoxLayout(fig)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(6)
        lay.addWidget(self.verdict_label)
        lay.addWidget(self.note_label)
        lay.addLayout(plots, 1)
        lay.addWidget(self.class_key)
        lay.addWidget(self.recons)
        self.set_figure(fig)

        self.steps.valueChanged.connect(self._update_sweep_text)
        self._update_sweep_text()
        self._update_actions()


    def _set_titles(self, pca_title: str, ae_title: str) -> None:
        color = self.palette().color(self.palette().ColorRole.Text).name()
        key = (f"<span style='color:{PCA_COLOR}'>━ PCA</span> &nbsp;<span style='color:{AE_COLOR}'>● autoencoder"
               f" &nbsp;★ current model</span>")
        self.curve_plot.getPlotItem().setTitle(key, size="9pt", color=color)
        self.pca_map.getPlotItem().setTitle(pca_title, size="9pt", color=color)
        self.ae_map.getPlotItem().setTitle(ae_title, size="9pt", color=color)

    # ---- settings ----
    def _update_sweep_text(self) -> None:
        self.sweep_button.setText(f"Train sizes ({steps_text(self.steps.value())} each)")

    def _update_actions(self) -> None:
        self.sweep_button.setEnabled(self.run_button.isEnabled())

    def _arch_key(self, data: LabData | None) -> tuple | None:
        if data is None:
            return None
        cfg = data.snapshot.model_config
        return (cfg.arch, cfg.kind, tuple(cfg.input_shape), tuple(cfg.hidden_sizes), id(self.state.dataset))

    def on_model_changed(self, data: LabData | None) -> None:
        if not hasattr(self, "sweep_button"):
            return
        key = self._arch_key(data)
        if key != self._sweep_key:  # trained sizes belong to one architecture and data set
            self._sweep.clear()
            self._sweep_key = key
        self._update_actions()

    # ---- running ----
    @Slot()
    def run(self) -> None:
        self._start("compare")

    @Slot()
    def train_sizes(self) -> None:
        try:
            sizes = parse_sizes(self.sizes_edit.text())
        except ValueError as e:
            self.notice.setText(f"<span style='color:#c0392b'>{e}</span>")
            return
        self._start("sweep", sizes=sizes)

    def _start(self, job: str, **extra: Any) -> None:
        if self.busy:
            return
        control = Control()
        self._controls_started[:] = [control]
        self._request = {"job": job, "steps": self.steps.value(), "train_config": model_train_config(self.state),
                         "control": control, **extra}
        LabPanel.run(self)
        if self.busy:
            self.sweep_button.setEnabled(False)
            if job == "sweep":
                self.notice.setText(f"Training the current architecture at code sizes "
                                    f"{', '.join(map(str, extra['sizes']))}, {steps_text(self._request['steps'])} each…")

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> PcaLabResult:
        req = dict(self._request)
        tc = req["train_config"]
        val = data.val.subset(slice(0, core.MAX_MAP_POINTS))  # at most 10,000 validation images
        sweep: list[core.SweepPoint] = []
        if req["job"] == "sweep":
            sweep = core.train_size_sweep(data.snapshot.model_config, data.train, val, req["sizes"],
                                          req["steps"], progress, seed=tc.seed, control=req["control"],
                                          train_config=tc)
        latent = int(data.snapshot.model_config.latent)
        sizes = sorted(set(core.default_sizes()) | {latent} | {p.size for p in sweep})
        curve = core.pca_curve(data.train.images, val.images, sizes, seed=tc.seed)
        cmp = core.compare_at_size(data.model, data.train.images, val.images, val.labels, seed=tc.seed)
        return PcaLabResult(curve, cmp, sweep, list(val.class_names))

    def on_idle(self) -> None:
        self._update_actions()

    # ---- drawing ----
    def show_result(self, result: PcaLabResult) -> None:
        for p in result.sweep:
            self._sweep[p.size] = p
        curve, cmp = result.curve, result.comparison
        self.pca_line.setData(curve.sizes.astype(float), np.maximum(curve.mse, 1e-12))
        pts = sorted(self._sweep.values(), key=lambda p: p.size)
        self.ae_points.setData([float(p.size) for p in pts], [max(p.mse, 1e-12) for p in pts])
        self.ae_current.setData([float(cmp.k)], [max(cmp.ae_mse, 1e-12)])
        cp = self.curve_plot.getPlotItem()
        ticks = [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if v <= max(curve.sizes.max(), cmp.k)]
        cp.getAxis("bottom").setTicks([[(float(np.log10(v)), str(v)) for v in ticks], []])
        top = max(float(curve.sizes.max()), float(cmp.k), *[float(p.size) for p in pts])
        cp.setXRange(0.0, float(np.log10(top)), padding=0.04)
        cp.enableAutoRange(axis="y")

        sweep_text = ""
        wins = [p for p in pts if p.mse < curve.at(p.size)]
        if pts:
            sweep_text = (f" Trained sizes: the autoencoder beats PCA at {len(wins)} of {len(pts)} "
                          f"({', '.join(str(p.size) for p in wins) or 'none'}).")
        self.verdict_label.setText(cmp.verdict + sweep_text)
        set_training_note(self.note_label, core.sweep_note(pts))

        self._draw_maps(cmp, result.class_names)
        k = cmp.k

        def errs(rec: np.ndarray) -> list[str]:
            return [f"{float(np.mean((r - o) ** 2)):.3g}" for r, o in zip(rec, cmp.originals)]

        self.recons.set_rows([
            ImageRow("Original", cmp.originals, [f"val #{int(i)}" for i in cmp.shown],
                     "Validation images, a spread over the classes."),
            ImageRow(f"PCA-{k}", cmp.pca_recons, errs(cmp.pca_recons),
                     f"Reconstructed from their first {k} principal components; caption: MSE per pixel."),
            ImageRow(f"Autoencoder ({k})", cmp.ae_recons, errs(cmp.ae_recons),
                     f"Reconstructed by the current model through its {k}-value code; caption: MSE per pixel."),
        ])

        rows: list[list[Any]] = []
        for size, mse in zip(curve.sizes, curve.mse):
            ae: Any = ""
            source = ""
            if int(size) == k:
                ae, source = cmp.ae_mse, "current model"
            elif int(size) in self._sweep:
                p = self._sweep[int(size)]
                ae, source = p.mse, f"trained {steps_text(p.steps)}" + (" (still improving)" if p.still_improving else "")
            rows.append([int(size), float(mse), ae, source])
        self.set_numbers(["code size", "PCA MSE", "autoencoder MSE", "autoencoder"], rows)

    def _draw_maps(self, cmp: core.SizeComparison, class_names: list[str]) -> None:
        for plot in (self.pca_map, self.ae_map):
            pi = plot.getPlotItem()
            for item in list(pi.listDataItems()):
                pi.removeItem(item)
        labels = cmp.labels
        groups: list[tuple[str, np.ndarray]]
        if labels is None or not class_names:
            groups = [("images", np.ones(len(cmp.pca_map), bool))]
        else:
            groups = [(name, labels == i) for i, name in enumerate(class_names)]
        colors = imaging.class_colors(len(groups))
        self.class_key.setText("Classes: " + " ".join(
            f"<span style='color:{c.name()}'>■</span>&nbsp;{name}&nbsp;" for (name, _), c in zip(groups, colors))
            if len(groups) > 1 else "")
        size = 4 if len(cmp.pca_map) > 2000 else 5
        for (name, mask), color in zip(groups, colors):
            if not mask.any():
                continue
            brush = pg.mkBrush(color)
            for plot, pts in ((self.pca_map, cmp.pca_map), (self.ae_map, cmp.ae_map)):
                item = pg.ScatterPlotItem(pts[mask, 0], pts[mask, 1], size=size, pen=None, brush=brush, name=name)
                plot.getPlotItem().addItem(item)
        for plot in (self.pca_map, self.ae_map):
            plot.getPlotItem().enableAutoRange()
        how = {"codes": "its 2-D codes as they are", "codes (1-D)": "its 1-D code (x) only"}.get(
            cmp.ae_map_method, f"PCA of its {cmp.k}-D codes")
        self._set_titles("PCA-2 map of the images", f"Autoencoder's map: {how}")
