"""The "Image grid" panel: a fixed row of validation images and what the model makes of them.

Rows: the originals, the corrupted inputs (denoising runs only) and the model's outputs,
refreshed from `training.preview` while training and computed once from the snapshot for a
loaded run. The columns are a spread of the validation set (`core.labs.selection.pick_spread`:
one image per class in turn, or evenly spaced without labels), not its first few images. Clicking an image opens an enlarged view with a per-pixel error heat map and
selects that validation image for the other panels (`state.imageSelected`).
Before any model, the Original row shows a spread of the loaded set, so a folder's images are
on screen as soon as it is open.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtGui import QCursor, QPalette, QPixmap
from PySide6.QtWidgets import (QDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout,
                               QWidget)

from ..core.labs.selection import pick_spread
from ..workers.training import KEPT_STAGE, PREVIEW_SEED, epoch_label  # noqa: F401 - PREVIEW_SEED re-exported
from . import imaging
from .imaging import ScaledImage
from .state import StudioState

COLUMNS = 8
TILE_PX = 64

ROW_HELP = {
    "Original": "Validation images: the model never trains on these, so they show how well it generalises.",
    "Noisy input": "What a denoising autoencoder actually sees: the original with noise added. "
                   "It must output the clean image, so it has to learn what digits, clothes or shapes look like.",
    "Reconstruction": "The model's output: the image encoded to a small code and decoded back. "
                      "Blur and missing detail show what the code could not keep.",
    "Denoised": "The model's output for the noisy input. Compare with the original: "
                "a good denoiser removes the noise, not the content.",
}


class _Tile(QLabel):
    """One clickable thumbnail."""

    clicked = Signal(int)

    def __init__(self, column: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.column = column
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFixedSize(TILE_PX + 6, TILE_PX + 6)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(QCursor(Qt.CursorShape.PointingHandCursor))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.clicked.emit(self.column)
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.clicked.emit(self.column)
            return
        super().keyPressEvent(event)


class ImageDetailDialog(QDialog):
    """One validation image enlarged: original, (noisy input), output and the per-pixel error."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Reconstruction detail")
        self.setAccessibleName("Reconstruction detail")
        self.setModal(False)
        self.index = -1
        self.error_map: np.ndarray | None = None  # (H, W) |x - x_hat|, channels averaged
        self.mse = float("nan")

        self.views: dict[str, ScaledImage] = {}
        self.captions: dict[str, QLabel] = {}
        self.columns: dict[str, QWidget] = {}
        images = QHBoxLayout()
        images.setSpacing(10)
        for key, title, tip in (
            ("original", "Original", ROW_HELP["Original"]),
            ("noisy", "Noisy input", ROW_HELP["Noisy input"]),
            ("output", "Reconstruction", ROW_HELP["Reconstruction"]),
            ("error", "Error |original − output|",
             "Per-pixel absolute difference between the original and the output (averaged over colour "
             "channels). Bright pixels are where the model is most wrong; the colour bar gives the scale."),
        ):
            column = QWidget(self)
            box = QVBoxLayout(column)
            box.setContentsMargins(0, 0, 0, 0)
            box.setSpacing(3)
            view = ScaledImage(column, min_side=160)
            view.setAccessibleName(title)
            view.setToolTip(tip)
            cap = QLabel(title, column)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box.addWidget(view, 1)
            box.addWidget(cap)
            images.addWidget(column, 1)
            self.views[key] = view
            self.captions[key] = cap
            self.columns[key] = column
            if key == "error":
                images.addLayout(self._colorbar_layout())

        self.summary = QLabel(self)
        self.summary.setAccessibleName("Reconstruction error summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 12)
        lay.setSpacing(8)
        lay.addLayout(images, 1)
        lay.addWidget(self.summary)
        self.resize(820, 300)

    def _colorbar_layout(self) -> QVBoxLayout:
        col = QVBoxLayout()
        col.setSpacing(2)
        self.bar_max = QLabel("1", self)
        self.bar_min = QLabel("0", self)
        for lab in (self.bar_max, self.bar_min):
            lab.setAlignment(Qt.AlignmentFlag.AlignLeft)
        bar = QLabel(self)
        bar.setPixmap(QPixmap.fromImage(imaging.colorbar(14, 150)))
        bar.setToolTip("Colour scale of the error map: from no error (bottom) to the largest error "
                       "in this image (top), in pixel-value units (0 to 1).")
        bar.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.bar = bar
        col.addStretch(1)
        col.addWidget(self.bar_max)
        col.addWidget(bar)
        col.addWidget(self.bar_min)
        col.addStretch(1)
        return col

    def show_image(self, index: int, original: np.ndarray, noisy: np.ndarray | None, output: np.ndarray,
                   label: str = "", val_index: int | None = None) -> None:
        """`index` is the grid column, `val_index` the image's index in the validation set (default: index)."""
        self.index = index
        number = index if val_index is None else int(val_index)
        x = np.asarray(original, np.float32)
        y = np.asarray(output, np.float32)
        diff = np.abs(x - y)
        self.error_map = diff.mean(0) if diff.ndim == 3 else diff
        self.mse = float(np.mean((x - y) ** 2))
        top = max(float(self.error_map.max()), 1e-3)
        self.views["original"].set_image(x)
        has_noise = noisy is not None
        self.columns["noisy"].setVisible(has_noise)
        if has_noise:
            self.views["noisy"].set_image(noisy)
        self.captions["output"].setText("Denoised" if has_noise else "Reconstruction")
        self.views["output"].set_image(y)
        self.views["error"].set_image(imaging.heatmap(self.error_map, 0.0, top))
        self.bar_max.setText(f"{top:.2f}")
        self.bar_min.setText("0")
        what = f"Validation image #{number + 1}" + (f" ({label})" if label else "")
        psnr = 10 * np.log10(1.0 / self.mse) if self.mse > 0 else float("inf")
        self.summary.setText(f"{what}: mean squared error {self.mse:.4f} per pixel (PSNR {psnr:.1f} dB), "
                             f"largest pixel error {float(diff.max()):.2f}. Brighter areas of the error map "
                             "are where the reconstruction differs most from the original.")
        self.setWindowTitle(f"Reconstruction detail: {what}")


class ImageGridPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Image grid")
        self.originals: np.ndarray | None = None
        self.noisy: np.ndarray | None = None
        self.outputs: np.ndarray | None = None
        self.indices: np.ndarray | None = None  # validation-set index of each column
        self.detail: ImageDetailDialog | None = None

        self.caption = QLabel(self)
        self.caption.setAccessibleName("Image grid caption")
        self.caption.setWordWrap(True)
        self.placeholder = QLabel("Train a model to watch its reconstructions of a few validation images "
                                  "improve epoch by epoch.", self)
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.grid_host = QWidget(self)
        grid = QGridLayout(self.grid_host)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(4)
        self.row_labels: dict[str, QLabel] = {}
        self.tiles: dict[str, list[_Tile]] = {}
        self.columns_shown = COLUMNS  # as many as fit the panel's width (resizeEvent)
        label_width = max(self.fontMetrics().horizontalAdvance(t) for t in ROW_HELP) + 4
        for r, key in enumerate(("Original", "Noisy input", "Output")):
            lab = QLabel(key if key != "Output" else "Reconstruction", self.grid_host)
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            lab.setMinimumWidth(label_width)  # never clipped: tiles that do not fit are hidden instead
            lab.setToolTip(ROW_HELP.get(lab.text(), ""))
            grid.addWidget(lab, r, 0)
            self.row_labels[key] = lab
            tiles = []
            for c in range(COLUMNS):
                t = _Tile(c, self.grid_host)
                t.clicked.connect(self._on_tile_clicked)
                grid.addWidget(t, r, c + 1)
                tiles.append(t)
            self.tiles[key] = tiles
        grid.setColumnStretch(COLUMNS + 1, 1)
        # narrower than eight tiles is allowed: resizeEvent then hides the columns that do not fit
        self.grid_host.setMinimumWidth(label_width + grid.horizontalSpacing() + TILE_PX + 6)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addWidget(self.caption)
        lay.addWidget(self.placeholder, 1)
        lay.addWidget(self.grid_host)
        lay.addStretch(1)
        self._set_rows_visible(False)
        self._style_placeholder()

        state.training.preview.connect(self._on_preview)
        state.snapshotChanged.connect(self._on_snapshot)
        state.datasetChanged.connect(self._on_dataset)

    # ---- public ------------------------------------------------------------------------------
    @property
    def output_title(self) -> str:
        return self.row_labels["Output"].text()

    def visible_rows(self) -> list[str]:
        """Titles of the rows on show (for tests and accessibility)."""
        if self.grid_host.isHidden():
            return []
        return [lab.text() for lab in self.row_labels.values() if not lab.isHidden()]

    def show_rows(self, originals: np.ndarray, noisy: np.ndarray | None, outputs: np.ndarray,
                  caption: str = "", indices: np.ndarray | None = None) -> None:
        """Fill the grid: float (n, C, H, W) arrays in [0, 1]; `indices` are the validation-set
        indices of the images (default 0, 1, 2, ...)."""
        n = min(COLUMNS, len(originals))
        self.indices = np.arange(n) if indices is None else np.asarray(indices[:n], np.int64)
        self.originals = np.asarray(originals[:n], np.float32)
        self.noisy = None if noisy is None else np.asarray(noisy[:n], np.float32)
        self.outputs = np.asarray(outputs[:n], np.float32)
        out_title = "Denoised" if self.noisy is not None else "Reconstruction"
        self.row_labels["Output"].setText(out_title)
        self.row_labels["Output"].setToolTip(ROW_HELP[out_title])
        self.row_labels["Noisy input"].setToolTip(ROW_HELP["Noisy input"])
        self.row_labels["Original"].setToolTip(ROW_HELP["Original"])
        rows = {"Original": self.originals, "Noisy input": self.noisy, "Output": self.outputs}
        for key, data in rows.items():
            title = out_title if key == "Output" else key
            self._fill_row(key, data, lambda c, label, title=title: (
                f"{title} {c + 1}",
                f"{title} of validation image #{int(self.indices[c]) + 1}{label}. "
                "Click to enlarge it with a map of where the output differs from the original."))
        self._set_rows_visible(True)
        self.caption.setText(caption)
        if self.detail is not None and self.detail.isVisible() and 0 <= self.detail.index < n:
            self._show_detail(self.detail.index)

    def show_loaded(self, data) -> None:
        """No model yet: the Original row shows a spread of the loaded set (`data`, an ImageSet) over
        its classes; the tiles are not clickable, as there is no output to compare with."""
        idx = pick_spread(data.labels, COLUMNS, total=data.n)
        if len(idx) == 0:
            self.clear()
            return
        self.indices = idx
        self.originals = data.subset(idx).as_float()
        self.noisy = self.outputs = None
        if self.detail is not None:
            self.detail.hide()
        self._fill_row("Original", self.originals, lambda c, label: (
            f"Loaded image {c + 1}", f"Image #{int(idx[c]) + 1} of the loaded set{label}."))
        self._fill_row("Output", None, None)
        self._set_rows_visible(True)
        spread = "one per class in turn" if data.labels is not None else "evenly spaced"
        self.caption.setText(f"A spread of the {data.n:,} loaded images ({spread}). Train a model to watch "
                             "its reconstructions of validation images improve here, epoch by epoch.")

    def _fill_row(self, key: str, images: np.ndarray | None, names) -> None:
        """Put `images` (n, C, H, W) in row `key`'s tiles (the rest cleared); `names(column, " (class)")`
        gives each tile's accessible name and tooltip."""
        for c, tile in enumerate(self.tiles[key]):
            if images is None or c >= len(images):
                tile.clear()
                continue
            tile.setPixmap(imaging.to_pixmap(images[c], TILE_PX))
            label = self._label_text(c)
            name, tip = names(c, f" ({label})" if label else "")
            tile.setAccessibleName(name)
            tile.setToolTip(tip)

    def clear(self) -> None:
        self.originals = self.noisy = self.outputs = self.indices = None
        self._set_rows_visible(False)
        self.caption.setText("")
        if self.detail is not None:
            self.detail.hide()

    def open_detail(self, column: int) -> ImageDetailDialog | None:
        """Select validation image `column` and show it enlarged (what a click on a tile does)."""
        if self.originals is None or self.outputs is None or not 0 <= column < len(self.originals):
            return None
        self.state.imageSelected.emit(int(self.indices[column]))
        self._show_detail(column)
        return self.detail

    # ---- handlers ------------------------------------------------------------------------------
    @Slot(int)
    def _on_tile_clicked(self, column: int) -> None:
        self.open_detail(column)

    @Slot(object)
    def _on_preview(self, p) -> None:
        if p.stage == KEPT_STAGE:
            when = f"{epoch_label(p.epoch)}, the weights kept"
        else:
            when = "before training" if p.stage == "start" else (
                f"{p.stage}, epoch {p.epoch}" if p.stage not in ("train",) else f"epoch {p.epoch}")
        self.show_rows(p.originals, p.noisy, p.outputs,
                       f"Validation images and the model's outputs ({when}). Click an image to enlarge it.",
                       getattr(p, "indices", None))

    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        if snapshot is None:
            self._show_loaded_or_clear()
            return
        if self.state.training.running:
            return  # the worker's previews are on their way (they include the noisy inputs)
        idx = pick_spread(snapshot.labels, COLUMNS, total=len(snapshot.images))  # as the training worker does
        if len(idx) == 0:
            return
        originals = np.asarray(snapshot.images[idx], np.float32)
        noisy, outputs = snapshot.reconstruct(originals)  # with the noise the model was trained with
        self.show_rows(originals, noisy, outputs,
                       f"Validation images and the model's outputs ({epoch_label(snapshot.epoch)}). "
                       "Click an image to enlarge it.", idx)

    @Slot(object)
    def _on_dataset(self, _data) -> None:
        self._show_loaded_or_clear()

    def _show_loaded_or_clear(self) -> None:
        if self.state.dataset is not None and self.state.snapshot is None and not self.state.training.running:
            self.show_loaded(self.state.dataset)
        else:
            self.clear()

    # ---- helpers ---------------------------------------------------------------------------------
    def shown_labels(self) -> list[str]:
        """The class name of each image on show ("" where unknown)."""
        return [] if self.originals is None else [self._label_text(c) for c in range(len(self.originals))]

    def _label_text(self, column: int) -> str:
        # the snapshot's validation images, or (no model yet) the loaded set's
        source = self.state.snapshot if self.outputs is not None else self.state.dataset
        if self.indices is None or not 0 <= column < len(self.indices):
            return ""
        i = int(self.indices[column])
        if source is None or source.labels is None or i >= len(source.labels):
            return ""
        k = int(source.labels[i])
        return source.class_names[k] if 0 <= k < len(source.class_names) else str(k)

    def _show_detail(self, column: int) -> None:
        if self.detail is None:
            self.detail = ImageDetailDialog(self)
        noisy = None if self.noisy is None else self.noisy[column]
        self.detail.show_image(column, self.originals[column], noisy, self.outputs[column], self._label_text(column),
                               int(self.indices[column]))
        self.detail.show()
        self.detail.raise_()

    def _set_rows_visible(self, on: bool) -> None:
        self.grid_host.setVisible(on)
        self.placeholder.setVisible(not on)
        if on:
            self.row_labels["Noisy input"].setVisible(self.noisy is not None)
            self.row_labels["Output"].setVisible(self.outputs is not None)
            self._show_tiles()

    def _show_tiles(self) -> None:
        """A tile shows when it has an image, its row is on and its column fits the width."""
        cursor = Qt.CursorShape.PointingHandCursor if self.outputs is not None else Qt.CursorShape.ArrowCursor
        for key, tiles in self.tiles.items():
            row_on = (key != "Noisy input" or self.noisy is not None) and (key != "Output" or self.outputs is not None)
            for c, t in enumerate(tiles):
                filled = t.pixmap() is not None and not t.pixmap().isNull()
                t.setVisible(row_on and filled and c < self.columns_shown)
                t.setCursor(QCursor(cursor))

    def _fitting_columns(self) -> int:
        """How many tile columns fit the panel's width next to the row labels (1 to COLUMNS)."""
        grid = self.grid_host.layout()
        margins = self.layout().contentsMargins() if self.layout() is not None else None
        side = (margins.left() + margins.right()) if margins is not None else 0
        label = self.row_labels["Original"].minimumWidth()
        step = TILE_PX + 6 + grid.horizontalSpacing()
        room = self.width() - side - label
        return max(1, min(COLUMNS, room // step))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        fit = self._fitting_columns()
        if fit != self.columns_shown:
            self.columns_shown = fit
            if not self.grid_host.isHidden():
                self._show_tiles()

    def _style_placeholder(self) -> None:
        self.placeholder.setStyleSheet(f"color: {self.palette().color(QPalette.ColorRole.PlaceholderText).name()};")

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.type() == QEvent.Type.PaletteChange:
            self._style_placeholder()
        super().changeEvent(event)
