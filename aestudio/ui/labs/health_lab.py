"""The "Latent health" lab: per-dimension KL (VAEs) or code variance (other models) with inactive
or dead dimensions flagged, code statistics per dimension, class separation (silhouette, k-NN) and a
list of findings in plain language. The computation lives in `aestudio.core.labs.health`.
"""
from __future__ import annotations

import dataclasses
import html
from typing import Any
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QWidget

from ...core.labs.health import HealthReport, HealthSettings, health_report
from ..state import StudioState
from ...core.latent import dim_name
from ..forms import ConfigForm
from .base import LabData, LabPanel

ACTIVE = "#4e79a7"
INACTIVE = "#e15759"
SEVERITY_MARKS = {"ok": ("✓", "#2e9d57"), "warn": ("⚠", "#d98c00"), "info": ("•", None)}


#: how the findings name a model's codes ("8-d sparse AE codes", not "8-d SPARSE codes")
CODE_KIND = {"ae": "AE", "vae": "VAE", "sparse": "sparse AE", "contractive": "contractive AE", "aae": "adversarial AE"}


class LatentHealthLab(LabPanel):
    title = "Latent health"
    help_text = (
        "Is the code space in good shape? For a VAE, the KL of each dimension to the prior says how much "
        "information it carries; dimensions under the threshold are <i>inactive</i> (posterior collapse: the "
        "encoder outputs the prior for them whatever the image and the decoder ignores them; common with a strong "
        "decoder or a large β; remedies: KL annealing, a smaller β, a weaker decoder). For other models, a "
        "dimension whose value hardly varies is a <i>dead unit</i>. Silhouette and k-NN accuracy say how well "
        "classes separate in the code space."
    )

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self._params: dict[str, Any] = {}

        self.settings = ConfigForm(HealthSettings, self, into=self.controls, label_suffix=":", compact=True)
        self.threshold, self.knn_k = self.settings.widget("kl_threshold"), self.settings.widget("knn_k")

        # -- figure --
        fig = QWidget()
        fig.setAccessibleName("Latent health figure")
        fl = QHBoxLayout(fig)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.setSpacing(6)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setAccessibleName("Latent health plots")
        self.view.setMinimumHeight(260)
        self.bar_plot = self.view.addPlot(0, 0)
        self.bar_plot.setToolTip("Per-dimension KL to the prior (VAEs) or code variance (other models). Red bars: "
                                 "inactive or dead dimensions, which carry no information about the image.")
        self.stats_plot = self.view.addPlot(1, 0)
        self.stats_plot.setToolTip("Mean code value per dimension (dot) and ± one standard deviation across the "
                                   "validation images (bar). For a VAE, compare with the prior's ±1 (dashed).")
        for p in (self.bar_plot, self.stats_plot):
            p.setMenuEnabled(False)
            p.hideButtons()
            p.showGrid(x=False, y=True, alpha=0.2)
            p.getViewBox().setMouseEnabled(False, False)
        self.stats_plot.setXLink(self.bar_plot)
        for p in (self.bar_plot, self.stats_plot):
            p.getAxis("left").enableAutoSIPrefix(False)  # while the label is hidden, so the scale stays 1
        self.bars_active = pg.BarGraphItem(x=[], height=[], width=0.7, brush=ACTIVE, pen=pg.mkPen(None))
        self.bars_inactive = pg.BarGraphItem(x=[], height=[], width=0.7, brush=INACTIVE, pen=pg.mkPen(None))
        self.inactive_marks = pg.ScatterPlotItem(symbol="t1", size=9, brush=pg.mkBrush(INACTIVE), pen=pg.mkPen(None))
        self.threshold_line = pg.InfiniteLine(angle=0, movable=False,
                                              pen=pg.mkPen(INACTIVE, width=1, style=Qt.DashLine))
        for it in (self.bars_active, self.bars_inactive, self.inactive_marks, self.threshold_line):
            self.bar_plot.addItem(it)
        self.errors = pg.ErrorBarItem(pen=pg.mkPen(ACTIVE, width=2), beam=0.25)
        self.errors_bad = pg.ErrorBarItem(pen=pg.mkPen(INACTIVE, width=2), beam=0.25)
        self.means = pg.ScatterPlotItem(size=7, pen=pg.mkPen(None))
        self.prior_lines = [pg.InfiniteLine(pos=v, angle=0, movable=False,
                                            pen=pg.mkPen("#888888", width=1, style=Qt.DashLine)) for v in (-1.0, 1.0)]
        self.zero_line = pg.InfiniteLine(pos=0.0, angle=0, movable=False, pen=pg.mkPen("#888888", width=1))
        for it in (self.zero_line, *self.prior_lines, self.errors, self.errors_bad, self.means):
            self.stats_plot.addItem(it)
        fl.addWidget(self.view, 3)

        self.findings = QLabel()
        self.findings.setWordWrap(True)
        self.findings.setTextFormat(Qt.RichText)
        self.findings.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.findings.setAccessibleName("Findings")
        self.findings.setToolTip("What the numbers mean, most important first.")
        self.findings.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.findings.setContentsMargins(6, 4, 6, 4)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(self.findings)
        scroll.setAccessibleName("Findings list")
        scroll.setMinimumWidth(260)
        fl.addWidget(scroll, 2)
        self._style()
        self.set_figure(fig)
        self.splitter.setSizes([700, 140])
        self._ready = True

    # ---- helpers ----
    def _style(self) -> None:
        pal = self.palette()
        self.view.setBackground(pal.color(pal.ColorRole.Base))
        fg = pal.color(pal.ColorRole.Text)
        for p in (self.bar_plot, self.stats_plot):
            for name in ("left", "bottom"):
                axis = p.getAxis(name)
                axis.setPen(pg.mkPen(pal.color(pal.ColorRole.Mid)))
                axis.setTextPen(pg.mkPen(fg))  # after setPen: both set the label colour
            p.titleLabel.setAttr("color", fg.name())

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if getattr(self, "_ready", False) and event.type() == event.Type.PaletteChange:
            self._style()

    # ---- LabPanel API ----
    def run(self) -> None:
        self._params = dataclasses.asdict(self.settings.apply(HealthSettings()))
        super().run()

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> HealthReport:
        return health_report(data.model, data.train.images, data.train.labels, data.val.images, data.val.labels,
                             progress=progress, **(self._params or {}))

    def show_result(self, r: HealthReport) -> None:
        dims = np.arange(r.latent)
        values = r.kl if r.kl is not None else r.variance
        bad = np.zeros(r.latent, dtype=bool)
        bad[np.asarray(r.inactive, dtype=int)] = True
        self.bars_active.setOpts(x=dims[~bad], height=values[~bad], width=0.7)
        self.bars_inactive.setOpts(x=dims[bad], height=values[bad], width=0.7)
        self.bars_inactive.setVisible(bool(bad.any()))
        top = float(values.max()) if len(values) else 1.0
        self.inactive_marks.setData(x=dims[bad], y=np.full(int(bad.sum()), -0.03 * max(top, 1e-9)))
        fg = self.palette().color(self.palette().ColorRole.Text).name()
        flagged = (f"; <span style='color:{INACTIVE}'>red: {int(bad.sum())} {'inactive' if r.is_vae else 'dead'}</span>"
                   if bad.any() else "")
        if r.is_vae:
            self.bar_plot.setTitle(f"KL to the prior per dimension (total {r.total_kl:.2f} nats{flagged})", size="9pt")
            self.bar_plot.setLabel("left", "KL (nats)", color=fg)
            self.threshold_line.setValue(r.kl_threshold)
            self.threshold_line.show()
        else:
            self.bar_plot.setTitle(f"Code variance per dimension{' (' + flagged[2:] + ')' if flagged else ''}", size="9pt")
            self.bar_plot.setLabel("left", "variance", color=fg)
            self.threshold_line.setValue(r.dead_threshold ** 2)
            self.threshold_line.setVisible(bool(bad.any()))
        self.bar_plot.setYRange(-0.06 * max(top, 1e-9), 1.08 * max(top, 1e-9), padding=0)
        self.bar_plot.setXRange(-0.7, r.latent - 0.3, padding=0)

        colors = [pg.mkBrush(INACTIVE if b else ACTIVE) for b in bad]
        x = dims.astype(float)
        self.errors.setData(x=x[~bad], y=r.mean[~bad], height=2 * r.std[~bad])
        self.errors_bad.setData(x=x[bad], y=r.mean[bad], height=2 * r.std[bad])
        self.means.setData(x=dims, y=r.mean, brush=colors)
        for line in self.prior_lines:
            line.setVisible(r.is_vae)
        self.stats_plot.setTitle("Code mean ± std per dimension" + (" (dashed: prior ±1)" if r.is_vae else ""),
                                 size="9pt")
        self.stats_plot.setLabel("left", "code value", color=fg)
        self.stats_plot.setLabel("bottom", "latent dimension", color=fg)
        lo = float(np.min(r.mean - r.std)) if r.latent else -1.0
        hi = float(np.max(r.mean + r.std)) if r.latent else 1.0
        if r.is_vae:
            lo, hi = min(lo, -1.0), max(hi, 1.0)
        span = max(hi - lo, 1e-6)
        self.stats_plot.setYRange(lo - 0.08 * span, hi + 0.08 * span, padding=0)
        if r.latent <= 32:
            ticks = [[(i, f"{dim_name(i)}") for i in range(r.latent)], []]
        else:
            ticks = [[(i, f"{dim_name(i)}") for i in range(0, r.latent, max(1, r.latent // 16))], []]
        for p in (self.bar_plot, self.stats_plot):
            p.getAxis("bottom").setTicks(ticks)
        self._style()

        items = []
        for text, sev in zip(r.findings, r.severity):
            mark, color = SEVERITY_MARKS.get(sev, SEVERITY_MARKS["info"])
            style = f" style='color:{color}'" if color else ""
            items.append(f"<tr><td valign='top'{style}><b>{mark}</b>&nbsp;</td><td>{html.escape(text)}</td></tr>")
        scores = []
        if r.silhouette is not None:
            scores.append(f"silhouette <b>{r.silhouette:.2f}</b>")
        if r.knn_accuracy is not None:
            scores.append(f"{r.knn_k}-NN accuracy <b>{100 * r.knn_accuracy:.0f}%</b>")
        kind = CODE_KIND.get(r.kind, r.kind)
        head = f"<b>Findings</b> ({r.latent}-d {kind} codes of {r.n_val:,} validation images" + \
               (f"; {', '.join(scores)}" if scores else "") + ")"
        self.findings.setText(f"{head}<table cellspacing='0' cellpadding='2'>{''.join(items)}</table>")
        self.set_numbers(*r.rows())
        self._color_status()

    def _color_status(self) -> None:
        col = len(self.number_header) - 1
        for i, row in enumerate(self.number_rows):
            if row[-1] != "active":
                item = self.table.item(i, col)
                if item is not None:
                    item.setForeground(pg.mkColor(INACTIVE))
