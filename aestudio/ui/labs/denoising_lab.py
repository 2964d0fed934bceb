"""The denoising lab: corrupt validation images live and watch the model clean them up.

Rows: the originals, the noisy inputs and the current model's outputs for them, each image with
its PSNR and SSIM against the original; averages over up to 2,000 validation images. Moving the
strength slider re-runs the (cheap) computation, throttled; a move while a computation runs is
remembered and run as soon as it ends, with the latest value.

"Train comparison pair" trains a plain and a denoising autoencoder of the current architecture
(same start, the same budget of optimizer steps each, off the GUI thread) and adds their outputs
for the same noisy inputs, so the benefit of training with noise is visible side by side; a note
beside the averages says when a model was still improving when its steps ran out.

`ImageRows` (labelled rows of captioned thumbnails) is also used by the other labs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)

from ...core.labs import denoising as core
from ...core.noise import parse_noise
from ...core.training import Control
from .. import imaging
from .base import LabData, LabPanel, model_train_config, set_training_note, steps_spinbox, steps_text, training_note_label

LIVE_DELAY_MS = 120  # slider moves closer together than this are merged into one computation
DEFAULT_STEPS = core.DENOISING_STEPS

PSNR_HELP = ("PSNR (peak signal-to-noise ratio, dB): how close an image is to the original pixel by pixel; "
             "higher is better, +3 dB halves the squared error.")
SSIM_HELP = ("SSIM (structural similarity, −1 to 1): compares local brightness, contrast and structure the way "
             "the eye does; 1 means identical.")


# ---- a reusable figure: labelled rows of captioned thumbnails --------------------------------------------
@dataclass
class ImageRow:
    """One row of `ImageRows`: a title, its tooltip, images (n, C, H, W) and one caption per image.

    A row without images is a section heading spanning the whole width.
    """

    title: str
    images: np.ndarray | None = None
    captions: Sequence[str] = ()
    tooltip: str = ""
    heat: bool = False  # images are (n, H, W) values to colour as a heat map
    heat_max: float | None = None


class ImageRows(QWidget):
    """Rows of thumbnails with a caption under each, scaled nearest-neighbour to about `tile` px.

    Widgets are kept and reused between updates, so redrawing on every slider move does not flicker.
    """

    def __init__(self, tile: int = 56, parent: QWidget | None = None, caption_width: int | None = None):
        super().__init__(parent)
        self.tile = tile
        self.caption_width = caption_width  # elide longer captions (full text in the tooltip); None: never
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(4)
        self.grid.setVerticalSpacing(0)
        self._titles: list[QLabel] = []
        self._cells: dict[tuple[int, int], tuple[QLabel, QLabel]] = {}
        self._rows: list[ImageRow] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    @property
    def rows(self) -> list[ImageRow]:
        return list(self._rows)

    def _title(self, r: int) -> QLabel:
        while len(self._titles) <= r:
            label = QLabel(self)
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            label.setFixedWidth(104)
            self._titles.append(label)
            self.grid.addWidget(label, 2 * (len(self._titles) - 1), 0, 2, 1)
        return self._titles[r]

    def _cell(self, r: int, c: int) -> tuple[QLabel, QLabel]:
        if (r, c) not in self._cells:
            image = QLabel(self)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption = QLabel(self)
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            font = caption.font()
            font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
            caption.setFont(font)
            self.grid.addWidget(image, 2 * r, c + 1)
            self.grid.addWidget(caption, 2 * r + 1, c + 1)
            self._cells[(r, c)] = (image, caption)
        return self._cells[(r, c)]

    def set_rows(self, rows: Sequence[ImageRow]) -> None:
        self._rows = list(rows)
        used: set[tuple[int, int]] = set()
        for r, row in enumerate(rows):
            title = self._title(r)
            title.show()
            title.setToolTip(row.tooltip)
            if row.images is None:  # a section heading across the row
                title.setText(f"<b>{row.title}</b>")
                title.setWordWrap(False)
                title.setContentsMargins(0, 10, 0, 2)
                title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
                self.grid.removeWidget(title)
                self.grid.addWidget(title, 2 * r, 0, 2, -1)
                title.setMinimumWidth(0)
                title.setMaximumWidth(16777215)
                continue
            title.setWordWrap(True)
            title.setContentsMargins(0, 0, 0, 0)
            title.setText(row.title)
            title.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.grid.removeWidget(title)
            self.grid.addWidget(title, 2 * r, 0, 2, 1)
            title.setFixedWidth(104)
            for c, img in enumerate(row.images):
                image, caption = self._cell(r, c)
                if row.heat:
                    rgb = imaging.heatmap(img, 0.0, row.heat_max, cmap="inferno")
                    pix = imaging.QPixmap.fromImage(imaging.to_qimage(rgb, self.tile))
                else:
                    pix = imaging.to_pixmap(img, self.tile)
                image.setPixmap(pix)
                image.setToolTip(row.tooltip)
                text = row.captions[c] if c < len(row.captions) else ""
                if self.caption_width:  # long captions (class names) are elided instead of widening the column
                    width = max(pix.width() + 4, self.caption_width)
                    caption.setText(caption.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, width))
                else:
                    caption.setText(text)
                caption.setToolTip(text if caption.text() != text else "")
                caption.setVisible(bool(text))
                image.show()
                used.add((r, c))
        for r in range(len(rows), len(self._titles)):
            self._titles[r].hide()
        for key, (image, caption) in self._cells.items():
            if key not in used:
                image.hide()
                caption.hide()
        self.grid.setColumnStretch(self.grid.columnCount(), 1)
        self.updateGeometry()


def stop_all(controls: list[Control], *_args: Any) -> None:
    """Stop every training a lab started (connected to the widget's `destroyed`)."""
    for c in controls:
        c.stop()


# ---- the lab -------------------------------------------------------------------------------------------------
@dataclass
class DenoiseResult:
    noise: str
    n_shown: list[int]  # validation indices of the shown images
    reports: dict[str, core.DenoiseReport]  # "current", and "plain" / "denoising" when the pair exists
    pair: tuple[Any, Any] | None = None  # freshly trained (plain, denoising) models
    pair_info: dict[str, Any] = field(default_factory=dict)


class DenoisingLab(LabPanel):
    title = "Denoising lab"
    help_text = (
        "Add noise to validation images and see what the model makes of them; PSNR and SSIM say how close each "
        "output is to the clean original (higher is better). A <i>denoising</i> autoencoder is trained on "
        "corrupted inputs with the clean image as the target, so it cannot simply copy pixels: it has to learn "
        "what images of this data set look like and pull a noisy input back towards them. "
        "<i>Train comparison pair</i> trains a plain and a denoising autoencoder side by side to show the difference."
    )

    def __init__(self, state, parent: QWidget | None = None):
        self._request: dict[str, Any] = {}
        self._pending = False
        self._pair: tuple[Any, Any] | None = None
        self._pair_info: dict[str, Any] = {}
        self._controls_started: list[Control] = []
        super().__init__(state, parent)
        self.destroyed.connect(lambda *_a, c=self._controls_started: stop_all(c))

        # -- controls --
        self.noise_combo = QComboBox()
        for kind in ("gaussian", "saltpepper", "mask"):
            self.noise_combo.addItem(f"{core.NOISE_TITLES[kind]} ({core.NOISE_LEVEL_NAMES[kind]})", kind)
        self.noise_combo.setItemData(0, "Adds random values with standard deviation σ to every pixel (then clips to 0..1).",
                                     Qt.ItemDataRole.ToolTipRole)
        self.noise_combo.setItemData(1, "Sets a fraction p of the pixels to black or white at random.",
                                     Qt.ItemDataRole.ToolTipRole)
        self.noise_combo.setItemData(2, "Sets a fraction p of the pixels to black (drops them out).",
                                     Qt.ItemDataRole.ToolTipRole)
        self.noise_combo.setAccessibleName("Noise type")
        self.noise_combo.setToolTip("How the validation images are corrupted: Gaussian noise (σ), salt and pepper "
                                    "(a fraction p of pixels set to black or white) or masking (a fraction p set to black).")
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setSingleStep(1)
        self.strength.setPageStep(10)
        self.strength.setAccessibleName("Noise strength")
        self.strength.setToolTip("How strong the noise is: σ for Gaussian noise, the fraction of pixels p for "
                                 "salt and pepper or masking. The outputs update live as you move it.")
        self.strength_label = QLabel()
        self.strength_label.setMinimumWidth(64)
        self.strength_label.setAccessibleName("Noise strength value")
        self.noise_combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        noise_row = QHBoxLayout()
        noise_row.addWidget(self.noise_combo)
        noise_row.addSpacing(8)
        noise_row.addWidget(self.strength_label)
        noise_row.addWidget(self.strength, 1)

        self.steps = steps_spinbox(
            DEFAULT_STEPS, "Training steps",
            "Optimizer steps each model of the comparison pair trains for (on this run's training split, with its "
            "batch size and learning rate), however many images that is. A note says when a model was still "
            "improving at the end.")
        self.pair_button = QPushButton()
        self.pair_button.setAccessibleName("Train comparison pair")
        self.pair_button.setToolTip("Train two fresh autoencoders of the current architecture from the same start: a "
                                    "plain one on clean images and a denoising one on images with the noise above. "
                                    "Then both clean the same noisy inputs, shown below the current model's outputs.")
        self.pair_button.clicked.connect(self.train_pair)
        pair_row = QHBoxLayout()
        pair_row.addWidget(self.steps)
        pair_row.addWidget(self.pair_button)
        pair_row.addStretch(1)

        noise_label = QLabel("Noise:")
        noise_label.setBuddy(self.noise_combo)
        noise_label.setToolTip(self.noise_combo.toolTip())
        pair_label = QLabel("Comparison:")
        pair_label.setBuddy(self.steps)
        pair_label.setToolTip(self.pair_button.toolTip())
        self.controls.addRow(noise_label, noise_row)
        self.controls.addRow(pair_label, pair_row)

        # -- figure --
        fig = QWidget()
        fig.setAccessibleName("Denoising lab figure")
        self.summary = QLabel("Press Run, or move the strength slider, to corrupt the validation images.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setAccessibleName("Denoising averages")
        self.summary.setToolTip(f"{PSNR_HELP}\n{SSIM_HELP}")
        self.note_label = training_note_label()
        self.rows = ImageRows(tile=48)
        self.rows.setAccessibleName("Denoising image rows")
        lay = QVBoxLayout(fig)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(6)
        lay.addWidget(self.summary)
        lay.addWidget(self.note_label)
        lay.addWidget(self.rows)
        lay.addStretch(1)
        self.set_figure(fig)

        # -- live updates --
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(LIVE_DELAY_MS)
        self._timer.timeout.connect(self._live_run)
        self.steps.valueChanged.connect(self._update_pair_text)
        self._set_noise_from(model_train_config(state).noise)  # the model's noise, not today's setting
        self.strength.valueChanged.connect(self._on_strength)
        self.noise_combo.currentIndexChanged.connect(self._on_strength)
        self._update_strength_label()
        self._update_pair_text()
        self._update_actions()


    # ---- settings ----
    @property
    def noise_kind(self) -> str:
        return self.noise_combo.currentData() or "gaussian"

    @property
    def noise_level(self) -> float:
        return self.strength.value() / 100.0

    @property
    def noise(self) -> str:
        return core.noise_spec(self.noise_kind, self.noise_level)

    def set_noise(self, kind: str, level: float) -> None:
        """Select a noise type and strength (as a user would; triggers a live update)."""
        i = self.noise_combo.findData(kind)
        if i < 0:
            raise ValueError(f"unknown noise kind {kind!r}")
        self.noise_combo.setCurrentIndex(i)
        self.strength.setValue(int(round(level * 100)))

    def _set_noise_from(self, spec: str) -> None:
        try:
            noise = parse_noise(spec)
        except ValueError:
            noise = parse_noise("none")
        kind, level = (noise.kind, noise.level) if noise.active else ("gaussian", 0.3)
        self.noise_combo.setCurrentIndex(max(0, self.noise_combo.findData(kind)))
        self.strength.setValue(int(round(min(level, 1.0) * 100)))

    def _update_strength_label(self) -> None:
        self.strength_label.setText(f"{core.NOISE_LEVEL_NAMES[self.noise_kind]} = {self.noise_level:.2f}")

    def _update_pair_text(self) -> None:
        self.pair_button.setText(f"Train comparison pair ({steps_text(self.steps.value())} each)")

    def _update_actions(self) -> None:
        self.pair_button.setEnabled(self.run_button.isEnabled() and not self.busy)

    # ---- running ----
    @Slot()
    def _on_strength(self, *_args: Any) -> None:
        self._update_strength_label()
        self._timer.start()

    @Slot()
    def _live_run(self) -> None:
        if self.state.snapshot is None:
            return
        if self.busy:
            self._pending = True
        else:
            self._start("report")

    @Slot()
    def run(self) -> None:
        self._start("report")

    @Slot()
    def train_pair(self) -> None:
        self._start("pair")

    def _start(self, job: str) -> None:
        if self.busy:
            self._pending = self._pending or job == "report"
            return
        control = Control()
        self._controls_started[:] = [control]
        self._request = {"job": job, "noise": self.noise, "steps": self.steps.value(), "pair": self._pair,
                         "train_config": model_train_config(self.state), "control": control, "seed": 0}
        LabPanel.run(self)
        if job == "pair" and self.busy:
            self.notice.setText(f"Training a plain and a denoising autoencoder, {steps_text(self._request['steps'])} each…")
        self._update_actions()

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> DenoiseResult:
        req = dict(self._request)
        noise = req["noise"]
        pair, info = req["pair"], {}
        if req["job"] == "pair":
            tc = req["train_config"]
            trained = core.train_comparison_pair(data.snapshot.model_config, data.train, noise, req["steps"],
                                                 progress, seed=tc.seed, control=req["control"], train_config=tc,
                                                 val_set=data.val)
            pair = (trained.plain.model, trained.denoiser.model)
            info = {"noise": noise, "steps": trained.steps, "note": trained.note,
                    "shape": tuple(data.snapshot.model_config.input_shape)}
        val = data.val.as_float()[:core.MAX_EVAL_IMAGES]
        noisy = core.corrupt(val, noise, req["seed"])
        labels = data.val.labels
        reports = {"current": core.denoise_report(data.model, val, noise, noisy=noisy, labels=labels)}
        if pair is not None:
            reports["plain"] = core.denoise_report(pair[0], val, noise, noisy=noisy, labels=labels)
            reports["denoising"] = core.denoise_report(pair[1], val, noise, noisy=noisy, labels=labels)
        shown = [int(i) for i in reports["current"].shown]
        return DenoiseResult(parse_noise(noise).spec(), shown, reports, pair if req["job"] == "pair" else None, info)

    def on_idle(self) -> None:
        self._after_task()

    def _after_task(self) -> None:
        self._update_actions()
        if self._pending:
            self._pending = False
            self._start("report")

    def on_model_changed(self, data: LabData | None) -> None:
        if hasattr(self, "pair_button"):
            if self._pair is not None and (data is None or
                                           tuple(data.snapshot.model_config.input_shape) != self._pair_info.get("shape")):
                self._pair, self._pair_info = None, {}
            self._update_actions()

    # ---- drawing ----
    def _noise_words(self, spec: str) -> str:
        n = parse_noise(spec)
        if not n.active:
            return "no noise"
        return f"{core.NOISE_TITLES[n.kind].lower()} noise, {core.NOISE_LEVEL_NAMES[n.kind]} = {n.level:.2f}"

    def show_result(self, result: DenoiseResult) -> None:
        if result.pair is not None:
            self._pair, self._pair_info = result.pair, result.pair_info
        cur = result.reports["current"]

        def caps(psnr: np.ndarray, ssim: np.ndarray) -> list[str]:
            return [f"{psnr[i]:.1f} dB · {ssim[i]:.2f}" for i in result.n_shown]

        rows = [
            ImageRow("Original", cur.clean, [f"val #{i}" for i in result.n_shown],
                     "Clean validation images (a spread over the classes): the target every output is compared with."),
            ImageRow("Noisy input", cur.noisy, caps(cur.psnr_noisy, cur.ssim_noisy),
                     f"The originals with {self._noise_words(result.noise)}. Caption: PSNR · SSIM against the original."),
            ImageRow("Current model", cur.outputs, caps(cur.psnr_out, cur.ssim_out),
                     "What the current model outputs for the noisy input. Caption: PSNR · SSIM against the original."),
        ]
        lines = [f"<b>{self._noise_words(result.noise).capitalize()}</b>, averages over {cur.n_evaluated:,} "
                 f"validation images (PSNR · SSIM): noisy input <b>{cur.psnr_noisy_mean:.1f} dB · "
                 f"{cur.ssim_noisy_mean:.2f}</b> → current model <b>{cur.psnr_out_mean:.1f} dB · "
                 f"{cur.ssim_out_mean:.2f}</b>"]
        if "plain" in result.reports:
            plain, dae = result.reports["plain"], result.reports["denoising"]
            info = self._pair_info
            trained_on = self._noise_words(info.get("noise", "none"))
            rows += [
                ImageRow(f"Comparison pair, {steps_text(info.get('steps', 0))} each from the same start; the denoising "
                         f"one trained with {trained_on}:", tooltip="Both models get the same noisy inputs as above."),
                ImageRow("Plain AE", plain.outputs, caps(plain.psnr_out, plain.ssim_out),
                         "An autoencoder trained on clean images only, given the noisy input."),
                ImageRow("Denoising AE", dae.outputs, caps(dae.psnr_out, dae.ssim_out),
                         "An autoencoder trained to map noisy inputs to clean targets, given the same noisy input."),
            ]
            diff = dae.psnr_out_mean - plain.psnr_out_mean
            better = "better" if diff >= 0 else "worse"
            lines.append(f"Plain AE <b>{plain.psnr_out_mean:.1f} dB · {plain.ssim_out_mean:.2f}</b>, denoising AE "
                         f"<b>{dae.psnr_out_mean:.1f} dB · {dae.ssim_out_mean:.2f}</b>: the denoising one is "
                         f"{abs(diff):.1f} dB {better}.")
        self.summary.setText("<br>".join(lines))
        set_training_note(self.note_label, self._pair_info.get("note") if "plain" in result.reports else None)
        self.rows.set_rows(rows)

        header = ["image", "noisy PSNR (dB)", "model PSNR (dB)", "noisy SSIM", "model SSIM"]
        extra = [r for r in ("plain", "denoising") if r in result.reports]
        for name in extra:
            header += [f"{name} AE PSNR (dB)", f"{name} AE SSIM"]

        def row(label: str, sel) -> list[Any]:
            vals: list[Any] = [label, float(np.mean(cur.psnr_noisy[sel])), float(np.mean(cur.psnr_out[sel])),
                               float(np.mean(cur.ssim_noisy[sel])), float(np.mean(cur.ssim_out[sel]))]
            for name in extra:
                rep = result.reports[name]
                vals += [float(np.mean(rep.psnr_out[sel])), float(np.mean(rep.ssim_out[sel]))]
            return vals

        table = [row(f"val #{i}", [i]) for i in result.n_shown]
        table.append(row(f"mean of {cur.n_evaluated}", slice(None)))
        self.set_numbers(header, table)
