"""The "Latent sliders" panel: one slider per code dimension, decoded live while you drag.

The code being edited always has every dimension; sliders show 12 dimensions at a time (a page
selector appears for larger codes). Decoding is coalesced with a timer that starts when a decode
starts: while dragging, a decode begins every DECODE_INTERVAL_MS at most (or as soon as the last
one is done, when it took longer), and the last value always lands.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout,
                               QWidget)
from superqt import QLabeledDoubleSlider

from ..core.config import PRIOR_KINDS
from ..core.latent import CodeStats, code_stats, dim_name, sample_codes
from ..workers.training import epoch_label
from . import imaging
from .state import StudioState

PAGE = 12  # sliders on show at once
DECODE_INTERVAL_MS = 8  # from the start of one decode to the next: a late event-loop turn still leaves a new image per 60 Hz frame
DISABLED_TEXT = ("Train a model (or open a saved run) first: these sliders set the numbers of a latent code "
                 "one by one and show what the decoder makes of it.")


class LatentSlidersPanel(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Latent sliders")
        self.snapshot = None
        self.stats: CodeStats | None = None
        self.code: np.ndarray | None = None  # the full code being edited
        self.first_dim = 0
        self.decode_count = 0
        self._selected: int | None = None
        self.start_index: int | None = None  # the validation image "Start from image" used last
        self._rng = np.random.default_rng()
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(DECODE_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)

        self.notice = QLabel(DISABLED_TEXT, self)
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("Latent sliders notice")

        # -- page selector (codes with more than PAGE dimensions) --
        self.page_combo = QComboBox(self)
        self.page_combo.setAccessibleName("Dimensions shown")
        self.page_combo.setToolTip(f"The code has more dimensions than fit here: pick which {PAGE} to show. "
                                   "Values you set on other pages are kept.")
        self.page_combo.currentIndexChanged.connect(self._on_page_changed)
        self.page_label = QLabel("Dimensions:", self)
        self.page_label.setBuddy(self.page_combo)
        page_row = QHBoxLayout()
        page_row.setContentsMargins(0, 0, 0, 0)
        page_row.addWidget(self.page_label)
        page_row.addWidget(self.page_combo)
        page_row.addStretch(1)

        # -- sliders --
        self.sliders: list[QLabeledDoubleSlider] = []
        self.dim_labels: list[QLabel] = []
        self.slider_box = QWidget(self)
        grid = QGridLayout(self.slider_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        for i in range(PAGE):
            lab = QLabel(dim_name(i), self.slider_box)
            lab.setMinimumWidth(30)
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            s = QLabeledDoubleSlider(Qt.Orientation.Horizontal, self.slider_box)
            s.setDecimals(2)
            s.setRange(-3.0, 3.0)
            s.setValue(0.0)
            s.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            s.valueChanged.connect(self._on_slider)
            lab.setBuddy(s)
            grid.addWidget(lab, i, 0)
            grid.addWidget(s, i, 1)
            self.sliders.append(s)
            self.dim_labels.append(lab)

        # -- buttons --
        self.random_button = QPushButton("Random sample", self)
        self.random_button.setAccessibleName("Random sample")
        self.random_button.setToolTip("Decode a random code: for a VAE drawn from its prior N(0, I); for other "
                                      "autoencoders from a Gaussian fitted to the validation codes.")
        self.random_button.clicked.connect(self.random_sample)
        self.image_button = QPushButton("Start from image", self)
        self.image_button.setAccessibleName("Start from image")
        self.image_button.setToolTip("Set the sliders to the code of a validation image: the one you last clicked "
                                     "in the image grid, or a random one. Then move one slider to see what that "
                                     "dimension changes about this particular image.")
        self.image_button.clicked.connect(self.start_from_image)
        self.reset_button = QPushButton("Reset", self)
        self.reset_button.setAccessibleName("Reset sliders")
        self.reset_button.setToolTip("Set every dimension to its mean over the validation codes: "
                                     "the decoded image is the model's 'average' image.")
        self.reset_button.clicked.connect(self.reset)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.random_button)
        buttons.addWidget(self.image_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)

        # -- where the current code came from --
        self.source_thumb = QLabel(self)
        self.source_thumb.setFixedSize(36, 36)
        self.source_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.source = QLabel(self)
        self.source.setWordWrap(True)
        self.source.setAccessibleName("Code source")
        self.source.setMinimumHeight(36)
        src = QHBoxLayout()
        src.setContentsMargins(0, 0, 0, 0)
        src.addWidget(self.source_thumb)
        src.addWidget(self.source, 1)

        self.controls = QWidget(self)
        inner = QVBoxLayout(self.controls)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.setSpacing(6)
        inner.addLayout(buttons)
        inner.addLayout(src)
        inner.addLayout(page_row)
        inner.addWidget(self.slider_box)
        inner.addStretch(1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addWidget(self.notice)
        lay.addWidget(self.controls, 1)

        self._set_enabled(False)
        state.snapshotChanged.connect(self._on_snapshot)
        state.imageSelected.connect(self._on_image_selected)
        state.codeChosen.connect(self._on_code_chosen)

    # ---- public API ------------------------------------------------------------------------------
    @property
    def latent(self) -> int:
        return 0 if self.code is None else len(self.code)

    def set_code(self, z, source: str | None = None, decode: bool = True) -> None:
        """Set the whole code (latent,), move the sliders to it and decode it."""
        if self.snapshot is None:
            return
        z = np.asarray(z, np.float32).reshape(-1)
        if len(z) != self.latent:
            raise ValueError(f"expected a code of {self.latent} numbers, got {len(z)}")
        self.code = z.copy()
        self._sync_sliders()
        if source is not None:
            self._set_source(source)
        if decode:
            self._decode_now()
        else:
            self._announce()

    @Slot()
    def random_sample(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        z = sample_codes(snap.model, 1, int(self._rng.integers(2**31)), codes=snap.codes)[0]
        if self._is_vae():
            self.set_code(z, "A random code from the prior N(0, I), the distribution a VAE samples from.")
        else:
            self.set_code(z, "A random code from a Gaussian fitted to the validation codes "
                             "(this kind of autoencoder has no prior).")
        self._set_thumb(None)

    @Slot()
    def start_from_image(self) -> None:
        snap = self.snapshot
        if snap is None or len(snap.codes) == 0:
            return
        n = len(snap.codes)
        picked = self._selected is not None and 0 <= self._selected < n
        index = self._selected if picked else int(self._rng.integers(n))
        label = ""
        if snap.labels is not None:
            k = int(snap.labels[index])
            label = f" ({snap.class_names[k] if k < len(snap.class_names) else k})"
        how = "selected in the image grid" if picked else "picked at random; click one in the image grid to choose"
        self.set_code(snap.codes[index], f"The code of validation image #{index + 1}{label}, {how}.")
        self._set_thumb(imaging.to_pixmap(snap.images[index], 32))
        self.start_index = index

    @Slot()
    def reset(self) -> None:
        if self.snapshot is None or self.stats is None:
            return
        self.set_code(self.stats.mean, "The mean of the validation codes.")
        self._set_thumb(None)

    # ---- handlers ------------------------------------------------------------------------------------
    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        self.snapshot = snapshot
        if snapshot is None:
            self.code = None
            self.stats = None
            self._set_enabled(False)
            return
        codes = np.asarray(snapshot.codes, np.float32).reshape(len(snapshot.codes), -1)
        latent = int(snapshot.model_config.latent) if codes.size == 0 else codes.shape[1]
        if len(codes):
            self.stats = code_stats(codes)
        else:
            zeros, ones = np.zeros(latent, np.float32), np.ones(latent, np.float32)
            self.stats = CodeStats(zeros, ones, -3 * ones, 3 * ones)
        # a new model: its codes live elsewhere, so start again from the mean of ITS validation codes
        keep = self.code is not None and len(self.code) == latent
        self.code = self.stats.mean.astype(np.float32).copy()
        self._set_source("The mean of the validation codes.")
        self._set_thumb(None)
        pages = max(1, -(-latent // PAGE))
        self.page_combo.blockSignals(True)
        if self.page_combo.count() != pages or not keep:
            self.page_combo.clear()
            for p in range(pages):
                lo, hi = p * PAGE + 1, min(latent, (p + 1) * PAGE)
                self.page_combo.addItem(f"z{lo}–z{hi} of {latent}")
            self.first_dim = 0
        self.page_combo.blockSignals(False)
        self.page_combo.setVisible(pages > 1)
        self.page_label.setVisible(pages > 1)
        self._set_enabled(True)
        self._sync_sliders()
        self._decode_now()  # the decoded sample shows this model's image, not the previous model's

    @Slot(object, str, str)
    def _on_code_chosen(self, code, origin: str, description: str) -> None:
        """Another panel chose a code (a click on the latent map): show it on the sliders. It was decoded
        and published there already."""
        if origin == "sliders" or self.snapshot is None or code is None:
            return
        z = np.asarray(code, np.float32).reshape(-1)
        if len(z) != self.latent:
            return
        self.code = z.copy()
        self._sync_sliders()
        self._set_source(description or "A code chosen on the latent map.")
        self._set_thumb(None)

    @Slot(object)
    def _on_image_selected(self, index) -> None:
        try:
            self._selected = int(index)
        except (TypeError, ValueError):
            self._selected = None

    @Slot(int)
    def _on_page_changed(self, page: int) -> None:
        self.first_dim = max(0, page) * PAGE
        self._sync_sliders()

    @Slot(float)
    def _on_slider(self, value: float) -> None:
        if self.code is None:
            return
        slider = self.sender()
        try:
            i = self.sliders.index(slider)
        except ValueError:
            return
        dim = self.first_dim + i
        if dim >= len(self.code):
            return
        self.code[dim] = value
        self._request_decode()

    @Slot()
    def _on_timer(self) -> None:
        if self._dirty:
            self._timer.start()  # keep the pace while the drag goes on (counted from this decode's start)
            self._decode_now()

    # ---- helpers ---------------------------------------------------------------------------------------
    def _request_decode(self) -> None:
        if self._timer.isActive():
            self._dirty = True
            return
        self._timer.start()
        self._decode_now()

    def _decode_now(self) -> None:
        self._dirty = False
        if self.snapshot is None or self.code is None:
            return
        image = self.snapshot.decode(self.code)[0]
        self.decode_count += 1
        self.state.show_decoded(image, "sliders")
        self._announce()

    def _announce(self) -> None:
        """Tell the other latent views (the map marks it) which code the sliders hold."""
        if self.snapshot is not None and self.code is not None:
            self.state.choose_code(self.code.copy(), "sliders", self.source.text())

    def _is_vae(self) -> bool:
        return self.snapshot is not None and self.snapshot.model_config.kind in PRIOR_KINDS  # VAE or AAE

    def _range(self, dim: int) -> tuple[float, float]:
        lo, hi = self.stats.range(dim, 3.0)
        if self._is_vae():
            lo, hi = min(lo, -3.0), max(hi, 3.0)
        return lo, hi

    def _sync_sliders(self) -> None:
        """Show dimensions first_dim .. first_dim + PAGE of the code, without decoding."""
        if self.code is None or self.stats is None:
            return
        vae = self._is_vae()
        for i, (s, lab) in enumerate(zip(self.sliders, self.dim_labels)):
            dim = self.first_dim + i
            on = dim < len(self.code)
            s.setVisible(on)
            lab.setVisible(on)
            if not on:
                continue
            lo, hi = self._range(dim)
            v = float(self.code[dim])
            lo, hi = min(lo, v), max(hi, v)
            s.blockSignals(True)
            s.setRange(lo, hi)
            s.setSingleStep((hi - lo) / 100.0)
            s.setValue(v)
            s.blockSignals(False)
            lab.setText(dim_name(dim))
            mean, std = float(self.stats.mean[dim]), float(self.stats.std[dim])
            tip = (f"Code dimension {dim_name(dim)}. Drag to change just this number of the code and watch the "
                   f"decoded image. Over the validation images it has mean {mean:.2f} and standard deviation "
                   f"{std:.2f}; the slider spans mean ± 3 standard deviations, where almost all codes lie.")
            if vae:
                tip += (" For a VAE the range also covers −3…3: the N(0, 1) prior the decoder learned to "
                        "read puts 99.7% of its samples there.")
            if std < 1e-3:
                tip += " This dimension barely varies: the model does not seem to use it."
            s.setToolTip(tip)
            s.setAccessibleName(f"Latent dimension {dim + 1}")
            lab.setToolTip(tip)
        self.random_button.setToolTip(
            "Decode a random code drawn from the prior N(0, I): the way a VAE generates new images."
            if vae else
            "Decode a random code drawn from a Gaussian fitted to the validation codes (mean and spread per "
            "dimension). A plain autoencoder has no prior, so random codes may land where no training image "
            "did and decode to something odd: that is worth seeing.")

    def _set_thumb(self, pixmap) -> None:
        if pixmap is None:
            self.source_thumb.clear()
        else:
            self.source_thumb.setPixmap(pixmap)
        self.source_thumb.setVisible(pixmap is not None)

    def _set_source(self, text: str) -> None:
        """Where the code came from, and which model decodes it (its epoch)."""
        if self.snapshot is not None:
            text = f"{text} Model: {epoch_label(int(self.snapshot.epoch))}."
        self.source.setText(text)

    def _set_enabled(self, on: bool) -> None:
        self.notice.setVisible(not on)
        self.controls.setEnabled(on)
        self.slider_box.setVisible(on)
        if not on:
            self.page_combo.setVisible(False)
            self.page_label.setVisible(False)
        for w in (self.random_button, self.image_button, self.reset_button, *self.sliders):
            w.setEnabled(on)
        if not on:
            self.source.setText("")
            self._set_thumb(None)
