"""Issue 10 in the studio: the builder offers the linear activation, no hidden layer, the aae kind and
free bits, and warns about over-complete codes; the Codes vs prior panel; the PCA lab's subspace angle."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from aestudio.core.config import ModelConfig
from aestudio.core.labs.pca_compare import compare_at_size
from aestudio.core.models import Autoencoder
from aestudio.ui.builder_panel import BuilderPanel
from aestudio.ui.prior_view import PriorViewPanel
from aestudio.ui.state import StudioState


@pytest.fixture
def builder(qtbot):
    panel = BuilderPanel(StudioState())
    qtbot.addWidget(panel)
    return panel


def _combo_values(combo) -> list:
    return [combo.itemData(i) for i in range(combo.count())]


def test_builder_offers_the_new_choices_and_round_trips_them(builder):
    assert "aae" in _combo_values(builder.widget("kind"))
    assert "linear" in _combo_values(builder.widget("activation"))
    for cfg in (ModelConfig(arch="dense", hidden=[], latent=32, output="linear"),
                ModelConfig(arch="dense", kind="aae", latent=2, hidden=[64], activation="linear"),
                ModelConfig(arch="dense", kind="vae", latent=8, free_bits=0.25)):
        builder.set_config(cfg)
        assert builder.config() == cfg
    builder.widget("hidden").setText("none")  # typed: no hidden layer
    assert builder.config().hidden == () and builder.problems() == []


def test_builder_shows_free_bits_for_vaes_only(builder):
    builder.set_config(ModelConfig(kind="vae"))
    assert builder.form.is_shown("free_bits")
    builder.set_config(ModelConfig(kind="aae"))
    assert not builder.form.is_shown("free_bits")


def test_builder_warns_about_an_over_complete_code_but_allows_it(builder):
    builder.set_config(ModelConfig(arch="dense", latent=2000, input_shape=(1, 28, 28)))
    builder._refresh()
    assert builder.problems() == []
    assert builder.warnings_label.isVisibleTo(builder)
    assert "copy its input" in builder.warnings_label.text()
    builder.set_config(ModelConfig(arch="dense", latent=16, input_shape=(1, 28, 28)))
    builder._refresh()
    assert not builder.warnings_label.isVisibleTo(builder)


def _snapshot(kind: str, codes: np.ndarray) -> SimpleNamespace:
    """What the panel reads of a workers.training.ModelSnapshot."""
    cfg = ModelConfig(arch="dense", kind=kind, latent=codes.shape[1], hidden=[16], input_shape=(1, 8, 8))
    return SimpleNamespace(model_config=cfg, codes=codes.astype(np.float32), labels=np.arange(len(codes)) % 3,
                           class_names=["a", "b", "c"], epoch=3)


def test_codes_vs_prior_panel_follows_the_snapshots(qtbot):
    state = StudioState()
    panel = PriorViewPanel(state)
    qtbot.addWidget(panel)
    codes, prior = panel.point_data()
    assert len(codes) == 0 and "No model yet" in panel.info.text()
    rng = np.random.default_rng(0)
    state.set_snapshot(_snapshot("aae", rng.normal(size=(300, 6)) + 3.0))
    codes, prior = panel.point_data()
    assert codes.shape == (300, 2) and prior.shape == (1000, 2)
    assert "Epoch 3" in panel.info.text() and "discriminator" in panel.info.text()
    assert "distance 7.3" in panel.info.text()  # ||(3, ..., 3)|| in 6-D
    state.set_snapshot(_snapshot("ae", rng.normal(size=(50, 2))))
    assert panel.point_data()[0].shape == (50, 2) and "no prior" in panel.info.text()
    state.set_snapshot(None)
    assert len(panel.point_data()[0]) == 0


def test_pca_lab_reports_the_subspace_angle_of_linear_models(digits):
    x = digits.as_float()
    train, val = x[:1200], x[1200:1500]
    lin = Autoencoder(ModelConfig(arch="dense", hidden=[], latent=4, output="linear", input_shape=digits.shape)).eval()
    cmp = compare_at_size(lin, train, val)
    assert cmp.subspace_angle_deg is not None and 0 <= cmp.subspace_angle_deg <= 90
    assert "principal angle" in cmp.verdict
    relu = Autoencoder(ModelConfig(arch="dense", hidden=[16], latent=4, input_shape=digits.shape)).eval()
    cmp = compare_at_size(relu, train, val)
    assert cmp.subspace_angle_deg is None and "angle" not in cmp.verdict


# ---- the VAE tools and Code robustness labs ----------------------------------------------------------
def _lab_state(data, trainer):
    from aestudio.core.config import TrainConfig
    from aestudio.workers.training import make_snapshot

    state = StudioState()
    state.set_dataset(data, "digits")
    state.set_train_config(TrainConfig(**trainer.train_config.to_dict()))
    state.set_snapshot(make_snapshot(trainer, len(trainer.history)))
    return state


def _run_lab(qtbot, lab):
    from PySide6.QtCore import Qt

    assert lab.run_button.isEnabled()
    lab.last_result = None
    qtbot.mouseClick(lab.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: lab.last_result is not None or "color" in lab.notice.text(), timeout=120_000)
    return lab.last_result


def test_vae_tools_lab(qtbot, digits, tmp_path):
    from aestudio.core.config import TrainConfig
    from aestudio.core.training import fit
    from aestudio.ui.labs.vae_lab import VaeToolsLab

    cfg = ModelConfig(arch="dense", kind="vae", latent=3, hidden=[32], input_shape=digits.shape)
    trainer, _ = fit(cfg, TrainConfig(epochs=2, batch_size=64, seed=0), digits)
    lab = VaeToolsLab(_lab_state(digits, trainer))
    qtbot.addWidget(lab)
    lab.image_spin.setValue(5)
    lab.draws_spin.setValue(4)
    lab.compare_box.setChecked(True)
    lab.steps.setValue(60)
    r = _run_lab(qtbot, lab)
    assert r is not None, lab.notice.text()
    assert r.index == 5 and r.draws.draws.shape == (4, *digits.shape)
    draws_row = next(row for row in lab.draw_rows.rows if row.title == "4 draws")
    assert list(draws_row.captions) == ["draw 1", "draw 2", "draw 3", "draw 4"]  # not z1..z4: those name dimensions
    assert r.kl.shape == (2, 3) and r.sampling is not None
    assert [row.title for row in lab.sample_rows.rows] == ["Plain AE, fitted", "Plain AE, N(0, I)", "VAE prior"]
    assert len(lab.kl_curves) == 3 and len(lab.number_rows) == 3
    # the legend sits above the plot, in its title row, never over the curves' last epochs
    legend = lab.kl_plot.getPlotItem().legend
    assert legend.parentItem() is lab.kl_plot.getPlotItem() and [label.text for _, label in legend.items] == ["z1", "z2", "z3"]
    assert legend not in lab.kl_plot.getPlotItem().getViewBox().allChildren()  # not inside the view
    assert "draws for validation image 5" in lab.verdict_label.text()
    assert lab.export_figure(tmp_path / "vae.png").stat().st_size > 1000


def test_vae_tools_lab_explains_a_plain_model(qtbot, digits):
    from aestudio.core.config import TrainConfig
    from aestudio.core.training import fit
    from aestudio.ui.labs.vae_lab import VaeToolsLab

    cfg = ModelConfig(arch="dense", kind="ae", latent=3, hidden=[32], input_shape=digits.shape)
    trainer, _ = fit(cfg, TrainConfig(epochs=1, batch_size=64, seed=0), digits)
    lab = VaeToolsLab(_lab_state(digits, trainer))
    qtbot.addWidget(lab)
    assert _run_lab(qtbot, lab) is None
    assert "need a variational autoencoder" in lab.notice.text()


def test_code_robustness_lab(qtbot, digits):
    from aestudio.core.config import TrainConfig
    from aestudio.core.training import fit
    from aestudio.ui.labs.robustness_lab import RobustnessLab

    cfg = ModelConfig(arch="dense", kind="ae", latent=4, hidden=[32], input_shape=digits.shape)
    trainer, _ = fit(cfg, TrainConfig(epochs=1, batch_size=64, seed=0), digits)
    lab = RobustnessLab(_lab_state(digits, trainer))
    qtbot.addWidget(lab)
    lab.steps.setValue(40)
    rows = _run_lab(qtbot, lab)
    assert rows is not None, lab.notice.text()
    assert [r.name for r in rows] == ["plain", "denoising", "contractive"]
    assert all(r.model_config.latent == 4 for r in rows)
    x, y = lab.curves[("raw", "contractive")].getData()
    assert len(x) == 3 and np.all(np.isfinite(y))
    assert len(lab.number_rows) == 9 and "Code movement per unit of input noise" in lab.verdict_label.text()
    # the log axis names the noise levels measured, in plain numbers (not 10¹ … 9·10¹ of an axis "x0.001")
    sigmas = rows[0].sensitivity.sigmas
    for plot in (lab.raw_plot, lab.rel_plot):
        axis = plot.getPlotItem().getAxis("bottom")
        assert [label for _, label in axis._tickLevels[0]] == [f"{float(v):g}" for v in sigmas]
        assert "noise σ per pixel" in axis.labelString() and "(x" not in axis.labelString()  # no SI-prefix scale
