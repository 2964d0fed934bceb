"""The "Loss curves" panel: every loss term, training (solid) and validation (dashed), per epoch.

Per-batch training values arrive from `training.progress` (already throttled to ~10 a second)
at fractional epochs (step / batches); per-epoch means of both splits arrive from
`training.epochEnded`. A loaded run's history is drawn from its epoch records. Stages of a
stacked model (layer-wise pretraining, then fine-tuning) are marked with vertical lines.

Data live in numpy buffers grown by doubling, and every curve is one PlotDataItem updated with
`setData`, so a long run stays cheap to draw.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Slot
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..core.losses import TERM_HELP
from . import imaging
from .state import StudioState

REDRAW_INTERVAL_S = 1.0

TERM_ORDER = ("total", "recon", "kl", "sparsity", "contractive", "disc", "gen", "weight_decay")
TERM_LABELS = {"total": "total", "recon": "reconstruction", "kl": "KL", "sparsity": "sparsity",
               "contractive": "contractive", "disc": "discriminator", "gen": "generator", "weight_decay": "weight decay"}
TOTAL_IS_RECON = "total = reconstruction"
TERM_COLORS = {"total": "#4e79a7", "recon": "#f28e2b", "kl": "#59a14f", "sparsity": "#e15759",
               "contractive": "#b07aa1", "disc": "#17becf", "gen": "#8c564b", "weight_decay": "#9c755f"}
EXTRA_COLORS = ["#76b7b2", "#edc948", "#ff9da7", "#bab0ac"]
READING_HINTS = {
    "total": "Validation well above training means the model is starting to memorise the training images.",
    "recon": "Lower is better; watch the dashed validation curve to judge how well the model generalises.",
    "kl": "It rises when the codes carry more information about each image; near zero the encoder "
          "ignores its input (posterior collapse) and all decodes look alike.",
    "sparsity": "Falling means fewer code units are active for each image.",
    "contractive": "Falling means the code changes less when the input is nudged: a smoother, more robust encoder.",
    "weight_decay": "Falling means smaller weights overall, which usually means a smoother model.",
    "disc": "Near 1.39 the discriminator cannot tell codes from prior samples (the goal); toward 0 it wins "
            "easily and the encoder's codes are far from the prior. Wild swings are the adversarial game's instability.",
    "gen": "Near 0.69 the encoder's codes pass for prior samples; rising while the discriminator's loss falls "
           "means the discriminator is winning.",
}

NO_TRAINING_TEXT = "No training yet: start a run, or open a saved one to see its curves."
PLOT_HELP = ("Loss per image against epochs. Solid lines: training loss of single batches; dots: its mean over "
             "each epoch, drawn at the epoch's middle. Dashed lines with circles: validation loss at the end of "
             "each epoch, on images the model never trains on. "
             "Hover a legend entry to learn what that term measures. Drag to pan, scroll to zoom, "
             "right-click for more view options.")


class _Series:
    """x/y float64 buffers grown by doubling; `view()` gives the filled part without copying."""

    __slots__ = ("x", "y", "n")

    def __init__(self, capacity: int = 256):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == self.x.shape[0]:
            self.x = np.concatenate([self.x, np.empty_like(self.x)])
            self.y = np.concatenate([self.y, np.empty_like(self.y)])
        self.x[self.n] = x
        self.y[self.n] = y
        self.n += 1

    def extend(self, xs, ys) -> None:
        for x, y in zip(xs, ys):
            self.append(x, y)

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]

    def clear(self) -> None:
        self.n = 0


class _LossAxis(imaging.OpaqueAxis):
    """In log mode, label ticks with plain numbers (20, 50, 100) instead of 2·10¹."""

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph)
        out = []
        for v in 10 ** np.asarray(values, dtype=float) * scale:
            out.append(f"{v:.3g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.0e}")
        return out


class _TermSample(pg.ItemSample):
    """Legend sample for one loss term: a solid (training) and a dashed (validation) stroke.
    Clicking it hides or shows all of the term's curves."""

    W, H = 44, 16

    def __init__(self, item, curves: "_TermCurves | None" = None):
        super().__init__(item)
        self.curves = curves
        self.setFixedWidth(self.W)
        self.setFixedHeight(self.H)

    def boundingRect(self):
        return QRectF(0, 0, self.W, self.H)

    def paint(self, p, *args):
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = QColor(self.item.opts["pen"].color())
        if not self.item.isVisible():
            color.setAlphaF(0.25)
        y = self.H / 2
        p.setPen(pg.mkPen(color, width=2))
        p.drawLine(QPointF(2, y), QPointF(16, y))
        p.setPen(pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine))
        p.drawLine(QPointF(22, y), QPointF(42, y))
        p.setPen(pg.mkPen(color, width=1.5))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(QPointF(32, y), 3, 3)

    def mouseClickEvent(self, event):
        if event.button() == Qt.MouseButton.LeftButton:
            if self.curves is not None:
                self.curves.set_visible(not self.curves.visible)
            else:
                self.item.setVisible(not self.item.isVisible())
        event.accept()
        self.update()
        self.sigClicked.emit(self.item)


