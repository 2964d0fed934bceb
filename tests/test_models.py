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


def test_conv_default_has_one_dense_layer_between_conv_features_and_code_mirrored_in_the_decoder():
    from torch import nn

    from aestudio.core.resources import count_params

    cfg = ModelConfig(arch="conv", input_shape=(1, 28, 28), latent=16)
    assert cfg.dense_sizes == [256] and cfg.layer_count == 3
    model = Autoencoder(cfg)
    enc = [m for m in model.enc_blocks[-1] if isinstance(m, nn.Linear)]
    dec = [m for m in model.dec_blocks[-1] if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in enc] == [(64 * 7 * 7, 256)]
    assert [(m.in_features, m.out_features) for m in dec] == [(256, 64 * 7 * 7)]
    assert model.to_code.in_features == 256 and model.from_code[0].out_features == 256
    x = torch.rand(5, *cfg.input_shape)
    assert model.decode(model.encode(x).z).shape == x.shape
    rows = [(r.name, r.output_shape) for r in summarize(cfg).rows]
    assert ("encoder 3", (256,)) in rows and ("decoder 1", (64, 7, 7)) in rows  # decoders count from the code
    assert count_params(cfg)[0] == count_parameters(model) + sum(b.numel() for b in model.buffers())


@pytest.mark.parametrize("kwargs, sizes", [
    (dict(arch="conv", input_shape=(3, 32, 32)), [256]),
    (dict(arch="conv", input_shape=(3, 64, 64)), [256]),  # 64 x 16 x 16 = 16,384 features: the largest
    (dict(arch="conv", input_shape=(3, 128, 128)), []),  # 65,536 features: the layer would hold 16.8M weights
    (dict(arch="conv", input_shape=(1, 8, 8)), [256]),  # 32 x 4 x 4 = 512 features: the smallest
    (dict(arch="conv", input_shape=(1, 6, 6)), []),  # 288 features: nothing to compress
    (dict(arch="conv", dense_layers=[]), []),
    (dict(arch="conv", dense_layers=[128, 64]), [128, 64]),
    (dict(arch="dense"), []),
    (dict(arch="recurrent"), []),
])
def test_dense_layer_sizes(kwargs, sizes):
    cfg = ModelConfig(latent=16, **kwargs)
    assert cfg.dense_sizes == sizes
    model = Autoencoder(cfg)
    assert len(model.enc_blocks) == len(model.dec_blocks) == cfg.layer_count
    x = torch.rand(2, *cfg.input_shape)
    assert model.decode(model.encode(x).z).shape == x.shape


def test_dense_layers_on_other_architectures_warn_and_change_nothing():
    cfg = ModelConfig(arch="dense", dense_layers=[64])
    assert cfg.problems() == [] and any("conv architecture" in w for w in cfg.warnings())
    plain = ModelConfig(arch="dense")
    assert count_parameters(Autoencoder(cfg)) == count_parameters(Autoencoder(plain))
