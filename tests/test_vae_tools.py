"""Issue 10: VAE tools (free bits, KL warm-up in epochs, KL per dimension over training, sampled
reconstructions, AE vs VAE sampling), robustness of codes, and the codes-vs-prior view."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aestudio import cli
from aestudio.core.adversarial import prior_view
from aestudio.core.checkpoint import load_run
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.datasets import split_indices
from aestudio.core.fields import ui_fields
from aestudio.core.labs.code_robustness import code_sensitivity, compare_robustness, robustness_verdict
from aestudio.core.labs.vae_tools import kl_per_dim_history, sample_ae_vs_vae, sample_reconstructions
from aestudio.core.losses import kl_normal, loss_terms
from aestudio.core.models import Autoencoder
from aestudio.core.training import fit

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def vae_cfg(shape, latent=4, **kw) -> ModelConfig:
    return ModelConfig(arch="dense", kind="vae", latent=latent, hidden=[32], input_shape=tuple(shape), **kw)


@pytest.fixture(scope="module")
def trained_vae(digits):
    torch.manual_seed(0)
    trainer, finished = fit(vae_cfg(digits.shape), TrainConfig(epochs=3, batch_size=64, lr=2e-3), digits)
    assert finished.reason == "completed"
    return trainer


# ---- free bits and warm-up --------------------------------------------------------------------------
def test_free_bits_floor_each_dimensions_kl_in_the_total(digits):
    x = torch.from_numpy(digits.as_float()[:64])
    for lam in (0.0, 0.5, 50.0):
        model = Autoencoder(vae_cfg(digits.shape, free_bits=lam)).eval()  # eval: z = mu, no sampling
        with torch.no_grad():
            terms = loss_terms(model, x, x, kl_weight=2.0)
            code = model.encode(x)
        per_dim = kl_normal(code.mu, code.logvar, per_dim=True)
        assert float(terms["kl"]) == pytest.approx(float(per_dim.sum()), rel=1e-5)  # the reported KL is the true KL
        expected = float(terms["recon"]) + 2.0 * float(torch.clamp(per_dim, min=lam).sum())
        assert float(terms["total"]) == pytest.approx(expected, rel=1e-5)
    assert float(terms["total"]) == pytest.approx(float(terms["recon"]) + 2.0 * 50.0 * 4, rel=1e-4)  # all floored
    assert "free_bits" in [f.name for f in ui_fields(ModelConfig)]  # it appears in the Model builder
    assert any("variational" in w for w in ModelConfig(kind="ae", free_bits=0.5).warnings())


def test_cli_kl_warmup_in_epochs_and_free_bits(tmp_path, capsys):
    out = tmp_path / "vae"
    rc = cli.main(["train", "--data", "digits", "--arch", "dense", "--kind", "vae", "--latent", "2", "--epochs", "4",
                   "--kl-warmup", "1", "--free-bits", "0.25", "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.train_config.kl_warmup == pytest.approx(0.25)  # 1 of 4 epochs
    assert run.model_config.free_bits == 0.25
    epochs, kl = kl_per_dim_history(run.history)  # written to history.json and read back
    assert list(epochs) == [1, 2, 3, 4] and kl.shape == (4, 2)
    capsys.readouterr()
    rc = cli.main(["train", "--data", "digits", "--arch", "dense", "--kind", "vae", "--epochs", "2", "--kl-warmup", "3",
                   "--quiet", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert rc == 2 and "aestudio: error: --kl-warmup 3 is longer than the run (2 epochs)" in err
    rc = cli.main(["train", "--data", "digits", "--kind", "vae", "--free-bits", "-1", "--out", str(tmp_path / "bad")])
    assert rc == 2 and "free bits" in capsys.readouterr().err


# ---- KL per dimension, sampled reconstructions, AE vs VAE ------------------------------------------------
def test_history_records_kl_per_dimension(trained_vae):
    epochs, kl = kl_per_dim_history(trained_vae.history)
    assert list(epochs) == [1, 2, 3] and kl.shape == (3, 4) and (kl >= 0).all()
    for rec, row in zip(trained_vae.history, kl):  # the dimensions add up to the validation KL
        assert row.sum() == pytest.approx(rec["val_kl"], rel=1e-3)
    json.dumps(trained_vae.history)  # still plain JSON


def test_kl_per_dimension_from_the_validation_pass_matches_an_encoder_pass(trained_vae, digits):
    """The record comes from the validation pass (one forward for both); a separate pass of the
    encoder over the whole split (the path a denoising VAE takes) gives the same numbers."""
    t = trained_vae
    assert t.u8_val.shape[0] % 100 != 0  # a last, smaller batch: the per-batch means must be weighted
    t.evaluate_terms(batch_size=100)
    from_validation = t._kl_per_dim_record()["kl_per_dim"]
    separate = t._kl_per_dim_record()["kl_per_dim"]  # nothing kept now: the encoder pass
    assert np.allclose(from_validation, separate, rtol=1e-4, atol=1e-6)
    assert np.allclose(from_validation, t.history[-1]["kl_per_dim"], rtol=1e-4, atol=1e-6)


def test_sampled_reconstructions_vary_around_the_mean(trained_vae, digits):
    model = trained_vae.model
    image = digits.as_float()[0]
    r = sample_reconstructions(model, image, n=6, seed=1)
    assert r.draws.shape == (6, *digits.shape) and r.mean.shape == digits.shape
    assert r.spread > 0 and not np.allclose(r.draws[0], r.draws[1])
    again = sample_reconstructions(model, image, n=6, seed=1)
    assert np.array_equal(r.draws, again.draws)  # seeded
    with pytest.raises(ConfigError, match="variational"):
        sample_reconstructions(Autoencoder(ModelConfig(arch="dense", latent=4, input_shape=digits.shape)), image)


def test_ae_vs_vae_sampling(trained_vae, digits):
    ae = Autoencoder(ModelConfig(arch="dense", latent=4, hidden=[32], input_shape=digits.shape)).eval()
    s = sample_ae_vs_vae(ae, trained_vae.model, digits.images[:300], n=5, seed=0)
    for images in (s.ae_fitted, s.ae_standard, s.vae_prior):
        assert images.shape == (5, *digits.shape) and images.min() >= 0 and images.max() <= 1
    assert s.ae_code_mean.shape == (4,) and s.ae_code_cov.shape == (4, 4)
    with pytest.raises(ConfigError):
        sample_ae_vs_vae(trained_vae.model, trained_vae.model, digits.images[:300])


# ---- robustness of codes ---------------------------------------------------------------------------------
def test_code_sensitivity_of_a_linear_encoder_is_its_gain(digits):
    """For a linear encoder z = A x + b, E||A e|| / ||e|| is about ||A||_F / sqrt(D) for gaussian e."""
    cfg = ModelConfig(arch="dense", hidden=[], latent=6, output="linear", input_shape=digits.shape)
    model = Autoencoder(cfg).eval()
    a = (model.to_code.weight * model.input_scale).detach().double().numpy()
    s = code_sensitivity(model, digits.as_float()[:300], sigmas=(0.01, 0.1), draws=3)
    gain = np.linalg.norm(a) / np.sqrt(a.shape[1])
    assert s.raw == pytest.approx([gain, gain], rel=0.05)  # the same for every noise size: a linear map
    assert s.relative == pytest.approx(s.raw * s.input_spread / s.code_spread)


def test_contractive_codes_move_less_than_plain_ones(digits):
    tr, va = split_indices(digits.n, 0.2, 0)
    cfg = ModelConfig(arch="dense", latent=8, hidden=[64], input_shape=digits.shape)
    rows = compare_robustness(cfg, digits.subset(tr[:800]), digits.subset(va[:200]), steps=150,
                              train_config=TrainConfig(batch_size=32, lr=2e-3))
    by = {r.name: r for r in rows}
    assert list(by) == ["plain", "denoising", "contractive"]
    assert all(r.model_config.latent == 8 and r.model_config.hidden == (64,) for r in rows)  # same size
    plain, contractive = by["plain"].sensitivity, by["contractive"].sensitivity
    assert (contractive.raw < 0.5 * plain.raw).all()
    assert "contractive" in robustness_verdict(rows)


# ---- codes against the prior -------------------------------------------------------------------------------
def test_prior_view_projects_codes_and_prior_together():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(400, 5)) * [3.0, 0.1, 0.1, 0.1, 0.1] + 2.0
    v = prior_view(codes, n_prior=500, seed=0, labels=np.arange(400) % 3)
    assert v.codes.shape == (400, 2) and v.prior.shape == (500, 2) and v.axes == ("code PC 1", "code PC 2")
    assert v.codes[:, 0].std() > 2.5  # the first axis follows the codes' widest direction
    assert 0.85 < v.prior.std(0).mean() < 1.15  # an orthonormal projection of N(0, I) stays N(0, I)
    assert v.code_mean_norm == pytest.approx(np.sqrt(5) * 2.0, rel=0.1)
    assert prior_view(codes[:, :2]).axes == ("z1", "z2")
    one = prior_view(codes[:, :1])
    assert one.codes.shape == (400, 2) and (one.codes[:, 1] == 0).all()
