"""Issue 10: linear and shallow models (no hidden layer, linear activation, PCA's subspace), over-complete
codes allowed with a warning, and the adversarial autoencoder (kind aae)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from aestudio import cli
from aestudio.core.adversarial import prior_view
from aestudio.core.checkpoint import load_run, save_run
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet
from aestudio.core.evaluation import (encode_images, evaluate_run, fit_pca, is_linear_model, recon_mse,
                                      subspace_angle_deg, subspace_angles_deg)
from aestudio.core.models import Autoencoder, summarize
from aestudio.core.resources import count_params
from aestudio.core.training import Trainer, fit

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def linear_cfg(shape, latent, **kw) -> ModelConfig:
    return ModelConfig(arch="dense", hidden=[], latent=latent, output="linear", input_shape=tuple(shape), **kw)


# ---- shapes and validation ------------------------------------------------------------------------
def test_no_hidden_layer_is_one_dense_layer_each_way():
    cfg = ModelConfig(arch="dense", hidden=[], latent=32, input_shape=(1, 28, 28))
    assert cfg.problems() == [] and cfg.hidden_sizes == []
    model = Autoencoder(cfg)
    weights = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert weights == [(32, 784), (784, 32)]  # 784 -> 32 -> 784
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)
    # parameter count: both layers, their biases, the per-pixel output offset
    assert summarize(cfg).params == 2 * 784 * 32 + 32 + 784 + 784
    assert count_params(cfg)[0] == summarize(cfg).params + 785  # plus the input standardisation buffers
    # None still means the default sizes
    assert ModelConfig(arch="dense", latent=32, input_shape=(1, 28, 28)).hidden_sizes != []


def test_no_hidden_layer_is_refused_clearly_where_it_cannot_work():
    assert "use the dense architecture" in ModelConfig(arch="conv", hidden=[]).problems()[0]
    assert "recurrent layer" in ModelConfig(arch="recurrent", hidden=[]).problems()[0]
    assert "at least one hidden layer" in ModelConfig(arch="dense", hidden=[], stacked=True).problems()[0]


def test_linear_activation_makes_a_linear_map():
    cfg = ModelConfig(arch="dense", hidden=[32], activation="linear", latent=4, output="linear", input_shape=(1, 8, 8))
    assert is_linear_model(cfg)
    model = Autoencoder(cfg).eval()
    a, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    with torch.no_grad():  # affine: f(a) + f(b) - f(0) == f(a + b)
        lhs = model(a) + model(b) - model(torch.zeros_like(a))
        assert torch.allclose(lhs, model(a + b), atol=1e-4)
    assert not is_linear_model(ModelConfig(arch="dense", hidden=[], latent=4, input_shape=(1, 8, 8)))  # sigmoid out
    assert not is_linear_model(ModelConfig(arch="dense", hidden=[32], latent=4, output="linear", input_shape=(1, 8, 8)))


def test_over_complete_codes_are_allowed_with_a_warning():
    cfg = ModelConfig(arch="dense", latent=100, input_shape=(1, 8, 8))
    assert cfg.problems() == []
    assert any("copy its input" in w for w in cfg.warnings())
    assert ModelConfig(arch="dense", latent=16, input_shape=(1, 8, 8)).warnings() == []
    assert "tied weights change nothing" in ModelConfig(arch="dense", hidden=[], tied=True).warnings()[0]


# ---- PCA's subspace ---------------------------------------------------------------------------------
def _low_rank_set(n=600, rank=3, side=8, seed=0) -> ImageSet:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(side * side, rank)))[0].T  # orthonormal rows
    coef = rng.normal(size=(n, rank)) * np.array([3.0, 2.0, 1.5])[:rank]
    x = 0.5 + 0.08 * coef @ basis
    images = np.clip(np.round(x * 255), 0, 255).astype(np.uint8).reshape(n, 1, side, side)
    return ImageSet("low-rank", images, None, [])


def test_subspace_angle_is_zero_for_pca_and_ninety_for_its_complement(digits):
    x = digits.as_float()[:500]
    pca = fit_pca(x, 6)
    model = Autoencoder(linear_cfg(digits.shape, 3)).eval()
    with torch.no_grad():
        model.from_code[0].weight.copy_(torch.from_numpy(pca.components_[:3].T.copy()))
    assert subspace_angle_deg(model, pca.components_[:3]) == pytest.approx(0.0, abs=1e-3)
    assert subspace_angles_deg(model, pca.components_[3:6]) == pytest.approx([90.0] * 3, abs=1e-3)


def test_a_linear_autoencoder_finds_the_pca_subspace_of_low_rank_data():
    data = _low_rank_set(n=1500)
    cfg = linear_cfg(data.shape, 3)
    trainer, finished = fit(cfg, TrainConfig(epochs=8, batch_size=32, lr=1e-2), data)
    assert finished.reason == "completed"
    pca = fit_pca(data.as_float()[trainer.train_idx], 3)
    angle = subspace_angle_deg(trainer.model, pca.components_)
    assert angle < 5.0  # an untrained decoder is at about 80 degrees from it
    assert subspace_angle_deg(Autoencoder(cfg), pca.components_) > 45.0


def test_a_linear_autoencoder_comes_within_five_percent_of_pca(digits):
    """The issue's claim, at a small budget on the 8x8 digits (benchmarks/linear_pca.py measures fashion-10k)."""
    cfg = linear_cfg(digits.shape, 8)
    trainer, _ = fit(cfg, TrainConfig(epochs=10, batch_size=32, lr=2e-3), digits)
    val, train = trainer.val_set, digits.subset(trainer.train_idx)
    val, train = ImageSet("val", val.images, None, []), ImageSet("train", train.images, None, [])  # no probes
    out = evaluate_run(trainer.model, cfg, trainer.train_config, val, train_data=train)
    assert out["recon_mse"] <= 1.05 * out["pca_mse"]
    assert 0.0 <= out["subspace_angle_deg"] < 15.0
    # a non-linear model reports no angle
    relu = ModelConfig(arch="dense", hidden=[], latent=8, input_shape=digits.shape)
    assert "subspace_angle_deg" not in evaluate_run(Autoencoder(relu), relu, None, val, train_data=train)


