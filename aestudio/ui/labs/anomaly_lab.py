"""The anomaly lab: reconstruction error as an "is this unusual?" score.

* Run: score every validation image (up to 10,000) with the current model; a histogram of the
  scores with a draggable threshold (the flagged count updates as it moves, from the precomputed
  scores only) and a gallery of the most unusual images with their error maps |x - x_hat|.
* Train on normal classes: a fresh model of the current architecture learns only the checked
  classes (a budget of optimizer steps, off the GUI thread; a note says when it was still
  improving when the steps ran out); then the histogram splits normal / other classes
  and the ROC curve shows how well the error separates them, with PCA's AUROC for reference.
* Score a folder…: any folder of images, loaded at the model's size, ranked by error with
  thumbnails and flagged by the current threshold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (QAbstractItemView, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QListView,
                               QListWidget, QListWidgetItem, QPushButton, QSizePolicy, QTabWidget,
                               QVBoxLayout, QWidget)

from ...core.labs import anomaly as core
from ...core.training import Control
from .. import imaging
from ...core.labs.budget import ANOMALY_STEPS
from .base import (LabData, LabPanel, lab_data, model_train_config, set_training_note, steps_spinbox, steps_text,
                   training_note_label)
from .denoising_lab import ImageRow, ImageRows, stop_all

DEFAULT_STEPS = ANOMALY_STEPS
TABLE_ROWS = 100  # most unusual validation images listed in the numbers table
FOLDER_THUMBS = 2000  # folder images listed with a thumbnail
FLAG_COLOR = "#d64545"
NORMAL_COLOR = "#4e79a7"
OTHER_COLOR = "#f28e2b"

HIST_HELP = ("How many validation images reconstruct with each error (MSE per pixel). Most images sit in the bulk "
             "on the left; the tail on the right holds the ones the model finds unusual. Drag the red line to "
             "choose the threshold above which an image is flagged.")
ROC_HELP = ("ROC curve: for every possible threshold, the fraction of other-class images caught (true positive "
            "rate) against the fraction of normal images wrongly flagged (false positive rate). The area under "
            "it (AUROC) is 1 for a perfect detector and 0.5 for guessing. PCA with as many components as the "
            "code is the linear reference.")

CLASSES_TIP = ("Normal classes: a model trained only on images of these classes learns what \"normal\" looks like; "
               "images of the other classes are then unusual to it and should reconstruct badly. Check one or more, "
               "leave at least one out.")
TRAIN_TIP = ("Train a fresh model of the current architecture on the checked classes only, then score the validation "
             "set with it and draw the ROC curve (anomaly = any class not checked).")
NO_CLASSES = ("This data set has fewer than two classes, so there is no \"normal\" class to train on and no "
              "other class to flag. A folder with one subfolder per class has them.")
ROC_HINT = "Train on normal classes\nto see the ROC curve"
NO_CLASSES_ROC = "A ROC curve needs two or\nmore classes: load a folder\nwith one subfolder per class"


@dataclass
class AnomalyResult:
    job: str  # "scores" | "normal" | "folder"
    report: core.AnomalyReport | None
    model: Any = None  # the normal-class model (job "normal")
    model_desc: str = "the current model"
    normal: core.NormalClassResult | None = None
    folder: core.FolderScores | None = None
    note: str | None = None  # the normal-class model was still improving when its steps ran out


class AnomalyLab(LabPanel):
    title = "Anomaly lab"
    help_text = (
        "An autoencoder reconstructs well what looks like its training data, so a large reconstruction error "
        "marks an image as unusual. <i>Run</i> scores the validation images; drag the threshold to flag the tail. "
        "<i>Train on normal classes</i>: train only on normal data (the checked classes), then unusual images, "
        "those of the other classes, reconstruct badly; the ROC curve shows how well the error tells them apart. "
        "<i>Score a folder…</i> asks the same of any folder of images."
    )

    def __init__(self, state, parent: QWidget | None = None):
        self._request: dict[str, Any] = {}
        self._controls_started: list[Control] = []
        self._report: core.AnomalyReport | None = None
        self._active_model: Any = None  # None: the current model
        self._active_desc = "the current model"
        self._normal: core.NormalClassResult | None = None
        self._note: str | None = None
        self._folder: core.FolderScores | None = None
        self._class_names: list[str] | None = None
        self._threshold = 0.0
        self._syncing = False
        self._flag_col = -1
        self._row_scores: list[float] = []
        super().__init__(state, parent)
        self.destroyed.connect(lambda *_a, c=self._controls_started: stop_all(c))

        # -- controls --
        self.classes = QListWidget()
        self.classes.setAccessibleName("Normal classes")
        self.classes.setFlow(QListView.Flow.LeftToRight)
        self.classes.setWrapping(True)
        self.classes.setResizeMode(QListView.ResizeMode.Adjust)
        self.classes.setSpacing(1)
        self.classes.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.classes.setMaximumHeight(2 * self.classes.fontMetrics().height() + 18)
        self.classes.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.steps = steps_spinbox(
            DEFAULT_STEPS, "Training steps",
            "Optimizer steps the normal-class model trains for (on this run's training split, normal classes only, "
            "with its batch size and learning rate), however many images that is. A note says when it was still "
            "improving at the end.")
        self.train_button = QPushButton()
        self.train_button.setAccessibleName("Train on normal classes")
        self.train_button.clicked.connect(self.train_normal)
        self.folder_button = QPushButton("Score a folder…")
        self.folder_button.setAccessibleName("Score a folder")
        self.folder_button.setToolTip("Load any folder of images at the model's image size and rank them by "
                                      "reconstruction error: which of these look unusual to the model? Images above "
                                      "the threshold are flagged.")
        self.folder_button.clicked.connect(self._ask_folder)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setDecimals(5)
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.0005)
        self.threshold_box.setAccessibleName("Anomaly threshold")
        self.threshold_box.setToolTip("Images whose reconstruction error (MSE per pixel) is above this value are "
                                      "flagged as unusual. Same as dragging the red line in the histogram.")
        self.threshold_box.setEnabled(False)
        self.threshold_box.valueChanged.connect(self._on_threshold_box)

        train_row = QHBoxLayout()
        train_row.addWidget(self.classes, 1)
        train_row.addWidget(self.steps)
        train_row.addWidget(self.train_button)
        other_row = QHBoxLayout()
        other_row.addWidget(self.threshold_box)
        other_row.addSpacing(12)
        other_row.addWidget(self.folder_button)
        other_row.addStretch(1)
        normal_label = QLabel("Normal classes:")
        normal_label.setToolTip(self.classes.toolTip())
        normal_label.setBuddy(self.classes)
        thr_label = QLabel("Threshold:")
        thr_label.setToolTip(self.threshold_box.toolTip())
        thr_label.setBuddy(self.threshold_box)
        self.controls.addRow(normal_label, train_row)
        self.controls.addRow(thr_label, other_row)

        # -- figure --
        fig = QWidget()
        fig.setAccessibleName("Anomaly lab figure")
        self.status = QLabel("Press Run to score the validation images with the current model.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setAccessibleName("Anomaly lab status")
        self.note_label = training_note_label()
        self.flagged_label = QLabel("")
        self.flagged_label.setTextFormat(Qt.TextFormat.RichText)
        self.flagged_label.setAccessibleName("Flagged images")
        self.flagged_label.setToolTip("How many validation images are above the threshold.")

        self.hist = pg.PlotWidget()
        self.hist.setAccessibleName("Reconstruction error histogram")
        self.hist.setToolTip(HIST_HELP)
        hp = self.hist.getPlotItem()
        hp.hideButtons()
        hp.setMenuEnabled(False)
        hp.setLabel("bottom", "reconstruction error (MSE per pixel)")
        hp.setLabel("left", "images")
        hp.getAxis("bottom").enableAutoSIPrefix(False)
        hp.showGrid(x=False, y=True, alpha=0.15)
        self.hist_items: list[pg.PlotDataItem] = []
        self.line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen(FLAG_COLOR, width=2),
                                    hoverPen=pg.mkPen(FLAG_COLOR, width=4))
        self.line.setZValue(10)
        self.line.hide()
        hp.addItem(self.line, ignoreBounds=True)
        self.line_name = imaging.LineName(self.line, "threshold", FLAG_COLOR, at=0.92).attach(hp)
        self.line.sigPositionChanged.connect(self._on_line_moved)

        self.roc_plot = pg.PlotWidget()
        self.roc_plot.setAccessibleName("ROC curve")
        self.roc_plot.setToolTip(ROC_HELP)
        rp = self.roc_plot.getPlotItem()
        rp.hideButtons()
        rp.setMenuEnabled(False)
        rp.setMouseEnabled(x=False, y=False)
        rp.setLabel("bottom", "false positive rate")
        rp.setLabel("left", "true positive rate")
        rp.setXRange(0, 1, padding=0.02)
        rp.setYRange(0, 1, padding=0.02)
        rp.showGrid(x=True, y=True, alpha=0.15)
        self.roc_legend = rp.addLegend(offset=(-8, -8), labelTextSize="8pt")
        self.roc_chance = rp.plot([0, 1], [0, 1], pen=pg.mkPen((128, 128, 128), width=1, style=Qt.PenStyle.DashLine))
        self.roc_ae = rp.plot([], [], pen=pg.mkPen(OTHER_COLOR, width=2.5))
        self.roc_pca = rp.plot([], [], pen=pg.mkPen(NORMAL_COLOR, width=2, style=Qt.PenStyle.DashDotLine))
        self.roc_hint = pg.TextItem(ROC_HINT, anchor=(0.5, 0.5))
        self.roc_hint.setPos(0.5, 0.5)
        rp.addItem(self.roc_hint)

        plots = QHBoxLayout()
        plots.setSpacing(6)
        plots.addWidget(self.hist, 3)
        plots.addWidget(self.roc_plot, 2)

        self.gallery = ImageRows(tile=40, caption_width=46)
        self.gallery.setAccessibleName("Most unusual validation images")
        gallery_page = QWidget()
        gl = QVBoxLayout(gallery_page)
        gl.setContentsMargins(4, 4, 4, 4)
        gl.addWidget(self.gallery)
        gl.addStretch(1)
        self.folder_list = QListWidget()
        self.folder_list.setAccessibleName("Scored folder images")
        self.folder_list.setToolTip("The folder's images, most unusual (highest reconstruction error) first. "
                                    "Red: above the threshold.")
        self.folder_list.setViewMode(QListView.ViewMode.IconMode)
        self.folder_list.setIconSize(QSize(48, 48))
        self.folder_list.setGridSize(QSize(104, 92))
        self.folder_list.setResizeMode(QListView.ResizeMode.Adjust)
        self.folder_list.setMovement(QListView.Movement.Static)
        self.folder_list.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Anomaly lab views")
        self.tabs.addTab(gallery_page, "Most unusual validation images")
        self.tabs.addTab(self.folder_list, "Scored folder")
        self.tabs.setTabToolTip(0, "The validation images with the highest reconstruction error, with their error "
                                   "maps |x − x̂|: bright pixels are where the reconstruction misses.")
        self.tabs.setTabToolTip(1, "Images of a folder you chose, ranked by reconstruction error.")

        lay = QVBoxLayout(fig)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        lay.addWidget(self.status)
        lay.addWidget(self.note_label)
        lay.addWidget(self.flagged_label)
        lay.addLayout(plots, 3)
        lay.addWidget(self.tabs, 2)
        self.set_figure(fig)
        for plot in (self.hist, self.roc_plot):
            imaging.style_plot(plot, self.palette())
            plot.setMinimumHeight(150)

        self.steps.valueChanged.connect(self._update_train_text)
        self._update_train_text()
        self.on_model_changed(lab_data(state))


    # ---- settings ----
    def _update_train_text(self) -> None:
        self.train_button.setText(f"Train on normal classes ({steps_text(self.steps.value())})")

    @property
    def normal_classes(self) -> list[int]:
        return [i for i in range(self.classes.count())
                if self.classes.item(i).checkState() == Qt.CheckState.Checked]

    def set_normal_classes(self, classes: list[int]) -> None:
        for i in range(self.classes.count()):
            self.classes.item(i).setCheckState(Qt.CheckState.Checked if i in classes else Qt.CheckState.Unchecked)

    def _fill_classes(self, names: list[str] | None) -> None:
        if names == self._class_names:
            return
        self._class_names = names
        self.classes.clear()
        for i, name in enumerate(names or []):
            item = QListWidgetItem(name)
            item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            item.setCheckState(Qt.CheckState.Checked if i == 0 else Qt.CheckState.Unchecked)
            item.setToolTip(f"Treat class {name!r} as normal")
            self.classes.addItem(item)

    def _update_actions(self) -> None:
        ready = self.run_button.isEnabled()
        labelled = len(self._class_names or []) >= 2  # one class has no "other" class to flag
        self.classes.setEnabled(labelled)
        self.train_button.setEnabled(ready and labelled)
        self.folder_button.setEnabled(ready)
        self.classes.setToolTip(CLASSES_TIP if labelled else NO_CLASSES)
        self.train_button.setToolTip(TRAIN_TIP if labelled else NO_CLASSES)
        self.roc_hint.setText(ROC_HINT if labelled else NO_CLASSES_ROC)

    def on_model_changed(self, data: LabData | None) -> None:
        if not hasattr(self, "train_button"):
            return
        if data is not None:
            self._fill_classes(list(data.train.class_names) if data.train.labels is not None else [])
        self._update_actions()

    # ---- threshold (GUI side only: counts from the precomputed scores) ----
    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def flagged_count(self) -> int:
        return core.count_flagged(self._report.scores, self._threshold)[0] if self._report is not None else 0

    def set_threshold(self, value: float) -> None:
        """Move the threshold (as dragging the line would)."""
        self._apply_threshold(float(value))

    @Slot(object)
    def _on_line_moved(self, _line: Any = None) -> None:
        if not self._syncing:
            self._apply_threshold(float(self.line.value()))

    @Slot(float)
    def _on_threshold_box(self, value: float) -> None:
        if not self._syncing:
            self._apply_threshold(float(value))

    def _apply_threshold(self, value: float) -> None:
        self._threshold = max(0.0, value)
        self._syncing = True
        try:
            if abs(self.line.value() - self._threshold) > 1e-12:
                self.line.setValue(self._threshold)
            if abs(self.threshold_box.value() - self._threshold) > 10 ** -self.threshold_box.decimals():
                self.threshold_box.setValue(self._threshold)
        finally:
            self._syncing = False
        self._update_flags()

    def _update_flags(self) -> None:
        rep = self._report
        if rep is None:
            self.flagged_label.setText("")
            return
        n, pct = core.count_flagged(rep.scores, self._threshold)
        text = (f"Threshold <b>{self._threshold:.4g}</b>: <b><span style='color:{FLAG_COLOR}'>{n:,}</span></b> of "
                f"{rep.n:,} validation images flagged (<b>{pct:.1f}%</b>)")
        if self._normal is not None and len(self._normal.is_anomaly) == rep.n:
            flagged = rep.scores > self._threshold
            hits = int(np.count_nonzero(flagged & self._normal.is_anomaly))
            caught = int(np.count_nonzero(self._normal.is_anomaly))
            text += (f"; {hits:,} of them from other classes, catching {hits:,} of {caught:,} "
                     f"({100.0 * hits / max(caught, 1):.0f}%)")
        if self._folder is not None:
            fn = int(np.count_nonzero(self._folder.scores > self._threshold))
            text += f"; folder: {fn:,} of {self._folder.n:,} flagged"
        self.flagged_label.setText(text)
        # flags in the table and the folder list
        if self._flag_col >= 0:  # only the rows whose flag changed are touched
            for r, score in enumerate(self._row_scores):
                mark = "yes" if score > self._threshold else ""
                if self.number_rows[r][self._flag_col] != mark:
                    self.number_rows[r][self._flag_col] = mark
                    item = self.table.item(r, self._flag_col)
                    if item is not None:
                        item.setText(mark)
        self._color_folder_items()

    # ---- actions ----
    @Slot()
    def run(self) -> None:
        self._start("scores")

    @Slot()
    def train_normal(self) -> None:
        if not self.normal_classes:
            self.notice.setText("Check at least one normal class first.")
            return
        self._start("normal")

    def score_folder(self, path: str) -> None:
        """Score every image of a folder with the active model (off the GUI thread)."""
        self._start("folder", path=str(path))

    @Slot()
    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Score a folder of images")
        if path:
            self.score_folder(path)

    def _start(self, job: str, **extra: Any) -> None:
        if self.busy:
            return
        control = Control()
        self._controls_started[:] = [control]
        snap = self.state.snapshot
        self._request = {
            "job": job, "classes": self.normal_classes, "steps": self.steps.value(),
            "train_config": model_train_config(self.state), "control": control,
            "model": self._active_model, "desc": self._active_desc, "need_report": self._report is None,
            "latent": snap.model_config.latent if snap is not None else 2, **extra,
        }
        LabPanel.run(self)
        if self.busy:
            self.notice.setText({"normal": "Training on the normal classes…", "folder": "Loading and scoring the folder…"}
                                .get(job, "Scoring the validation images…"))
            for w in (self.train_button, self.folder_button):
                w.setEnabled(False)

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> AnomalyResult:
        req = dict(self._request)
        job = req["job"]
        val = data.val
        if job == "scores":
            rep = core.anomaly_report(data.model, val.images, val.labels, val.class_names, progress=progress)
            return AnomalyResult("scores", rep)
        if job == "normal":
            tc = req["train_config"]
            trained = core.train_normal_model(data.snapshot.model_config, data.train, req["classes"], req["steps"],
                                              progress, seed=tc.seed, control=req["control"], train_config=tc,
                                              val_set=val)
            model = trained.model
            rep = core.anomaly_report(model, val.images, val.labels, val.class_names)
            normal = core.normal_class_result(rep.scores, val, data.train, req["classes"], req["latent"], tc.seed)
            names = ", ".join(val.class_names[i] for i in normal.normal_classes)
            desc = f"a model trained {steps_text(trained.steps)} on the normal classes ({names})"
            note = trained.note("The normal-class model")
            if note:
                note = note.replace("its verdict may understate it", "its AUROC may understate it")
            return AnomalyResult("normal", rep, model, desc, normal, note=note)
        model = req["model"] if req["model"] is not None else data.model
        folder = core.score_folder(model, req["path"], progress=progress)
        rep = core.anomaly_report(model, val.images, val.labels, val.class_names) if req["need_report"] else None
        return AnomalyResult("folder", rep, req["model"], req["desc"], folder=folder)

    def on_idle(self) -> None:
        self._update_actions()

    # ---- drawing ----
    def show_result(self, result: AnomalyResult) -> None:
        if result.job in ("scores", "normal"):
            self._active_model = result.model
            self._active_desc = result.model_desc
            self._normal = result.normal
            self._note = result.note
            self._folder = None
            self.folder_list.clear()
        if result.report is not None:
            self._report = result.report
            self._draw_report(result.report)
        if result.job == "folder":
            self._folder = result.folder
            self._draw_folder(result.folder)
            self.tabs.setCurrentIndex(1)
        else:
            self.tabs.setCurrentIndex(0)
            self._draw_roc(result.normal)
            self._fill_table_validation()
        set_training_note(self.note_label, self._note if self._active_model is not None else None)
        self._update_flags()

    def _draw_report(self, rep: core.AnomalyReport) -> None:
        hp = self.hist.getPlotItem()
        for item in self.hist_items:
            hp.removeItem(item)
        self.hist_items = []
        edges = rep.edges
        normal = self._normal if self._normal is not None and len(self._normal.is_anomaly) == rep.n else None
        if normal is None:
            groups = [("validation images", rep.scores, NORMAL_COLOR)]
        else:
            groups = [("normal classes", rep.scores[~normal.is_anomaly], NORMAL_COLOR),
                      ("other classes", rep.scores[normal.is_anomaly], OTHER_COLOR)]
        for name, scores, color in groups:
            counts, _ = np.histogram(np.clip(scores, edges[0], edges[-1]), bins=edges)
            fill = QColor(color)
            fill.setAlpha(110)
            item = pg.PlotDataItem(edges, counts, stepMode="center", fillLevel=0, brush=pg.mkBrush(fill),
                                   pen=pg.mkPen(color, width=1.5), name=name)
            hp.addItem(item)
            self.hist_items.append(item)
        hp.setXRange(float(edges[0]), float(edges[-1]), padding=0.03)
        hp.enableAutoRange(axis="y")
        hi = float(max(rep.scores.max(), edges[-1])) * 1.05
        self.line.setBounds((0.0, hi))
        self.line.show()
        self.threshold_box.setEnabled(True)
        self._syncing = True
        self.threshold_box.setRange(0.0, hi)
        self.threshold_box.setSingleStep(max(hi / 200.0, 1e-5))
        self._syncing = False
        key = ("" if normal is None else f" Histogram: <b><span style='color:{NORMAL_COLOR}'>normal classes</span></b>"
               f" and <b><span style='color:{OTHER_COLOR}'>other classes</span></b>.")
        self.status.setText(f"Scored {rep.n:,} validation images with <b>{self._active_desc}</b>.{key} "
                            "Drag the red line (or set the threshold above) to flag the unusual ones.")
        if normal is not None and (~normal.is_anomaly).any():  # flag what is less typical than 95% of normal images
            self._apply_threshold(core.default_threshold(rep.scores[~normal.is_anomaly]))
        else:
            self._apply_threshold(rep.threshold)

        names = rep.class_names
        rows = [ImageRow("Most unusual", rep.top_images,
                         [f"{s:.3g}" for s in rep.scores[rep.top]],
                         "The validation images with the highest reconstruction error, highest first; "
                         "caption: the error (MSE per pixel)."),
                ImageRow("Reconstruction", rep.top_outputs,
                         [names[int(rep.labels[i])] if rep.labels is not None and names else "" for i in rep.top],
                         "What the model makes of them; caption: the image's class."),
                ImageRow("Error map", rep.top_maps, [],
                         "|x − x̂| per pixel (bright: large error), one colour scale for all maps.", heat=True,
                         heat_max=float(rep.top_maps.max()) if rep.top_maps.size else 1.0)]
        self.gallery.set_rows(rows)

    def _draw_roc(self, normal: core.NormalClassResult | None) -> None:
        self.roc_legend.clear()
        self.roc_legend.setVisible(normal is not None)
        if normal is None:
            self.roc_ae.setData([], [])
            self.roc_pca.setData([], [])
            self.roc_hint.show()
            return
        self.roc_hint.hide()
        self.roc_ae.setData(normal.model_roc.fpr, normal.model_roc.tpr)
        self.roc_pca.setData(normal.pca_roc.fpr, normal.pca_roc.tpr)
        self.roc_legend.addItem(self.roc_ae, f"autoencoder: AUROC {normal.model_roc.auroc:.3f}")
        self.roc_legend.addItem(self.roc_pca, f"PCA-{normal.pca_k}: AUROC {normal.pca_roc.auroc:.3f}")
        imaging.style_plot(self.roc_plot, self.palette())

    def _fill_table_validation(self) -> None:
        rep = self._report
        if rep is None:
            return
        names = rep.class_names
        normal = self._normal
        order = np.argsort(-rep.scores, kind="stable")[:TABLE_ROWS]
        header = ["rank", "validation image", "class", "error (MSE)"]
        if normal is not None:
            header.append("other class (true anomaly)")
        header.append("flagged")
        rows = []
        for r, i in enumerate(order):
            cls = names[int(rep.labels[i])] if rep.labels is not None and names else ""
            row: list[Any] = [r + 1, f"val #{i}", cls, float(rep.scores[i])]
            if normal is not None:
                row.append("yes" if normal.is_anomaly[i] else "no")
            row.append("")
            rows.append(row)
        if normal is not None:
            rows.append(["", "AUROC autoencoder", "", normal.model_roc.auroc, "", ""])
            rows.append(["", f"AUROC PCA-{normal.pca_k}", "", normal.pca_roc.auroc, "", ""])
        self.set_numbers(header, rows)
        self._flag_col = len(header) - 1
        self._row_scores = [float(rep.scores[i]) for i in order]

    def _draw_folder(self, folder: core.FolderScores) -> None:
        self.folder_list.clear()
        for rank, i in enumerate(folder.order[:FOLDER_THUMBS]):
            name, score = folder.names[i], float(folder.scores[i])
            item = QListWidgetItem(QIcon(imaging.to_pixmap(folder.images[i], 48)), f"{rank + 1}. {score:.3g}\n{name}")
            item.setToolTip(f"{name}\nreconstruction error {score:.4g} (rank {rank + 1} of {folder.n})")
            item.setData(Qt.ItemDataRole.UserRole, score)
            self.folder_list.addItem(item)
        skipped = f"; {len(folder.skipped)} file(s) skipped (not readable images)" if folder.skipped else ""
        more = f"; the first {FOLDER_THUMBS:,} are listed" if folder.n > FOLDER_THUMBS else ""
        self.status.setText(f"Scored {folder.n:,} images of <b>{folder.source}</b> with <b>{self._active_desc}</b>, "
                            f"most unusual first{more}{skipped}.")
        self.set_numbers(["rank", "file", "error (MSE)", "flagged"],
                         [[r, name, score, ""] for r, name, score in folder.ranked()])
        self._flag_col = 3
        self._row_scores = [float(folder.scores[i]) for i in folder.order]
        self.tabs.setTabText(1, f"Scored folder ({folder.n:,})")

    def _color_folder_items(self) -> None:
        flag = QColor(FLAG_COLOR)
        flag.setAlpha(60)
        for r in range(self.folder_list.count()):
            item = self.folder_list.item(r)
            above = float(item.data(Qt.ItemDataRole.UserRole)) > self._threshold
            if item.data(Qt.ItemDataRole.UserRole + 1) != above:
                item.setData(Qt.ItemDataRole.UserRole + 1, above)
                item.setBackground(flag if above else QColor(0, 0, 0, 0))
