"""The "Data" panel: choose a data set or a folder of images, and see what was loaded.

Loading runs on a background Task (folders and downloads can take a while); the panel shows its
progress, then the count, image size, channels and classes, a warning when most pixels were
transparent, and every skipped file with the reason. The Background choice (auto, white, black or a
custom colour) is where transparent pixels of folder images are composited. `load(spec)` is the entry point for menus and tests; `loaded` / `loadFailed` say when it
is over, and `loading` whether a load is in flight.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.datasets import DatasetError, ImageSet, load_dataset, parse_background
from ..core.datasets.folder import background_name
from ..workers.tasks import Task, start
from . import style
from .state import StudioState

NAMED_SETS = [
    ("fashion-10k", "Fashion-MNIST 10k (bundled)",
     "10,000 clothing images, 28×28 gray, 10 classes: the Fashion-MNIST test split shipped with aestudio."),
    ("digits", "Digits 8×8 (scikit-learn)",
     "1,797 tiny handwritten digits, 8×8 gray, 10 classes: trains in seconds, ideal for first experiments."),
    ("shapes", "Shapes (procedural)",
     "Squares, ellipses and hearts at random scale, rotation and position (dSprites-like): the generative "
     "factors are known, so you can see which latent units pick them up."),
    ("mnist", "MNIST (70k, download)",
     "70,000 handwritten digits, 28×28 gray. Downloaded once (~11 MB) into the user cache."),
    ("fashion-mnist", "Fashion-MNIST (70k, download)",
     "70,000 clothing images, 28×28 gray. Downloaded once (~30 MB) into the user cache."),
]
DOWNLOADABLE = {"mnist", "fashion-mnist"}
DATASET_TIP = ("The images the autoencoder learns to reconstruct. The bundled sets work offline; MNIST and "
               "Fashion-MNIST download once; or open a folder of your own images.")
SIZE_TIP = ("Folder images are centre-cropped to a square and resized to this side length. Smaller images train "
            "much faster; any size fits a conv model (at least 2 pixels per conv layer's halving).")
CHANNELS_TIP = ("Auto: colour (RGB, 3 channels) if any image has colour, else gray (1 channel). Gray images "
                "train faster and need fewer weights.")
BACKGROUND_TIP = ("Where transparent pixels of folder images are composited. Auto picks, per folder, white when "
                  "most opaque pixels are dark and black otherwise, so the content always contrasts with it.")
CUSTOM_BACKGROUND = "custom"
RECENT_FOLDERS = 8  # image folders the combo remembers across sessions


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} " + (word if count == 1 else plural or word + "s")


def is_folder_spec(spec: str) -> bool:
    return spec not in {s for s, _, _ in NAMED_SETS}


def _load(spec: str, image_size: int | None, channels: int | None, background: str = "auto", progress=None,
          cancel=None, note=None) -> tuple[str, ImageSet]:
    """Runs on a pool thread. Cancelling takes effect within a fraction of a second, even while a large file
    decodes: the folder loader calls `progress` regularly while it waits, so the pool is never held by a load."""

    def report(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise DatasetError("Loading was cancelled.")
        if progress is not None:
            progress(done, total)

    return spec, load_dataset(spec, image_size=image_size, channels=channels, progress=report, background=background,
                              note=note)  # a folder too large for memory is decoded into a cache and streamed


class DataPanel(QWidget):
    loaded = Signal(object)  # ImageSet, after it became the state's data set
    loadFailed = Signal(str)
    loadingChanged = Signal(bool)

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Data")
        self.setToolTip(DATASET_TIP)
        self.loading = False
        self.last_error = ""
        self.recent: list[str] = []  # image folders, newest first (kept across sessions by the main window)
        self._task: Task | None = None
        self._tasks: list[Task] = []
        self._pending_spec: str | None = None
        self._build()
        state.datasetChanged.connect(self._on_dataset)
        state.training.runningChanged.connect(self._on_training_running)
        if state.dataset is not None:
            self._on_dataset(state.dataset)

    # ---- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        style.tune_layout(lay, style.MARGIN, 6)

        row = QHBoxLayout()
        row.setSpacing(6)
        self.combo = style.NoWheelComboBox()
        self.combo.setAccessibleName("Dataset")
        self.combo.setToolTip(DATASET_TIP)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        for spec, label, tip in NAMED_SETS:
            self.combo.addItem(label, spec)
            self.combo.setItemData(self.combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.combo.activated.connect(self._on_combo)
        self.open_btn = QPushButton(style.icon("fa5s.folder-open", self), "Folder…")
        self.open_btn.setAccessibleName("Open image folder")
        self.open_btn.setToolTip("Open a folder of your own images (PNG, JPEG, …). Subfolders become classes; "
                                 "unreadable files are skipped and listed below.")
        self.open_btn.clicked.connect(self.open_folder_dialog)
        row.addWidget(self.combo, 1)
        row.addWidget(self.open_btn)
        lay.addLayout(row)

        opts = QHBoxLayout()
        opts.setSpacing(6)
        size_label = QLabel("Folder images:")
        size_label.setToolTip(SIZE_TIP)
        self.size_spin = style.NoWheelSpinBox()
        self.size_spin.setRange(4, 512)
        self.size_spin.setValue(28)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip(SIZE_TIP)
        self.size_spin.setAccessibleName("Image size")
        self.size_spin.setKeyboardTracking(False)
        self.channels_combo = style.NoWheelComboBox()
        for label, value in (("Auto", 0), ("Gray", 1), ("RGB", 3)):
            self.channels_combo.addItem(label, value)
        self.channels_combo.setToolTip(CHANNELS_TIP)
        self.channels_combo.setAccessibleName("Channels")
        opts.addWidget(size_label)
        opts.addWidget(self.size_spin, 1)
        opts.addWidget(self.channels_combo, 1)
        self.background_combo = style.NoWheelComboBox()
        for label, value in (("Auto background", "auto"), ("White", "white"), ("Black", "black"),
                             ("Custom colour…", CUSTOM_BACKGROUND)):
            self.background_combo.addItem(label, value)
        self.background_combo.setToolTip(BACKGROUND_TIP)
        self.background_combo.setAccessibleName("Background")
        self._background = "auto"
        opts.addWidget(self.background_combo, 1)
        lay.addLayout(opts)
        self.size_spin.valueChanged.connect(self._options_changed)
        self.channels_combo.activated.connect(self._options_changed)
        self.background_combo.activated.connect(self._on_background)

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Data loading progress")
        self.progress.setToolTip("Loading or downloading the data set in the background; the studio stays usable.")
        self.progress.setRange(0, 0)
        self.progress.hide()
        lay.addWidget(self.progress)

        self.info = QLabel("No data loaded.")
        self.info.setAccessibleName("Dataset summary")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.info)

        self.transparency = QLabel()
        self.transparency.setAccessibleName("Transparency warning")
        self.transparency.setWordWrap(True)
        self.transparency.setStyleSheet(f"QLabel {{ color: {style.WARN}; }}")
        self.transparency.setToolTip("Most pixels of these images were transparent. If the model learns little, "
                                     "try another Background, or crop the images to their content.")
        self.transparency.hide()
        lay.addWidget(self.transparency)

        self.error = QLabel()
        self.error.setStyleSheet(style.problems_css())
        self.error.setAccessibleName("Dataset error")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        lay.addWidget(self.error)

        self.skipped_btn = QToolButton()
        self.skipped_btn.setCheckable(True)
        self.skipped_btn.setArrowType(Qt.ArrowType.RightArrow)
        self.skipped_btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.skipped_btn.setAutoRaise(True)
        self.skipped_btn.setAccessibleName("Skipped files")
        self.skipped_btn.setStyleSheet(f"QToolButton {{ color: {style.WARN}; }}")
        self.skipped_btn.toggled.connect(self._toggle_skipped)
        self.skipped_btn.hide()
        lay.addWidget(self.skipped_btn)
        self.skipped_list = QListWidget()
        self.skipped_list.setAccessibleName("Skipped files list")
        self.skipped_list.setToolTip("Files that were not loaded, with the reason.")
        self.skipped_list.setMaximumHeight(110)
        self.skipped_list.setWordWrap(True)
        self.skipped_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.skipped_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.skipped_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.skipped_list.hide()
        lay.addWidget(self.skipped_list)
        lay.addStretch(1)

    # ---- public API -------------------------------------------------------------------------
    def folder_options(self) -> tuple[int, int | None]:
        ch = self.channels_combo.currentData()
        return int(self.size_spin.value()), (int(ch) if ch else None)

    def set_folder_options(self, image_size: int, channels: int | None) -> None:
        self.size_spin.blockSignals(True)
        self.size_spin.setValue(int(image_size))
        self.size_spin.blockSignals(False)
        i = self.channels_combo.findData(int(channels or 0))
        self.channels_combo.setCurrentIndex(max(i, 0))

    def folder_background(self) -> str:
        """The Background choice: "auto", "white", "black" or "#rrggbb"."""
        return self._background

    def set_folder_background(self, background: str) -> None:
        """Select `background` (auto, white, black or any colour) without reloading; unknown values select auto."""
        try:
            parsed = parse_background(background)
        except DatasetError:
            parsed = "auto"
        self._select_background("auto" if parsed == "auto" else background_name(parsed))

    def _select_background(self, value: str) -> None:
        self._background = value
        i = self.background_combo.findData(value)
        if i < 0:  # a custom colour: one item showing it, before "Custom colour…"
            custom = self.background_combo.findData(CUSTOM_BACKGROUND)
            for j in range(self.background_combo.count() - 1, -1, -1):
                if str(self.background_combo.itemData(j)).startswith("#"):
                    self.background_combo.removeItem(j)
                    custom = self.background_combo.findData(CUSTOM_BACKGROUND)
            self.background_combo.insertItem(custom, value, value)
            swatch = QColor(value)
            self.background_combo.setItemData(custom, swatch, Qt.ItemDataRole.DecorationRole)
            i = custom
        self.background_combo.setCurrentIndex(i)

    def load(self, spec: str, image_size: int | None = None, channels: int | None = None,
             background: str | None = None) -> None:
        """Load `spec` (a named set or a folder) in the background; `loaded` or `loadFailed` follows.
        `background` defaults to the panel's Background choice."""
        spec = str(spec)
        if self.state.training.running:
            msg = "Stop training before changing the data set."
            self.state.errorMessage.emit(msg)
            self.loadFailed.emit(msg)
            return
        if is_folder_spec(spec) and image_size is None:
            image_size, channels = self.folder_options()
        if background is None:
            background = self._background
        if self._task is not None:
            self._task.cancel()
        self._pending_spec = spec
        self._tasks = [t for t in self._tasks if not t.finished_event.is_set()]
        self.cache_note = ""  # set from the pool thread when the folder is streamed from a decode cache
        task = Task(_load, spec, image_size, channels, background, progress=True, cancellable=True,
                    note=lambda text: setattr(self, "cache_note", text))
        task.signals.done.connect(self._on_done)
        task.signals.failed.connect(self._on_failed)
        task.signals.progress.connect(self._on_progress)
        self._task = task
        self._tasks.append(task)
        self._set_loading(True, spec)
        start(task)

    def load_now(self, spec: str, image_size: int | None = None, channels: int | None = None) -> ImageSet:
        """Load on the calling thread (only for fast bundled sets at start-up). Raises DatasetError."""
        data = load_dataset(spec, image_size=image_size, channels=channels, background=self._background)
        self._apply(spec, data)
        return data

    def cancel(self) -> None:
        """Forget a load in flight (its result is ignored); nothing happens when idle."""
        if not self.loading:
            return
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._set_loading(False)

    @Slot()
    def open_folder_dialog(self) -> None:
        last = self.state.data_spec or self._pending_spec or ""
        start_dir = str(Path(last).parent) if last and os.path.isdir(last) else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open image folder", start_dir)
        if path:
            self.load(path)

    # ---- internals ----------------------------------------------------------------------------
    def _set_loading(self, loading: bool, spec: str = "") -> None:
        self.loading = loading
        self.progress.setVisible(loading)
        if loading:
            self.progress.setRange(0, 0)  # busy until the first progress report
            name = Path(spec).name if is_folder_spec(spec) else self._label(spec)
            self.progress.setFormat(f"Loading {name}…")
            self.progress.setTextVisible(True)
            self.error.hide()
        self.loadingChanged.emit(loading)

    def _label(self, spec: str) -> str:
        i = self.combo.findData(spec)
        return self.combo.itemText(i) if i >= 0 else spec

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if not self._is_current() or total <= 0:
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(done, total) / total))
        if self._pending_spec in DOWNLOADABLE:
            self.progress.setFormat(f"Downloading… {done / 1e6:.1f} / {total / 1e6:.1f} MB")
        else:
            building = "streaming" in getattr(self, "cache_note", "")  # a large folder goes into its decode cache
            what = "Building the decode cache" if building else "Loading images"
            self.progress.setFormat(f"{what}… {done:,} / {total:,}")

    @Slot(object)
    def _on_done(self, result) -> None:
        spec, data = result
        if not self._is_current() or spec != self._pending_spec:
            return  # superseded by a newer load
        self._task = None
        self._set_loading(False)
        self._apply(spec, data)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if not self._is_current():
            return
        self._task = None
        self._set_loading(False)
        self.last_error = message
        name = self._label(self._pending_spec or "") if not is_folder_spec(self._pending_spec or "") else \
            Path(self._pending_spec or "").name
        short = name if len(name) <= 28 else name[:27] + "…"
        self.error.setText(f"Could not load {short} (details above).")
        self.error.setToolTip(message)
        self.error.show()
        self._select(self.state.data_spec)  # the combo goes back to what is loaded
        self.state.errorMessage.emit(f"Could not load the data: {message}")
        self.loadFailed.emit(message)

    def _is_current(self) -> bool:
        return self.loading and self._task is not None and self.sender() is self._task.signals

    def _apply(self, spec: str, data: ImageSet) -> None:
        self.last_error = ""
        self.error.hide()
        self.state.set_dataset(data, spec)  # -> _on_dataset
        self.loaded.emit(data)

    @Slot(object)
    def _on_dataset(self, data: ImageSet) -> None:
        spec = self.state.data_spec or data.name
        self._select(spec)
        c, h, w = data.shape
        kind = "gray" if c == 1 else "RGB"
        classes = (f"{len(data.class_names)} classes" if data.labels is not None else "unlabelled")
        count = _plural(data.n, "image").split(" ", 1)
        bits = getattr(data, "high_bits", None)
        depth = f" · {bits}-bit" if bits is not None else ""
        self.info.setText(f"<b>{count[0]}</b> {count[1]} · {h}×{w} · {kind} ({c} ch){depth} · {classes}")
        note = data.transparency_note() if hasattr(data, "transparency_note") else None
        self.transparency.setText(f"⚠ {note[0].upper()}{note[1:]}." if note else "")
        self.transparency.setVisible(bool(note))
        tip = data.summary()
        if data.class_names:
            tip += "\nClasses: " + ", ".join(data.class_names[:30]) + (" …" if len(data.class_names) > 30 else "")
        if data.source:
            tip += f"\nFrom: {data.source}"
        self.info.setToolTip(tip)
        self._show_skipped(data.skipped)

    def _show_skipped(self, skipped: list[tuple[str, str]]) -> None:
        self.skipped_list.clear()
        n = len(skipped)
        for path, reason in skipped:
            item = QListWidgetItem(f"{Path(path).name} — {reason}")
            item.setToolTip(f"{path}\n{reason}")
            self.skipped_list.addItem(item)
        self.skipped_btn.setText(f"{_plural(n, 'file')} skipped")
        self.skipped_btn.setToolTip("Files in the folder that could not be used. Click to see each one and why:\n" +
                                    "\n".join(f"{Path(p).name}: {r}" for p, r in skipped[:20]) +
                                    ("\n…" if n > 20 else ""))
        self.skipped_btn.setVisible(n > 0)
        if n == 0:
            self.skipped_btn.setChecked(False)
        self.skipped_list.setVisible(n > 0 and self.skipped_btn.isChecked())

    @Slot(bool)
    def _toggle_skipped(self, on: bool) -> None:
        self.skipped_btn.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.skipped_list.setVisible(on and self.skipped_list.count() > 0)

    def _select(self, spec: str | None) -> None:
        if not spec:
            return
        if is_folder_spec(spec):
            self.recent = [spec, *(f for f in self.recent if f != spec)][:RECENT_FOLDERS]
        self.combo.setCurrentIndex(self._folder_item(spec))

    def _folder_item(self, spec: str) -> int:
        """The combo row of `spec`, added (a folder icon, its name, the path as tooltip) if missing."""
        i = self.combo.findData(spec)
        if i < 0:
            name = Path(spec).name or spec
            self.combo.addItem(style.icon("fa5s.folder", self), name, spec)
            i = self.combo.count() - 1
            self.combo.setItemData(i, spec, Qt.ItemDataRole.ToolTipRole)
        return i

    def add_recent(self, folders) -> None:
        """List folders loaded in earlier sessions (newest first) in the combo, without loading any;
        folders that are gone, or are not folders, are left out."""
        for spec in folders:
            if isinstance(spec, str) and is_folder_spec(spec) and spec not in self.recent and os.path.isdir(spec):
                if len(self.recent) >= RECENT_FOLDERS:
                    break
                self.recent.append(spec)
                self._folder_item(spec)  # listed only: the combo loads on `activated`, the user's pick

    @Slot(bool)
    def _on_training_running(self, running: bool) -> None:
        for w in (self.combo, self.open_btn, self.size_spin, self.channels_combo, self.background_combo):
            w.setEnabled(not running)
        why = "\n\nStop training to change the data set." if running else ""
        self.combo.setToolTip(DATASET_TIP + why)

    @Slot(int)
    def _on_combo(self, index: int) -> None:
        spec = self.combo.itemData(index)
        if spec and (spec != self.state.data_spec or self.state.dataset is None):
            self.load(spec)

    @Slot(int)
    def _on_background(self, index: int) -> None:
        value = str(self.background_combo.itemData(index))
        if value == CUSTOM_BACKGROUND:
            start = QColor(self._background if self._background.startswith("#") else "#808080")
            colour = QColorDialog.getColor(start, self, "Background for transparent pixels")
            if not colour.isValid():  # cancelled: back to the previous choice
                self._select_background(self._background)
                return
            value = colour.name()  # "#rrggbb"
        if value == self._background:
            self._select_background(value)
            return
        self._select_background(value)
        self._options_changed()

    @Slot()
    def _options_changed(self, *_) -> None:
        spec = self.state.data_spec
        if spec and is_folder_spec(spec) and not self.loading:
            self.load(spec)
