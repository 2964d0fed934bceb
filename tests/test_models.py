"""Every model kind builds, gives finite loss terms, and one optimisation step lowers the loss."""
from __future__ import annotations

import itertools

import pytest
import torch

from aestudio.core.config import ModelConfig
from aestudio.core.losses import kl_normal, loss_terms
from aestudio.core.models import Autoencoder, TiedLinear, count_parameters, summarize

SHAPE = (1, 16, 16)


def _configs():
    for arch, kind in itertools.product(("dense", "conv", "recurrent"), ("ae", "vae", "sparse", "contractive")):
        yield ModelConfig(arch=arch, kind=kind, input_shape=SHAPE, latent=4, hidden=[16, 8] if arch != "recurrent" else [16])
    yield ModelConfig(arch="dense", kind="ae", input_shape=SHAPE, latent=4, hidden=[32, 16], tied=True)
    yield ModelConfig(arch="dense", kind="sparse", sparsity="l1", input_shape=SHAPE, latent=4, hidden=[32])
    yield ModelConfig(arch="conv", kind="ae", input_shape=(3, 16, 16), latent=4, hidden=[8, 8], batch_norm=True, dropout=0.1)
    yield ModelConfig(arch="dense", kind="vae", input_shape=SHAPE, latent=2, loss="bce", init="xavier", activation="elu")
    yield ModelConfig(arch="recurrent", kind="ae", rnn_cell="gru", input_shape=SHAPE, latent=3)
    yield ModelConfig(arch="dense", kind="ae", input_shape=SHAPE, latent=4, hidden=[32, 16], activations=["tanh", "leaky_relu"], weight_decay=1e-4)


@pytest.mark.parametrize("cfg", list(_configs()), ids=lambda c: f"{c.arch}-{c.kind}-{'tied' if c.tied else ''}{c.loss}")
def test_kind_builds_trains_and_reports_terms(cfg: ModelConfig):
    torch.manual_seed(0)
    model = Autoencoder(cfg)
    x = torch.rand(32, *cfg.input_shape)
    terms = loss_terms(model, x, x)
    assert all(torch.isfinite(v) for v in terms.values())
    expected = {"recon", "total"} | {"vae": {"kl"}, "sparse": {"sparsity"}, "contractive": {"contractive"}}.get(cfg.kind, set())
    if cfg.weight_decay > 0:
        expected |= {"weight_decay"}
    assert set(terms) == expected
    code = model.encode(x)
    assert code.z.shape == (32, cfg.latent)
    assert model.decode(code.z).shape == x.shape
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def fixed_noise_loss() -> float:
        torch.manual_seed(1)  # the same dropout masks and VAE samples each time
        return loss_terms(model, x, x)["total"].item()

    before = fixed_noise_loss()
    opt.zero_grad()
    torch.manual_seed(1)
    loss_terms(model, x, x)["total"].backward()
    opt.step()
    after = fixed_noise_loss()
    assert after < before


def test_sigmoid_output_in_unit_range_and_linear_output_unbounded():
    x = torch.rand(8, *SHAPE)
    m = Autoencoder(ModelConfig(arch="dense", input_shape=SHAPE, latent=3))
    y = m(x)
    assert y.min() >= 0 and y.max() <= 1
    lin = Autoencoder(ModelConfig(arch="dense", input_shape=SHAPE, latent=3, output="linear"))
    with torch.no_grad():
        lin.dec_blocks[0][0].bias.fill_(5.0)
    assert lin(x).max() > 1


def test_tied_weights_share_the_encoder_matrix_and_halve_parameters():
    untied = Autoencoder(ModelConfig(arch="dense", input_shape=SHAPE, latent=4, hidden=[64, 32]))
    tied = Autoencoder(ModelConfig(arch="dense", input_shape=SHAPE, latent=4, hidden=[64, 32], tied=True))
    dec = tied.dec_blocks[0][0]
    assert isinstance(dec, TiedLinear)
    assert dec.source[0].weight is tied.enc_blocks[0][1].weight
    assert count_parameters(tied) < count_parameters(untied)
    assert "dec_blocks.0.0.source" not in " ".join(tied.state_dict())


def test_vae_samples_while_training_and_uses_the_mean_in_eval():
    m = Autoencoder(ModelConfig(arch="dense", kind="vae", input_shape=SHAPE, latent=2))
    x = torch.rand(4, *SHAPE)
    m.train()
    c1, c2 = m.encode(x), m.encode(x)
    assert not torch.allclose(c1.z, c2.z)  # reparameterisation: z = mu + sigma * eps
    m.eval()
    c = m.encode(x)
    assert torch.equal(c.z, c.mu)


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    mu, logvar = torch.zeros(5, 3), torch.zeros(5, 3)
    assert kl_normal(mu, logvar).item() == pytest.approx(0.0)
    assert kl_normal(mu + 1, logvar).item() == pytest.approx(1.5)


def test_summary_counts_parameters_and_shapes():
    cfg = ModelConfig(arch="conv", input_shape=(1, 28, 28), latent=16)
    s = summarize(cfg)
    assert s.params == count_parameters(Autoencoder(cfg))
    assert s.rows[0].output_shape == (1, 28, 28) and s.rows[-1].output_shape == (1, 28, 28)
    assert ("encoder 2", (64, 7, 7)) in [(r.name, r.output_shape) for r in s.rows]
    assert s.completeness == "undercomplete"
    assert "undercomplete" in s.text()
    assert summarize(ModelConfig(arch="dense", input_shape=(1, 4, 4), latent=32)).completeness == "overcomplete"
