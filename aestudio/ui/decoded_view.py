"""The "Decoded sample" view: the latest image decoded from a latent code, shown large.

Any panel that decodes a code (latent map click, latent sliders, interpolation, ...) publishes
the image with `state.show_decoded(image, origin)`; this view shows it with its origin.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..workers.training import epoch_label
from .imaging import ScaledImage
from .state import StudioState

PLACEHOLDER = ("Click the latent map or drag the latent sliders: the image the decoder makes "
               "from that code appears here.")


class DecodedSampleView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.current_image: np.ndarray | None = None
        self.current_origin = ""
        self.setAccessibleName("Decoded sample")
        self.setToolTip("The decoder's output for the latest latent code you picked. "
                        "Pixels are enlarged without smoothing, so what you see is exactly what the model produced.")

        self.image = ScaledImage(self, min_side=96, placeholder=PLACEHOLDER)
        self.image.setAccessibleName("Decoded image")
        self.caption = QLabel(" ", self)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        self.caption.setAccessibleName("Decoded sample origin")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        lay.addWidget(self.image, 1)
        lay.addWidget(self.caption)

        state.decoded.connect(self._on_decoded)
        state.snapshotChanged.connect(self._on_snapshot)

    @Slot(object, str)
    def _on_decoded(self, image, origin: str) -> None:
        img = np.asarray(image, dtype=np.float32)
        if img.ndim == 4:
            img = img[0]
        self.current_image = img
        self.current_origin = origin
        self.image.set_image(img)
        c, h, w = img.shape if img.ndim == 3 else (1, *img.shape)
        snap = self.state.snapshot
        model = f"  ·  {epoch_label(int(snap.epoch))}" if snap is not None else ""
        self.caption.setText(f"From {origin}{model}  ·  {w}×{h}")

    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        if snapshot is None:  # new data or no model: an old decode would mislead
            self.current_image = None
            self.current_origin = ""
            self.image.set_image(None)
            self.caption.setText(" ")
