"""Code robustness: do denoising and contractive autoencoders give codes that move less under small
input noise than a plain autoencoder of the same size?

Run trains the current architecture and code size three times (plain, denoising on gaussian noise,
contractive; a budget of optimizer steps each, off the GUI thread) and measures how far each one's
codes move per unit of gaussian input noise of a few sizes (`core.labs.code_robustness`). Two plots:
the raw movement ||f(x + ε) − f(x)|| / ||ε||, and the same relative to how much codes and images vary
across the data set (a model cannot look robust just by shrinking its codes there).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ...core.labs import code_robustness as core
from ...core.training import Control
from .. import imaging
from .base import LabData, LabPanel, steps_spinbox, steps_text
from .denoising_lab import stop_all

COLORS = {"plain": "#4e79a7", "denoising": "#f28e2b", "contractive": "#59a14f"}
RAW_HELP = ("How far the code moves per unit of input noise, ||f(x + ε) − f(x)|| / ||ε||, averaged over validation "
            "images and noise draws, for gaussian noise of each size (σ per pixel).")
REL_HELP = ("The same movement measured against how much the codes vary across images (and the noise against how "
            "much the images vary): below 1 the encoder damps random nudges. Shrinking all codes does not help here.")


class RobustnessLab(LabPanel):
    title = "Code robustness"
    help_text = (
        "Why are denoising and contractive autoencoders said to learn robust codes? <i>Run</i> trains a plain, a "
        "denoising and a contractive autoencoder of the current architecture and code size, then nudges validation "
        "images with small gaussian noise and measures how far each one's codes move."
    )

    def __init__(self, state, parent: QWidget | None = None):
        self._request: dict[str, Any] = {}
        self._controls_started: list[Control] = []
        super().__init__(state, parent)
        self.destroyed.connect(lambda *_a, c=self._controls_started: stop_all(c))
        self.steps = steps_spinbox(core.ROBUSTNESS_STEPS, "Training steps",
                                   "Optimizer steps each of the three models trains for (this run's batch size and "
                                   "learning rate).")
        self.controls.addRow("Training steps", self.steps)

        fig = QWidget()
        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAccessibleName("Verdict")
        self.raw_plot = pg.PlotWidget()
        self.raw_plot.setAccessibleName("Code movement per unit of noise")
        self.raw_plot.setToolTip(RAW_HELP)
        self.rel_plot = pg.PlotWidget()
        self.rel_plot.setAccessibleName("Relative code movement")
        self.rel_plot.setToolTip(REL_HELP)
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        for plot, which, label in ((self.raw_plot, "raw", "code movement / noise"),
                                   (self.rel_plot, "relative", "relative movement")):
            item = plot.getPlotItem()
            item.setLogMode(x=True, y=False)
            item.setLabel("bottom", "noise σ per pixel")
            item.setLabel("left", label)
            for side in ("bottom", "left"):  # plain numbers: no "(x0.001)" rescaling of the axis
                item.getAxis(side).enableAutoSIPrefix(False)
            imaging.legend_above(item, label_size="8pt")
            imaging.style_plot(plot, self.palette(), legend_frame=False)
            plot.setMinimumHeight(170)
            for name, color in COLORS.items():
                self.curves[(which, name)] = item.plot([], [], pen=pg.mkPen(QColor(color), width=2), symbol="o",
                                                       symbolSize=6, symbolBrush=QColor(color), name=name)
        plots = QHBoxLayout()
        plots.addWidget(self.raw_plot)
        plots.addWidget(self.rel_plot)
        lay = QVBoxLayout(fig)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.verdict_label)
        lay.addLayout(plots, 1)
        self.set_figure(fig)

    @Slot()
    def run(self) -> None:
        """Read the controls here, on the GUI thread; `compute` runs on a pool thread."""
        if self.busy:
            return
        control = Control()
        self._controls_started[:] = [control]
        self._request = {"steps": int(self.steps.value()), "train_config": self.state.train_config, "control": control}
        LabPanel.run(self)
        if self.busy:
            self.notice.setText(f"Training three models, {steps_text(self._request['steps'])} each…")

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> list[core.RobustnessRow]:
        req = dict(self._request)
        snap = data.snapshot
        return core.compare_robustness(snap.model_config, data.train, data.val, steps=req["steps"],
                                       seed=snap.train_config.seed, progress=progress, control=req["control"],
                                       train_config=snap.train_config)

    def show_result(self, rows: list[core.RobustnessRow]) -> None:
        for (which, name), curve in self.curves.items():
            row = next((r for r in rows if r.name == name), None)
            if row is None:
                curve.setData([], [])
                continue
            s = row.sensitivity
            curve.setData(s.sigmas, s.raw if which == "raw" else s.relative)
        sigmas = sorted({float(v) for r in rows for v in r.sensitivity.sigmas if v > 0})
        for plot in (self.raw_plot, self.rel_plot):
            plot.getPlotItem().enableAutoRange()
            # the log axis labels the noise levels measured (0.01, 0.03, 0.1), not 10¹ … 9·10¹ of a rescaled axis
            plot.getPlotItem().getAxis("bottom").setTicks([[(float(np.log10(v)), f"{v:g}") for v in sigmas], []]
                                                          if sigmas else None)
        self.verdict_label.setText(core.robustness_verdict(rows))
        table = []
        for r in rows:
            for sigma, raw, rel in zip(r.sensitivity.sigmas, r.sensitivity.raw, r.sensitivity.relative):
                table.append([r.name, float(sigma), float(raw), float(rel), r.val_mse])
        self.set_numbers(["model", "noise σ", "code movement / noise", "relative movement", "validation MSE"], table)


__all__ = ["RobustnessLab"]
