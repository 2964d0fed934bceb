"""The "Few labels" lab: classification accuracy against the number of labelled images per class,
for the model's codes, PCA features of the same size and raw pixels (and optionally a fine-tuned
encoder). The computation lives in `aestudio.core.labs.few_labels`; this is its view.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ...core.labs.few_labels import (FEATURE_LABELS, FewLabelsResult, FewLabelsSettings, count_label,
                                     few_labels_experiment, summary_lines)
from .. import imaging
from ..forms import ConfigForm
from ..state import StudioState
from .base import LabData, LabPanel, lab_data

COUNT_CHOICES: tuple[int | None, ...] = (1, 5, 10, 50, None)
CURVE_COLORS = {"codes": "#4e79a7", "pca": "#f28e2b", "raw": "#9c755f", "finetune": "#59a14f"}
CURVE_SYMBOLS = {"codes": "o", "pca": "s", "raw": "t", "finetune": "d"}


class FewLabelsLab(LabPanel):
    title = "Few labels"
    help_text = (
        "Plenty of images, few labels: how well can a classifier learn from N labelled images per class? "
        "A logistic regression is trained on the N labelled training images and scored on the validation images, "
        "using the model's <i>codes</i>, <i>PCA</i> features of the same size, or the <i>raw pixels</i>. "
        "The autoencoder (and PCA) learned from every training image without labels. "
        "Why codes can win with few labels: a code has a handful of numbers that already summarise what varies "
        "between images, so the classifier has far fewer weights to fit than on thousands of pixels and "
        "overfits less. With many labels the pixels catch up: the classifier can then learn what matters itself."
    )

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self._params: dict[str, Any] = {}

        # -- controls --
        counts_row = QWidget()
        counts_row.setAccessibleName("Labels per class")
        lay = QHBoxLayout(counts_row)
        lay.setContentsMargins(0, 0, 0, 0)
        self.count_boxes: dict[int | None, QCheckBox] = {}
        for c in COUNT_CHOICES:
            box = QCheckBox(count_label(c))
            box.setChecked(True)
            box.setAccessibleName(f"{count_label(c)} labels per class")
            box.setToolTip(
                "Use every labelled training image (the fully supervised end of the curve)." if c is None else
                f"Train the classifier on {c} labelled image{'s' if c != 1 else ''} of each class, drawn at random "
                "from the training split. Fewer labels: the regime where a good representation matters most.")
            lay.addWidget(box)
            self.count_boxes[c] = box
        lay.addStretch(1)
        self.controls.addRow("Labels per class:", counts_row)

        self.settings = ConfigForm(FewLabelsSettings, self, into=self.controls, label_suffix=":", compact=True)
        self.repeats, self.seed = self.settings.widget("repeats"), self.settings.widget("seed")
        self.finetune, self.finetune_epochs = self.settings.widget("finetune"), self.settings.widget("finetune_epochs")

        # -- figure --
        fig = QWidget()
        fig.setAccessibleName("Few labels figure")
        fv = QVBoxLayout(fig)
        fv.setContentsMargins(0, 0, 0, 0)
        fv.setSpacing(4)
        self.plot = pg.PlotWidget()
        self.plot.setAccessibleName("Accuracy against labels per class")
        self.plot.setToolTip("Accuracy on the validation images against labelled training images per class "
                             "(logarithmic axis). Error bars: one standard deviation over the random draws. "
                             "The dashed line is chance.")
        self.plot.setMinimumHeight(240)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setLabel("bottom", "labelled images per class (log scale)")
        item.getAxis("bottom").enableAutoSIPrefix(False)  # its values are log10s: "(x0.001)" would be nonsense
        item.setLabel("left", "accuracy (%)")
        item.setTitle("Classification accuracy with few labels", size="9pt")
        self.legend = item.addLegend(offset=(-10, -10))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.bars: dict[str, pg.ErrorBarItem] = {}
        for name, color in CURVE_COLORS.items():
            pen = pg.mkPen(color, width=2)
            curve = pg.PlotDataItem(pen=pen, symbol=CURVE_SYMBOLS[name], symbolSize=8, symbolBrush=pg.mkBrush(color),
                                    symbolPen=pg.mkPen(color), name=FEATURE_LABELS[name])
            bar = pg.ErrorBarItem(pen=pg.mkPen(color, width=1.5), beam=0.04)
            item.addItem(bar)
            item.addItem(curve)
            self.curves[name], self.bars[name] = curve, bar
        self.chance_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#888888", width=1, style=Qt.DashLine))
        item.addItem(self.chance_line)
        self.chance_line.hide()
        # named two thirds along: clear of the fewest-label points, whose error bars can reach chance
        self.chance_name = imaging.LineName(self.chance_line, "chance", "#888888", at=0.66).attach(item)
        self._clear_legend()
        imaging.style_plot(self.plot, self.palette())
        fv.addWidget(self.plot, 1)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setAccessibleName("Few labels summary")
        self.caption.setTextFormat(Qt.RichText)
        fv.addWidget(self.caption)
        self.set_figure(fig)
        self._ready = True
        self.on_model_changed(lab_data(state))

    # ---- helpers ----
    def _clear_legend(self) -> None:
        self.legend.clear()
        for curve in self.curves.values():
            curve.setData([], [])
        for bar in self.bars.values():
            bar.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))

    def selected_counts(self) -> list[int | None]:
        return [c for c, box in self.count_boxes.items() if box.isChecked()]

    # ---- LabPanel API ----
    def run(self) -> None:
        counts = self.selected_counts()
        if not counts:
            self.notice.setText("Tick at least one number of labels per class.")
            return
        s = self.settings.apply(FewLabelsSettings())
        self._params = {"counts": counts, "repeats": s.repeats, "seed": s.seed, "finetune": s.finetune,
                        "epochs": s.finetune_epochs}
        super().run()

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> FewLabelsResult:
        s = FewLabelsSettings()
        p = self._params or {"counts": list(COUNT_CHOICES), "repeats": s.repeats, "seed": s.seed, "finetune": s.finetune,
                             "epochs": s.finetune_epochs}
        return few_labels_experiment(data.model, data.train.images, data.train.labels, data.val.images, data.val.labels,
                                     p["counts"], p["repeats"], p["seed"], p["finetune"], p["epochs"], progress=progress)

    def show_result(self, result: FewLabelsResult) -> None:
        item = self.plot.getPlotItem()
        self._clear_legend()
        x = np.log10(np.maximum(result.per_class, 1e-3))
        order = np.argsort(x, kind="stable")
        x = x[order]
        for name, (means, stds) in result.curves.items():
            y, e = 100 * means[order], 100 * stds[order]
            self.curves[name].setData(x, y)
            self.bars[name].setData(x=x, y=y, height=2 * e)
            self.legend.addItem(self.curves[name], FEATURE_LABELS.get(name, name))
        ticks = [(float(np.log10(max(pc, 1e-3))), f"all ({pc:.0f})" if c is None else str(c))
                 for c, pc in zip(result.counts, result.per_class)]
        item.getAxis("bottom").setTicks([ticks, []])
        item.getAxis("left").setTicks(None)
        self.chance_line.setValue(100 * result.chance)
        self.chance_line.show()
        span = (x.max() - x.min()) if len(x) > 1 else 1.0
        item.setXRange(x.min() - 0.08 * span - 0.05, x.max() + 0.08 * span + 0.05, padding=0)
        lows = [100 * (m - s).min() for m, s in result.curves.values()] + [100 * result.chance]
        item.setYRange(max(0.0, min(lows) - 5), 100, padding=0)
        item.setTitle(f"Accuracy with few labels ({result.latent}-d codes, {result.n_train:,} training and "
                      f"{result.n_test:,} validation images, {result.repeats} draw{'s' if result.repeats != 1 else ''})",
                      size="9pt", color=self.palette().color(self.palette().ColorRole.Text).name())
        lines = summary_lines(result) + result.notes
        self.caption.setText("<br>".join(lines))
        self.set_numbers(*result.rows())

    def on_model_changed(self, data: LabData | None) -> None:
        if not getattr(self, "_ready", False):
            return
        if data is not None and data.train.labels is None:
            self.run_button.setEnabled(False)
            self.notice.setText("This data set has no class labels: the few-labels lab needs labelled images.")
        elif data is not None and len(data.train.class_names) < 2:
            self.run_button.setEnabled(False)
            self.notice.setText("This data set has one class: the few-labels lab needs two or more (a folder with "
                                "one subfolder per class).")

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if getattr(self, "_ready", False) and event.type() == event.Type.PaletteChange:
            imaging.style_plot(self.plot, self.palette())
