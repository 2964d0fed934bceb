"""VAE tools: what makes a variational autoencoder different from a plain one, seen on the current VAE.

Run shows three things (numbers computed by `core.labs.vae_tools`, off the GUI thread):

* **Sampled reconstructions**: one validation image decoded from several codes drawn from its
  posterior q(z|x), next to the reconstruction from the posterior mean and a map of where the draws
  disagree. A plain autoencoder would give the same image every time.
* **KL per dimension over training**: the validation KL of each code dimension at every epoch
  (recorded in the run's history). Dimensions that stay near 0 carry nothing: posterior collapse.
  KL warm-up and free bits are the usual remedies.
* **AE vs VAE sampling** (optional, trains a plain autoencoder of the same architecture): random codes
  decoded by the plain autoencoder (from a Gaussian fitted to its codes, and from N(0, I)) next to the
  VAE's prior samples.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QLabel, QSizePolicy, QSpinBox, QVBoxLayout, QWidget

from ...core.config import ConfigError
from ...core.labs import vae_tools as core
from ...core.labs.denoising import lab_train, steps_config
from ...core.latent import dim_name
from .. import imaging
from .base import LabData, LabPanel, lab_data, steps_spinbox, steps_text
from .denoising_lab import ImageRow, ImageRows

DEFAULT_STEPS = 800
SAMPLES = 8


@dataclass
class VaeToolsResult:
    index: int
    draws: core.SampleReconstructions
    epochs: np.ndarray  # (E,)
    kl: np.ndarray  # (E, latent)
    sampling: core.AeVaeSamples | None
    steps: int


class VaeToolsLab(LabPanel):
    title = "VAE tools"
    help_text = (
        "A VAE encodes each image as a distribution, not a point. <i>Run</i> decodes one image from several "
        "codes drawn from that distribution, plots each code dimension's KL over training (near 0: a collapsed "
        "dimension), and, if asked, trains a plain autoencoder to compare decoding random codes with sampling "
        "the VAE's prior."
    )

    def __init__(self, state, parent: QWidget | None = None):
        self._request: dict[str, Any] = {}
        super().__init__(state, parent)
        self.image_spin = QSpinBox()
        self.image_spin.setRange(0, 0)
        self.image_spin.setAccessibleName("Validation image")
        self.image_spin.setToolTip("Which validation image to reconstruct several times.")
        self.draws_spin = QSpinBox()
        self.draws_spin.setRange(2, 32)
        self.draws_spin.setValue(SAMPLES)
        self.draws_spin.setAccessibleName("Draws")
        self.draws_spin.setToolTip("How many codes to draw from the image's posterior (each decoded once).")
        self.compare_box = QCheckBox("Compare sampling with a plain autoencoder")
        self.compare_box.setAccessibleName("Compare with a plain autoencoder")
        self.compare_box.setToolTip("Train a plain autoencoder of the same architecture and code size, then decode "
                                    "random codes with it next to samples of the VAE's prior.")
        self.steps = steps_spinbox(DEFAULT_STEPS, "Training steps",
                                   "Optimizer steps for the plain autoencoder (this run's batch size and learning rate).")
        for spin in (self.image_spin, self.draws_spin):  # as wide as their numbers, not the whole lab
            spin.setMinimumWidth(90)
            spin.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.controls.addRow("Image", self.image_spin)
        self.controls.addRow("Draws", self.draws_spin)
        self.controls.addRow(self.compare_box)
        self.controls.addRow("Plain AE steps", self.steps)

        fig = QWidget()
        self.draw_rows = ImageRows(tile=44)
        self.draw_rows.setAccessibleName("Sampled reconstructions")
        self.kl_plot = pg.PlotWidget()
        self.kl_plot.setAccessibleName("KL per dimension over training")
        self.kl_plot.setToolTip("Validation KL of each code dimension (nats) after every epoch. A dimension near 0 "
                                "is ignored by the decoder; free bits and KL warm-up keep dimensions alive.")
        item = self.kl_plot.getPlotItem()
        item.setLabel("bottom", "epoch")
        item.setLabel("left", "KL per dimension (nats)")
        imaging.legend_above(item, columns=8, label_size="8pt")
        item.getAxis("left").enableAutoSIPrefix(False)  # nats as they are, never "(x0.001)"
        imaging.style_plot(self.kl_plot, self.palette(), legend_frame=False)
        self.kl_plot.setMinimumHeight(160)
        self.kl_curves: list[pg.PlotDataItem] = []
        self.sample_rows = ImageRows(tile=44)
        self.sample_rows.setAccessibleName("AE vs VAE samples")
        self.verdict_label = QLabel()
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAccessibleName("Verdict")
        lay = QVBoxLayout(fig)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.verdict_label)
        lay.addWidget(self.draw_rows)
        lay.addWidget(self.kl_plot, 1)
        lay.addWidget(self.sample_rows)
        self.set_figure(fig)
        self.on_model_changed(lab_data(state))  # the base class asked before the controls existed

    def on_model_changed(self, data: LabData | None) -> None:
        if not hasattr(self, "image_spin"):
            return
        n = data.val.n if data is not None else 1
        self.image_spin.setRange(0, max(0, n - 1))

    @Slot()
    def run(self) -> None:
        """Read the controls here, on the GUI thread; `compute` runs on a pool thread."""
        if self.busy:
            return
        self._request = {"index": int(self.image_spin.value()), "draws": int(self.draws_spin.value()),
                         "compare": self.compare_box.isChecked(), "steps": int(self.steps.value())}
        LabPanel.run(self)

    def compute(self, data: LabData, progress: Callable[[int, int], None]) -> VaeToolsResult:
        model, snap, req = data.model, data.snapshot, dict(self._request)
        if snap.model_config.kind != "vae":
            raise ConfigError("VAE tools need a variational autoencoder: set Kind to Variational (VAE) and train one")
        index = min(req["index"], data.val.n - 1)
        draws = core.sample_reconstructions(model, data.val.images[index], n=req["draws"], seed=0)
        epochs, kl = core.kl_per_dim_history(snap.history)
        sampling, steps = None, 0
        if req["compare"]:
            steps = req["steps"]
            tcfg = steps_config(snap.train_config, data.train.n, steps, "none", snap.train_config.seed)
            ae = lab_train(replace(snap.model_config, kind="ae"), tcfg, data.train, data.val, progress).model
            sampling = core.sample_ae_vs_vae(ae, model, data.train.images, n=SAMPLES, seed=0)
        return VaeToolsResult(index, draws, epochs, kl, sampling, steps)

    def show_result(self, r: VaeToolsResult) -> None:
        d = r.draws
        n = len(d.draws)
        self.draw_rows.set_rows([
            ImageRow("Image and mean", np.stack([d.image, d.mean]), [f"val #{r.index}", "from μ"],
                     "The validation image and its reconstruction from the posterior mean μ."),
            ImageRow(f"{n} draws", d.draws, [f"draw {i + 1}" for i in range(n)],
                     "Each decoded from its own code z = μ + σ·ε drawn from q(z|x): a VAE's output varies."),
            ImageRow("Where they differ", d.pixel_std.mean(0)[None], [f"std {d.spread:.3f}"],
                     "Standard deviation of the draws per pixel (bright: the draws disagree there).", heat=True),
        ])
        item = self.kl_plot.getPlotItem()
        for c in self.kl_curves:
            item.removeItem(c)
        self.kl_curves = []
        legend = item.legend
        if legend is not None:
            legend.clear()
        latent = r.kl.shape[1] if r.kl.ndim == 2 else 0
        colors = imaging.class_colors(max(latent, 1))
        for j in range(latent):
            curve = item.plot(r.epochs.astype(float), r.kl[:, j], pen=pg.mkPen(QColor(colors[j]), width=2),
                              symbol="o", symbolSize=4, symbolBrush=QColor(colors[j]),
                              name=dim_name(j) if latent <= 12 else None)
            self.kl_curves.append(curve)
        rows = []
        if r.sampling is not None:
            s = r.sampling
            rows = [
                ImageRow("Plain AE, fitted", s.ae_fitted, [""] * len(s.ae_fitted),
                         "The plain autoencoder decoding codes drawn from a Gaussian fitted to its own codes."),
                ImageRow("Plain AE, N(0, I)", s.ae_standard, [""] * len(s.ae_standard),
                         "The plain autoencoder decoding N(0, I) codes: it was never trained to make sense of them."),
                ImageRow("VAE prior", s.vae_prior, [""] * len(s.vae_prior),
                         "The VAE decoding samples of its prior N(0, I), which its training made meaningful."),
            ]
        self.sample_rows.set_rows(rows)
        self.sample_rows.setVisible(bool(rows))
        last = r.kl[-1] if len(r.kl) else np.zeros(0)
        dead = int(np.sum(last < 0.01)) if len(last) else 0
        text = (f"The {n} draws for validation image {r.index} differ by {d.spread:.3f} per pixel on average "
                f"(posterior σ from {d.sigma.min():.2f} to {d.sigma.max():.2f}).")
        if len(last):
            text += (f" After epoch {int(r.epochs[-1])}, {dead} of {len(last)} dimensions carry under 0.01 nats"
                     + (" (collapsed: try KL warm-up or free bits)." if dead else "."))
        else:
            text += " This run's history has no per-dimension KL (it was trained before it was recorded)."
        if r.sampling is not None:
            text += f" Plain autoencoder trained for {steps_text(r.steps)} for the sampling comparison."
        self.verdict_label.setText(text)
        self.set_numbers(["dimension", "KL at the last epoch (nats)", f"posterior σ for image {r.index}"],
                         [[dim_name(j), float(last[j]) if len(last) else "", float(d.sigma[j])]
                          for j in range(len(d.sigma))])


__all__ = ["VaeToolsLab", "VaeToolsResult"]
