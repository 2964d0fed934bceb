"""Look inside: filters, decoder weights, activation histograms, gradient norms, code statistics."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from aestudio.core import inspect as ins
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.losses import loss_terms
from aestudio.core.models import Autoencoder
from aestudio.core.training import Trainer, fit

pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def small(digits):
    return digits.subset(np.arange(600))


def grad_norms(record: dict) -> dict[str, float]:
    return {k[len(ins.GRAD_PREFIX):]: v for k, v in record.items() if k.startswith(ins.GRAD_PREFIX)}


# ---- weights as images ---------------------------------------------------------------------------------
def test_dense_filters_are_the_first_weight_rows_as_images():
    cfg = ModelConfig(arch="dense", latent=3, hidden=[10], input_shape=(1, 8, 8))
    model = Autoencoder(cfg)
    filters = ins.first_layer_filters(model)
    assert filters.shape == (10, 1, 8, 8) and filters.dtype == np.float32
    w = model.enc_blocks[0][1].weight.detach().numpy()
    np.testing.assert_array_equal(filters[3].reshape(-1), w[3])
    out = ins.decoder_output_weights(model)
    assert out.shape == (10, 1, 8, 8)
    np.testing.assert_array_equal(out[4].reshape(-1), model.dec_blocks[0][0].weight.detach().numpy()[:, 4])


def test_tied_decoder_shows_the_encoder_filters():
    model = Autoencoder(ModelConfig(arch="dense", latent=3, hidden=[10], tied=True, input_shape=(1, 8, 8)))
    np.testing.assert_array_equal(ins.decoder_output_weights(model), ins.first_layer_filters(model))


@pytest.mark.parametrize("arch, hidden, shape, filters, decoder", [
    ("conv", [6], (3, 8, 8), (6, 3, 4, 4), (6, 3, 4, 4)),
    ("recurrent", [5], (1, 8, 8), (20, 1, 1, 8), (5, 1, 1, 8)),  # LSTM: 4 gates x 5 units read one row
])
def test_filters_of_other_architectures(arch, hidden, shape, filters, decoder):
    model = Autoencoder(ModelConfig(arch=arch, latent=2, hidden=hidden, input_shape=shape))
    assert ins.first_layer_filters(model).shape == filters
    assert ins.decoder_output_weights(model).shape == decoder
    assert ins.first_layer_filters(model, limit=3).shape[0] == 3


# ---- activations -----------------------------------------------------------------------------------
def test_histograms_cover_every_hidden_layer_and_leave_the_model_alone(small):
    model = Autoencoder(ModelConfig(arch="dense", latent=4, hidden=[16, 8], input_shape=(1, 8, 8)))
    before = copy.deepcopy(model.state_dict())
    model.train()
    acts = ins.activation_histograms(model, small.images[:50] / 255.0, bins=20)
    assert [a.name for a in acts] == ["encoder 1", "encoder 2", "code", "decoder in", "decoder 1"]
    assert [a.units for a in acts] == [16, 8, 4, 8, 16]
    for a in acts:
        assert a.counts.sum() == 50 * a.units and len(a.edges) == 21
    assert model.training and not model._forward_hooks and not model.enc_blocks[0]._forward_hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sparsity_shows_in_the_code_histogram(small):
    """Same model, with and without an L1 penalty on its (ReLU) code: the penalty switches most code
    units off on most images, and the histogram piles up at zero."""
    results = {}
    for weight in (0.0, 0.5):
        cfg = ModelConfig(arch="dense", kind="sparse", sparsity="l1", sparsity_weight=weight, latent=32,
                          hidden=[32], input_shape=(1, 8, 8))
        trainer, fin = fit(cfg, TrainConfig(epochs=8, batch_size=32, lr=2e-3, device="cpu"), small)
        assert fin.reason == "completed"
        acts = ins.activation_histograms(trainer.model, small.images[:300] / 255.0)
        results[weight] = next(a for a in acts if a.name == "code")
    plain, sparse = results[0.0], results[0.5]
    assert sparse.fraction_active < 0.25 * plain.fraction_active
    assert sparse.fraction_zero > 0.8 > plain.fraction_zero
    zero_bin = lambda a: a.counts[np.searchsorted(a.edges, 0.0, side="right") - 1] / a.counts.sum()  # noqa: E731
    assert zero_bin(sparse) > zero_bin(plain) + 0.3
    assert sparse.dead_units > plain.dead_units


# ---- gradient norms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("clip", [0.0, 1e-4])
def test_grad_norms_are_the_last_batch_gradients_before_clipping(small, clip):
    """One batch per epoch: the recorded norms must equal the gradients of the untrained model on the
    whole training split, per layer (clipping, applied after, does not change what is recorded)."""
    cfg = ModelConfig(arch="dense", latent=4, hidden=[16, 8], input_shape=(1, 8, 8))
    trainer = Trainer(cfg, TrainConfig(epochs=1, batch_size=1000, device="cpu", grad_clip=clip), small)
    ref = copy.deepcopy(trainer.model).train()
    loss_terms(ref, trainer.x_train, trainer.x_train)["total"].backward()
    expected = {name: float(torch.sqrt(sum(p.grad.pow(2).sum() for p in params)))
                for name, params in ins.layer_parameters(ref)}
    list(trainer.run())
    got = grad_norms(trainer.history[0])
    assert list(got) == ["encoder 1", "encoder 2", "code", "decoder in", "decoder 1", "decoder 2"]
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-4), name


def test_grad_norms_show_vanishing_gradients_in_a_deep_sigmoid_model(small):
    ratios = {}
    for act in ("sigmoid", "relu"):
        cfg = ModelConfig(arch="dense", latent=4, hidden=[32] * 5, activation=act, init="xavier", input_shape=(1, 8, 8))
        trainer, _ = fit(cfg, TrainConfig(epochs=2, batch_size=64, device="cpu"), small)
        curves = ins.grad_norms_per_layer(trainer.history)
        assert set(curves) == {*(f"encoder {i}" for i in range(1, 6)), "code", "decoder in",
                               *(f"decoder {i}" for i in range(1, 6))}
        epochs, values = curves["encoder 1"]
        assert list(epochs) == [1.0, 2.0] and np.all(values > 0)
        ratios[act] = curves["encoder 1"][1][-1] / curves["decoder 5"][1][-1]
    assert ratios["sigmoid"] < 1e-3 < 1e-2 < ratios["relu"]


def test_stacked_pretraining_records_only_the_layers_it_trains(small):
    cfg = ModelConfig(arch="dense", latent=4, hidden=[16], stacked=True, input_shape=(1, 8, 8))
    trainer, _ = fit(cfg, TrainConfig(epochs=1, pretrain_epochs=1, batch_size=64, device="cpu"), small)
    first, second, tune = (grad_norms(r) for r in trainer.history)
    assert set(first) == {"encoder 1", "decoder 1"}
    assert set(second) == {"code", "decoder in"}
    assert set(tune) == {"encoder 1", "code", "decoder in", "decoder 1"}


def test_grad_norms_survive_a_saved_run(small, tmp_path):
    from aestudio.core.checkpoint import load_run, save_run

    cfg = ModelConfig(arch="dense", latent=2, hidden=[8], input_shape=(1, 8, 8))
    trainer, _ = fit(cfg, TrainConfig(epochs=2, batch_size=64, device="cpu"), small)
    run = load_run(save_run(tmp_path / "r", cfg, trainer.train_config, trainer.model, history=trainer.history))
    assert not run.warnings
    assert set(ins.grad_norms_per_layer(run.history)) == {"encoder 1", "code", "decoder in", "decoder 1"}


# ---- codes ---------------------------------------------------------------------------------------------
def test_code_statistics_per_dimension():
    z = np.array([[0.0, 1.0, -2.0], [0.05, 3.0, 2.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0]])
    s = ins.code_statistics(z)
    np.testing.assert_allclose(s["mean"], [0.0125, 2.0, 0.0])
    np.testing.assert_allclose(s["std"], z.std(0))
    np.testing.assert_allclose(s["min"], [0.0, 1.0, -2.0])
    np.testing.assert_allclose(s["max"], [0.05, 3.0, 2.0])
    np.testing.assert_allclose(s["active"], [0.0, 1.0, 0.5])
    assert ins.code_statistics(np.zeros((0, 3)))["mean"].shape == (3,)


# ---- the studio's Look inside panel -------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_studio_look_inside_follows_training_and_computes_on_demand(qtbot):
    from conftest import find_by_name
    from PySide6.QtCore import Qt

    from aestudio.app import create_window
    from aestudio.ui.inspect_panel import filter_mosaic

    w = create_window("digits")
    qtbot.addWidget(w)
    w.show()
    w.builder.set_config(ModelConfig(arch="dense", latent=3, hidden=[16], input_shape=(1, 8, 8)))
    w.training_panel.set_config(TrainConfig(epochs=3, batch_size=64, device="cpu"))
    panel = w.inspect_panel
    assert find_by_name(w, "Look inside") is panel
    assert not find_by_name(w, "Compute filters and activations").isEnabled()  # nothing to look at yet
    seen = []  # (snapshot's epoch, points of a gradient curve) at each snapshot, during training
    w.state.snapshotChanged.connect(lambda s: seen.append(
        None if s is None else (s.epoch, len(panel.grad_items["encoder 1"].getData()[0]))))
    with qtbot.waitSignal(w.state.training.finished, timeout=60000):
        w.state.start_training()
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=10000)
    seen = [x for x in seen if x is not None]
    assert seen and seen[-1] == (3, 3) and all(epoch == points for epoch, points in seen)  # live, epoch by epoch
    assert set(panel.grad_items) == {"encoder 1", "code", "decoder in", "decoder 1"}
    snap = w.state.snapshot
    xs, ys = panel.grad_items["code"].getOriginalDataset()
    np.testing.assert_allclose(ys, [r["grad_norm/code"] for r in snap.history])
    rows = panel.code_rows()
    assert list(rows) == ["z1", "z2", "z3"]
    stats = ins.code_statistics(snap.codes)
    assert rows["z2"][1] == f"{stats['std'][1]:.3g}" and rows["z3"][4] == f"{100 * stats['active'][2]:.0f}%"

    with qtbot.waitSignal(panel.computed, timeout=30000):
        qtbot.mouseClick(find_by_name(w, "Compute filters and activations"), Qt.MouseButton.LeftButton)
    assert panel.result_epoch == snap.epoch == 3
    assert panel.result["filters"].shape == (16, 1, 8, 8)
    np.testing.assert_array_equal(panel.result["filters"], ins.first_layer_filters(snap.model))
    assert find_by_name(w, "First layer filters").image() is not None
    assert list(panel.hist_plots) == ["encoder 1", "code", "decoder in"]
    assert "active" in panel.hist_plots["code"].titleLabel.text
    mosaic = filter_mosaic(panel.result["filters"])
    assert mosaic.shape == (1, 4 * 9 + 1, 4 * 9 + 1) and mosaic.min() >= 0 and mosaic.max() <= 1
    w.close()


def test_filter_mosaic_scales_each_filter_symmetrically():
    from aestudio.ui.inspect_panel import filter_mosaic

    f = np.zeros((2, 1, 2, 2), np.float32)
    f[0, 0, 0, 0], f[0, 0, 1, 1] = 2.0, -1.0
    f[1, 0, 0, 1] = 0.001
    m = filter_mosaic(f, columns=2)
    assert m.shape == (1, 4, 7)
    np.testing.assert_allclose(m[0, 1:3, 1:3], [[1.0, 0.5], [0.5, 0.25]])
    np.testing.assert_allclose(m[0, 1:3, 4:6], [[0.5, 1.0], [0.5, 0.5]])
    assert m[0, 0, 0] == 0.5