class _TermCurves:
    """The curves of one loss term, all in the term's colour: the training line (one segment per
    training stage, so two stages' different losses are never joined), the epoch means of training
    (dots) and the validation curve (dashed)."""

    def __init__(self, term: str, color: QColor, plot_item: pg.PlotItem):
        self.term = term
        self.plot_item = plot_item
        self.visible = True
        line_color = QColor(color)
        line_color.setAlphaF(0.75)
        self._line_pen = pg.mkPen(line_color, width=1.2)
        self.segments: list[tuple[_Series, pg.PlotDataItem]] = []
        self.train = _Series()
        self.val = _Series()
        self.train_item = pg.PlotDataItem(pen=None, symbol="o", symbolSize=5, symbolPen=None,
                                          symbolBrush=pg.mkBrush(color))
        self.val_item = pg.PlotDataItem(pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine), symbol="o",
                                        symbolSize=6, symbolPen=pg.mkPen(color, width=1.5), symbolBrush=None)
        plot_item.addItem(self.train_item)
        plot_item.addItem(self.val_item)
        self._new_segment()

    # the training line: batch values (live) or epoch means (a loaded run, which has no batch values)
    @property
    def batch(self) -> _Series:
        return self.segments[-1][0]

    @property
    def batch_item(self) -> pg.PlotDataItem:
        return self.segments[-1][1]

    @property
    def items(self) -> list[pg.PlotDataItem]:
        return [it for _, it in self.segments] + [self.train_item, self.val_item]

    def _new_segment(self) -> None:
        item = pg.PlotDataItem(pen=self._line_pen)
        item.setVisible(self.visible)
        self.plot_item.addItem(item)
        self.segments.append((_Series(1024), item))

    def break_line(self) -> None:
        """Start a new line segment: the next stage's loss measures something else."""
        if self.batch.n:
            self.segments[-1][1].setData(*self.batch.view())
            self._new_segment()

    def refresh(self) -> None:
        """Redraw the growing parts (only the current line segment changes)."""
        self.refresh_line()
        self.train_item.setData(*self.train.view())
        self.val_item.setData(*self.val.view())

    def refresh_line(self) -> None:
        """Redraw the batch line only: the epoch points change at epoch ends, and redrawing their
        markers took three quarters of each progress redraw on the GUI thread."""
        self.batch_item.setData(*self.batch.view())

    def line_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole training line, segments separated by NaN."""
        xs, ys = [], []
        for series, _ in self.segments:
            if series.n:
                if xs:
                    xs.append(np.array([series.x[0]]))
                    ys.append(np.array([np.nan]))
                x, y = series.view()
                xs.append(x)
                ys.append(y)
        if not xs:
            return np.empty(0), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)

    def set_visible(self, on: bool) -> None:
        self.visible = on
        for it in self.items:
            it.setVisible(on)

    def remove(self) -> None:
        for it in self.items:
            self.plot_item.removeItem(it)


class LossCurvesPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Loss curves")
        self.terms: dict[str, _TermCurves] = {}
        self.stage_lines: list[pg.InfiniteLine] = []
        self.stage_labels: list[pg.TextItem] = []  # one per line, kept at the top of the view
        self._epochs_done = 0  # epochs drawn so far (x of the last epoch point)
        self._offset = 0.0  # x where the current run's step 0 sits
        self._stage_count = 1
        self._last_summary: tuple | None = None  # the last epoch summary shown (stage, epoch, epochs, train, val)

        self.plot = pg.PlotWidget(self, axisItems={**imaging.opaque_axes("bottom"), "left": _LossAxis("left")})
        self.plot.setAccessibleName("Loss curves plot")
        self.plot.setToolTip(PLOT_HELP)
        item = self.plot.getPlotItem()
        item.setToolTip(PLOT_HELP)
        item.setLabel("bottom", "epoch")
        item.setLabel("left", "loss per image")
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.setMenuEnabled(True)
        self.legend = imaging.legend_above(item, sample_type=_TermSample)  # never over a curve
        for axis in ("left", "bottom"):
            item.getAxis(axis).enableAutoSIPrefix(False)
        item.getViewBox().setLimits(xMin=-0.5)
        self._set_axes_visible(False)  # an empty plot shows no axes (they would mean nothing yet)

        self.log_box = QCheckBox("Log scale", self)
        self.log_box.setAccessibleName("Log scale")
        self.log_box.setToolTip("Show the loss on a logarithmic axis: equal steps are equal ratios, so both "
                                "the big early drop and the slow later progress stay visible.")
        self.log_box.toggled.connect(self._on_log_toggled)
        self.info = QLabel(NO_TRAINING_TEXT, self)
        self.info.setAccessibleName("Loss summary")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        self.key = QLabel("solid: training · dashed: validation", self)
        self.key.setToolTip(PLOT_HELP)
        top.addWidget(self.key)
        top.addStretch(1)
        top.addSpacing(8)
        top.addWidget(self.log_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.info.setWordWrap(True)
        lay.addLayout(top)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)
        self._apply_palette()

        t = state.training
        t.started.connect(self._on_started)
        t.stageStarted.connect(self._on_stage)
        t.progress.connect(self._on_progress)
        t.epochEnded.connect(self._on_epoch)
        t.finished.connect(self._on_finished)
        state.historyReset.connect(self._on_history)
        state.datasetChanged.connect(self._on_dataset)

    # ---- public ------------------------------------------------------------------------------
    def clear(self) -> None:
        item = self.plot.getPlotItem()
        for curves in self.terms.values():
            self.legend.removeItem(curves.val_item)
            curves.remove()
        self.terms.clear()
        for line in self.stage_lines:
            item.removeItem(line)
        for label in self.stage_labels:
            item.removeItem(label)
        self.stage_lines.clear()
        self.stage_labels.clear()
        self._epochs_done = 0
        self._offset = 0.0
        self._stage_count = 1
        self._last_summary = None
        self._set_axes_visible(False)
        self._update_tooltip()

    def curve_data(self, term: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of a term's curve: split "batch", "train" (epoch means) or "val". For tests and export."""
        c = self.terms.get(term)
        if c is None:
            return np.empty(0), np.empty(0)
        if split == "batch":
            return c.line_data()
        x, y = {"train": c.train, "val": c.val}[split].view()
        return x.copy(), y.copy()

    # ---- signal handlers ---------------------------------------------------------------------------
    @Slot()
    def _on_started(self) -> None:
        self._offset = float(self._epochs_done)
        self._stage_count = 1
        self.info.setText("Training started: waiting for the first batches…")

    @Slot(object)
    def _on_stage(self, e) -> None:
        self._stage_count = e.count
        if e.count > 1:
            x = float(self._epochs_done)
            self._add_stage_line(x, e.name)
            for curves in self.terms.values():
                curves.break_line()

    _last_redraw = 0.0

    @Slot(object)
    def _on_progress(self, e) -> None:
        x = self._offset + e.step / max(e.batches, 1)
        for term, value in e.terms.items():
            self._curves(term).batch.append(x, value)
        # the data is kept at every report; the plot is redrawn at most once a second (each redraw
        # costs the GUI thread ~10 ms that two training threads on a small machine feel)
        now = time.monotonic()
        if now - self._last_redraw >= REDRAW_INTERVAL_S or e.batch == e.batches:
            self._last_redraw = now
            for term in e.terms:
                self.terms[term].refresh_line()
        stage = f"{e.stage} · " if self._stage_count > 1 else ""
        total = e.terms.get("total")
        self.info.setText(f"{stage}epoch {e.epoch}/{e.epochs} · batch {e.batch}/{e.batches}"
                          + (f" · batch loss {total:.4g}" if total is not None else ""))

    @Slot(object)
    def _on_epoch(self, e) -> None:
        self._epochs_done += 1
        x = float(self._epochs_done)
        for term, value in e.train.items():  # a mean over the epoch belongs to its middle
            self._curves(term).train.append(x - 0.5, value)
        for term, value in e.val.items():
            self._curves(term).val.append(x, value)
        for term in set(e.train) | set(e.val):
            self.terms[term].refresh()
        self._show_epoch_summary(e.stage, e.epoch, e.epochs, e.train, e.val)

    @Slot(object)
    def _on_finished(self, e) -> None:
        """After a stop the model is the last completed epoch's: say so, not the last batch's epoch."""
        if e.reason == "completed":
            return
        if self._last_summary is not None:
            self._show_epoch_summary(*self._last_summary)
            self.info.setText(f"Stopped · kept {self.info.text()}")
        else:
            self.info.setText(e.message)

    @Slot(object)
    def _on_dataset(self, _data) -> None:
        """Curves of another data set's model mean nothing here."""
        self.clear()
        self.info.setText(NO_TRAINING_TEXT)

    @Slot(object)
    def _on_history(self, records) -> None:
        self.clear()
        records = list(records or [])
        if not records:
            self.info.setText("Waiting for the first batches…" if self.state.training.running else
                              NO_TRAINING_TEXT)
            return
        stages = [r.get("stage", "train") for r in records]
        multi = len(set(stages)) > 1
        previous = None
        for i, r in enumerate(records, start=1):
            stage = r.get("stage", "train")
            if multi and stage != previous:
                self._add_stage_line(float(i - 1), stage)
                for curves in self.terms.values():
                    curves.break_line()
            previous = stage
            for key, value in r.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if key.startswith("train_"):  # a loaded run has no batch values: the line joins the epoch means
                    curves = self._curves(key[6:])
                    curves.train.append(i - 0.5, float(value))
                    curves.batch.append(i - 0.5, float(value))
                elif key.startswith("val_"):
                    self._curves(key[4:]).val.append(float(i), float(value))
        for curves in self.terms.values():
            curves.refresh()
        self._epochs_done = len(records)
        last = records[-1]
        train = {k[6:]: v for k, v in last.items() if k.startswith("train_")}
        val = {k[4:]: v for k, v in last.items() if k.startswith("val_")}
        self._show_epoch_summary(last.get("stage", "train"), last.get("epoch", len(records)), None, train, val)
        self.plot.getPlotItem().enableAutoRange()

    @Slot(bool)
    def _on_log_toggled(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(x=False, y=on)
        self.plot.getPlotItem().setLabel("left", "loss per image (log scale)" if on else "loss per image")

    # ---- helpers -----------------------------------------------------------------------------------
    def _curves(self, term: str) -> _TermCurves:
        c = self.terms.get(term)
        if c is not None:
            return c
        if term in TERM_COLORS:
            color = QColor(TERM_COLORS[term])
        else:
            extra = [t for t in self.terms if t not in TERM_COLORS]
            color = QColor(EXTRA_COLORS[len(extra) % len(EXTRA_COLORS)])
        c = _TermCurves(term, color, self.plot.getPlotItem())
        self.terms[term] = c
        self._set_axes_visible(True)
        # keep the legend in the canonical term order
        order = {t: i for i, t in enumerate(TERM_ORDER)}
        for other in self.terms.values():
            self.legend.removeItem(other.val_item)
        # total is the sum of the terms: with reconstruction the only one, both are the same curve,
        # drawn once, under one legend entry (a second entry would name a line nobody can see)
        same = set(self.terms) == {"total", "recon"}
        for t in sorted(self.terms, key=lambda t: (order.get(t, 99), t)):
            other = self.terms[t]
            if t == "recon":
                other.set_visible(not same)
                if same:
                    continue
            sample = _TermSample(other.val_item, other)
            self.legend.addItem(sample, TOTAL_IS_RECON if same and t == "total" else TERM_LABELS.get(t, t))
        self._fit_legend()
        self._update_tooltip()
        return c

    def _fit_legend(self) -> None:
        """Wrap the legend's entries into rows that fit the plot's width (three terms of a VAE did not
        fit a 340 px plot: the last one was cut off)."""
        imaging.fit_legend_columns(self.legend, self.plot.width() - 60)  # less the left axis

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit_legend()

    def _term_tip(self, term: str) -> str:
        label = TOTAL_IS_RECON if term == "total" and set(self.terms) == {"total", "recon"} else TERM_LABELS.get(term, term)
        help_text = TERM_HELP.get(term, "A loss term reported by the model.")
        hint = READING_HINTS.get(term, "")
        return (f"<b>{label}</b>: solid line = training batches (dots: epoch means), dashed = validation."
                f"<br>{help_text}" + (f"<br><i>{hint}</i>" if hint else "") +
                "<br>Click the sample to hide or show these curves.")

    def _update_tooltip(self) -> None:
        by_item = {id(curves.val_item): self._term_tip(term) for term, curves in self.terms.items()}
        for sample, label in self.legend.items:
            tip = by_item.get(id(getattr(sample, "item", None)), "")
            sample.setToolTip(tip)
            label.setToolTip(tip)
        lines = [PLOT_HELP]
        for term in sorted(self.terms, key=lambda t: TERM_ORDER.index(t) if t in TERM_ORDER else 99):
            lines.append(f"<b>{TERM_LABELS.get(term, term)}</b>: {TERM_HELP.get(term, '')}")
        tip = "<br>".join(lines)
        self.plot.setToolTip(tip)
        self.plot.getPlotItem().setToolTip(tip)

    def _add_stage_line(self, x: float, name: str) -> None:
        fg = self.palette().color(QPalette.ColorRole.Text)
        muted = QColor(fg)
        muted.setAlphaF(0.45)
        line = pg.InfiniteLine(pos=x, angle=90, movable=False,
                               pen=pg.mkPen(muted, width=1, style=Qt.PenStyle.DotLine))
        tip = (f"Stage \"{name}\" starts here. Stacked autoencoders first pretrain one layer pair at a time "
               "(their reconstruction loss measures features, not pixels), then fine-tune the whole network "
               "end to end.")
        line.setToolTip(tip)
        item = self.plot.getPlotItem()
        item.addItem(line, ignoreBounds=True)
        # the name is an item of its own, not the line's built-in label (imaging.LineName says why)
        label = imaging.LineName(line, name, fg, at=1.0, anchor=(1, 1), angle=90).attach(item)
        label.setToolTip(tip)
        self.stage_lines.append(line)
        self.stage_labels.append(label)

    @property
    def axes_visible(self) -> bool:
        return self.plot.getPlotItem().getAxis("bottom").isVisible()

    def _set_axes_visible(self, on: bool) -> None:
        item = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            (item.showAxis if on else item.hideAxis)(axis)

    def _show_epoch_summary(self, stage: str, epoch: int, epochs: int | None, train: dict, val: dict) -> None:
        self._last_summary = (stage, epoch, epochs, train, val)
        parts = []
        if self._stage_count > 1 or stage not in ("train", None):
            parts.append(stage)
        parts.append(f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}")
        if "total" in train:
            parts.append(f"train total {train['total']:.4g}")
        if "total" in val:
            parts.append(f"validation total {val['total']:.4g}")
        self.info.setText(" · ".join(parts))

    def _apply_palette(self) -> None:
        imaging.style_plot(self.plot, self.palette(), legend_frame=False)
        self.key.setStyleSheet(f"color: {self.palette().color(QPalette.ColorRole.PlaceholderText).name()};")
        fg = self.palette().color(QPalette.ColorRole.Text)
        for label in self.stage_labels:
            label.setColor(fg)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._apply_palette()
        super().changeEvent(event)