def test_cli_hidden_none_and_the_angle_in_evaluate_json(tmp_path, capsys):
    out = tmp_path / "lin"
    rc = cli.main(["train", "--data", "digits", "--arch", "dense", "--hidden", "none", "--output", "linear",
                   "--latent", "4", "--epochs", "2", "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert load_run(out).model_config.hidden == ()  # no hidden layer, saved and read back as such
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["subspace_angle_deg"] <= 90.0


def test_cli_warns_about_an_over_complete_code(tmp_path, capsys):
    rc = cli.main(["train", "--data", "digits", "--arch", "dense", "--latent", "80", "--epochs", "1", "--quiet",
                   "--out", str(tmp_path / "over")])
    err = capsys.readouterr().err
    assert rc == 0
    assert "aestudio: warning: the code (80 values) is not smaller than the input (64 values)" in err


# ---- adversarial autoencoder -----------------------------------------------------------------------------
def test_aae_trains_its_three_losses_and_its_codes_approach_the_prior(digits):
    cfg = ModelConfig(arch="dense", kind="aae", latent=2, hidden=[64], input_shape=digits.shape)
    tcfg = TrainConfig(epochs=20, batch_size=64, lr=2e-3)
    trainer, finished = fit(cfg, tcfg, digits)
    assert finished.reason == "completed"
    plain, _ = fit(dataclasses.replace(cfg, kind="ae"), tcfg, digits)
    x = trainer.val_set.as_float()
    aae_view, ae_view = prior_view(encode_images(trainer.model, x)), prior_view(encode_images(plain.model, x))
    assert aae_view.code_std < 0.7 * ae_view.code_std  # the discriminator pulls the codes toward N(0, I)
    assert aae_view.code_mean_norm < ae_view.code_mean_norm
    h = trainer.history
    assert {"train_recon", "train_disc", "train_gen", "val_recon", "val_disc", "val_gen"} <= set(h[-1])
    assert h[-1]["val_recon"] < h[0]["val_recon"]
    model = trainer.model
    # the discriminator was trained (it moved) and is not part of the autoencoder's optimizer
    fresh = Autoencoder(cfg)
    assert not torch.equal(model.discriminator[0].weight.cpu(), fresh.discriminator[0].weight)
    ids = {id(p) for p in model.autoencoder_parameters()}
    assert not any(id(p) in ids for p in model.discriminator.parameters())


def test_aae_saves_opens_evaluates_and_continues(digits, tmp_path, capsys):
    out = tmp_path / "aae"
    rc = cli.main(["train", "--data", "digits", "--arch", "dense", "--kind", "aae", "--latent", "2", "--epochs", "2",
                   "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.model_config.kind == "aae" and run.warnings == []
    assert any(k.startswith("discriminator.") for k in run.model.state_dict())
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["recon_mse"] > 0 and "subspace_angle_deg" not in result
    # save again and reopen: every weight, the discriminator's included, comes back exactly
    again = save_run(tmp_path / "again", run.model_config, run.train_config, run.model, history=run.history)
    reopened = load_run(again)
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, reopened.model.state_dict()[k]), k
    # continue training the opened model
    before = recon_mse(reopened.model, digits.as_float()[:200])
    trainer = Trainer(run.model_config, TrainConfig(epochs=2, batch_size=64), digits, model=reopened.model)
    events = list(trainer.run())
    assert events[-1].reason == "completed"
    assert recon_mse(trainer.model, digits.as_float()[:200]) < before
