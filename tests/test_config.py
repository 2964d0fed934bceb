"""Config validation gives clear reasons; configs round-trip through JSON."""
from __future__ import annotations

import json
import re

import pytest

from aestudio.core.config import ConfigError, ModelConfig, TrainConfig, default_hidden, dumps, loads


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"latent": 0}, "latent size must be at least 1"),
        ({"arch": "conv", "input_shape": (1, 3, 3), "hidden": [8, 8]},
         "2 stride-2 layers needs images of at least 4x4 pixels; 3x3 is smaller (use fewer conv layers)"),
        ({"arch": "conv", "input_shape": (1, 1, 9), "hidden": [8]}, "(use fewer conv layers or the dense architecture)"),
        ({"loss": "bce", "output": "linear"}, "sigmoid output"),
        ({"arch": "conv", "tied": True}, "tied weights"),
        ({"arch": "recurrent", "stacked": True}, "stacked"),
        ({"kind": "sparse", "sparsity_target": 1.5}, "rho"),
        ({"kind": "nope"}, "unknown bottleneck kind"),
        ({"activations": ["relu"], "hidden": [8, 4], "arch": "dense"}, "one activation per hidden layer"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_shape": (2, 8, 8), "arch": "dense"}, "1 or 3 channels"),
    ],
)
def test_impossible_configs_are_explained(kwargs, fragment):
    cfg = ModelConfig(**kwargs)
    assert any(fragment in p for p in cfg.problems()), cfg.problems()
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        cfg.validate()


def test_default_config_is_valid_and_undercomplete():
    cfg = ModelConfig().validate()
    assert cfg.completeness == "undercomplete"


@pytest.mark.parametrize("kwargs, fragment", [({"epochs": 0}, "epochs"), ({"lr": -1}, "learning rate"),
                                              ({"noise": "gaussian"}, "noise"), ({"noise": "mask:2"}, "fraction"),
                                              ({"device": "tpu"}, "device")])
def test_train_config_problems(kwargs, fragment):
    assert any(fragment in p for p in TrainConfig(**kwargs).problems())


def test_default_hidden_halves_each_layer():
    assert default_hidden("dense", (1, 28, 28), 16) == [512, 256, 128]
    assert default_hidden("dense", (1, 8, 8), 2) == [32, 16, 8]
    assert default_hidden("conv", (1, 28, 28), 16) == [32, 64]
    assert default_hidden("conv", (1, 13, 13), 16) == [32] and default_hidden("conv", (1, 8, 8), 16) == [32]
    # any side fits a conv model now (30 and 13 px were refused: sides had to halve exactly)
    for shape in ((3, 30, 30), (1, 13, 13), (1, 45, 50), (1, 5, 7)):
        assert ModelConfig(arch="conv", input_shape=shape).problems() == [], shape


def test_json_round_trip_and_version_guard():
    m = ModelConfig(arch="dense", kind="vae", latent=2, hidden=[64, 32], beta=4.0, input_shape=(3, 32, 32))
    t = TrainConfig(epochs=3, noise="gaussian:0.3")
    m2, t2, extra = loads(dumps(m, t, data="shapes"))
    assert m2 == m and t2 == t and extra["data"] == "shapes"
    d = json.loads(dumps(m, t))
    d["format_version"] = 99
    with pytest.raises(ConfigError, match="newer"):
        loads(json.dumps(d))
    with pytest.raises(ConfigError, match="not an aestudio run"):
        loads("{}")
    d = json.loads(dumps(m, t))
    d["model"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        loads(json.dumps(d))


def test_dense_layers_round_trip_and_a_version_1_config_means_none():
    m = ModelConfig(arch="conv", dense_layers=[128])
    m2, _, _ = loads(dumps(m, TrainConfig()))
    assert m2 == m and m2.dense_sizes == [128]
    default, _, _ = loads(dumps(ModelConfig(arch="conv"), TrainConfig()))
    assert default.dense_layers is None and default.dense_sizes == [256]
    # a run written before conv models had dense layers was built without them
    d = json.loads(dumps(ModelConfig(arch="conv"), TrainConfig()))
    d["format_version"] = 1
    del d["model"]["dense_layers"]
    old, _, _ = loads(json.dumps(d))
    assert old.dense_layers == () and old.dense_sizes == []
    d["model"]["dense_layers"] = [64]  # a version-1 file that names them (hand-written) keeps them
    assert loads(json.dumps(d))[0].dense_sizes == [64]
    d["model"]["dense_layers"] = [0]
    with pytest.raises(ConfigError, match="dense_layers"):
        loads(json.dumps(d))


def test_small_images_get_the_dense_layer_from_format_3_and_a_version_2_run_loads_as_built():
    from aestudio.core.models import build_model

    digits = ModelConfig(arch="conv", input_shape=(1, 8, 8))
    assert digits.hidden_sizes == [32] and digits.dense_sizes == [256]  # 32 x 4 x 4 = 512 features
    assert ModelConfig(arch="conv", input_shape=(1, 6, 6)).dense_sizes == []  # 288 features
    # a version-2 run of the same config was built without the layer, and must load so
    old_cfg = ModelConfig(arch="conv", input_shape=(1, 8, 8), dense_layers=[])
    model = build_model(old_cfg)
    d = json.loads(dumps(digits, TrainConfig()))
    d["format_version"] = 2
    m2, _, _ = loads(json.dumps(d))
    assert m2.dense_sizes == [] and build_model(m2).state_dict().keys() == model.state_dict().keys()
    d["model"]["dense_layers"] = [64]  # named in the file: kept
    assert loads(json.dumps(d))[0].dense_sizes == [64]
    d = json.loads(dumps(ModelConfig(arch="conv", input_shape=(1, 28, 28)), TrainConfig()))
    d["format_version"] = 2  # 3,136 features: had the layer in version 2 already
    assert loads(json.dumps(d))[0].dense_sizes == [256]


def test_hidden_layers_default_to_leaky_relu_and_a_kl_sparse_code_starts_at_its_target():
    import math

    import torch
    import torch.nn as nn

    from aestudio.core.models import build_model

    assert ModelConfig().activation == "leaky_relu"
    kinds = {type(m) for m in build_model(ModelConfig(arch="conv", input_shape=(1, 28, 28))).modules()}
    assert nn.LeakyReLU in kinds and nn.ReLU not in kinds
    sparse = build_model(ModelConfig(kind="sparse", input_shape=(1, 8, 8), sparsity_target=0.05))
    assert set(sparse.config.layer_activations) == {"leaky_relu"}
    bias = sparse.to_code.bias
    assert torch.allclose(bias, torch.full_like(bias, math.log(0.05 / 0.95)))
    with torch.no_grad():  # the untrained code sits at the target activation, not at 0.5
        z = sparse.encode(torch.rand(64, 1, 8, 8)).z
    assert abs(float(z.mean()) - 0.05) < 0.03
