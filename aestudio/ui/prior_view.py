"""The "Codes vs prior" panel: the model's validation codes over samples of the prior N(0, I).

An adversarial autoencoder's discriminator pushes its codes toward N(0, I), and a VAE's KL term
pulls them there; this view shows how close they get, refreshed with every snapshot (once an
epoch while training). Codes larger than 2-D are projected onto the two directions along which
they vary most (`core.adversarial.prior_view`, numpy only); the prior is projected the same way
and stays a standard 2-D Gaussian. A plain autoencoder has no prior: its codes are drawn against
N(0, I) for reference, which shows why sampling N(0, I) decodes poorly for it.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.adversarial import prior_view
from . import imaging
from .state import StudioState

PRIOR_COLOR = "#9aa0a6"
CODE_COLOR = "#e15759"
N_PRIOR = 1000
WAITING = "No model yet: train one (an adversarial autoencoder, kind aae, shapes its codes into the prior) or open a run."
HELP = ("Grey: samples of the prior N(0, I). Red: the model's codes of the validation images, refreshed every epoch "
        "while training. An adversarial autoencoder's discriminator, or a VAE's KL term, pulls the red cloud onto "
        "the grey one, so that decoding prior samples gives images like the data. Codes with more than two "
        "dimensions are shown along their two widest directions; the prior, projected the same way, is again N(0, I).")
PRIOR_KINDS = {"aae": "its discriminator pushes the codes toward the prior",
               "vae": "its KL term pulls the codes (posterior means) toward the prior"}


class PriorViewPanel(QWidget):
    """Codes against prior samples; follows `state.snapshotChanged`."""

    def __init__(self, state: StudioState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Codes vs prior")
        self.view = None  # the last core PriorView drawn
        self.plot = pg.PlotWidget(self)
        self.plot.setAccessibleName("Codes vs prior plot")
        self.plot.setToolTip(HELP)
        item = self.plot.getPlotItem()
        item.setAspectLocked(True)
        item.showGrid(x=True, y=True, alpha=0.15)
        self.prior_item = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(QColor(PRIOR_COLOR)), name="prior")
        code = QColor(CODE_COLOR)
        code.setAlpha(170)
        self.code_item = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(code), name="codes")
        item.addItem(self.prior_item)
        item.addItem(self.code_item)
        imaging.style_plot(self.plot, self.palette())
        self.info = QLabel(WAITING, self)
        self.info.setWordWrap(True)
        self.info.setAccessibleName("Codes vs prior summary")
        self.info.setToolTip(HELP)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)
        state.snapshotChanged.connect(self._on_snapshot)
        state.datasetChanged.connect(self._on_dataset)
        if state.snapshot is not None:
            self._on_snapshot(state.snapshot)

    def point_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes (N, 2), prior samples (M, 2)) as drawn; empty before a model. For tests and export."""
        if self.view is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        return self.view.codes.copy(), self.view.prior.copy()

    @Slot(object)
    def _on_snapshot(self, snapshot) -> None:
        if snapshot is None or getattr(snapshot, "codes", None) is None or len(snapshot.codes) == 0:
            self._clear(WAITING)
            return
        self.view = v = prior_view(snapshot.codes, N_PRIOR, seed=0, labels=snapshot.labels)
        self.prior_item.setData(v.prior[:, 0], v.prior[:, 1])
        self.code_item.setData(v.codes[:, 0], v.codes[:, 1])
        item = self.plot.getPlotItem()
        item.setLabel("bottom", v.axes[0])
        item.setLabel("left", v.axes[1] or " ")
        item.enableAutoRange()
        kind = snapshot.model_config.kind
        why = PRIOR_KINDS.get(kind, "it has no prior, so nothing pulls its codes there (shown for reference)")
        self.info.setText(f"Epoch {snapshot.epoch} · {kind}: {why}. {v.summary()[0].upper()}{v.summary()[1:]}.")

    @Slot(object)
    def _on_dataset(self, _data) -> None:
        self._clear(WAITING)

    def _clear(self, text: str) -> None:
        self.view = None
        self.prior_item.setData([], [])
        self.code_item.setData([], [])
        self.info.setText(text)


__all__ = ["PriorViewPanel"]
