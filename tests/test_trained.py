"""Issue 8 core: the TrainedModel value, run folders with optimizer state, continue and fork (core + CLI)."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from aestudio import cli
from aestudio.core.checkpoint import load_run
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.trained import (OPTIMIZER_JSON, OPTIMIZER_WEIGHTS, continue_problem, data_fingerprint,
                                   from_trainer, open_trained, resume_trainer, save_trained, settings_changes)
from aestudio.core.training import Trainer

TRAIN = TrainConfig(epochs=3, batch_size=32, lr=2e-3, device="cpu")


def _model(digits, **kw) -> ModelConfig:
    return ModelConfig(**{"arch": "dense", "latent": 2, "hidden": [32], "input_shape": digits.shape, **kw})


def _train(digits, cfg: TrainConfig = TRAIN, **kw) -> Trainer:
    trainer = Trainer(_model(digits, **kw), cfg, digits)
    for _ in trainer.run():
        pass
    return trainer


@pytest.fixture(scope="module")
def trained3(digits, torch_one_thread):
    trainer = _train(digits)
    return trainer, from_trainer(trainer, data_spec="digits")


def test_the_value_is_a_frozen_copy(digits, trained3):
    trainer, value = trained3
    assert value.epoch == 3 and len(value.history) == 3 and value.data_spec == "digits"
    assert value.data_fingerprint == data_fingerprint(digits) and value.noise == "none"
    np.testing.assert_array_equal(value.val_idx, trainer.val_idx)
    before = {k: v.clone() for k, v in value.weights.items()}
    with torch.no_grad():
        for p in trainer.model.parameters():  # training goes on: the value does not change
            p.add_(1.0)
    for k, v in value.weights.items():
        assert torch.equal(v, before[k]) and v.device.type == "cpu"
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.epoch = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.model_config.latent = 3
    with pytest.raises(TypeError):
        value.weights["encoder"] = torch.zeros(1)
    with pytest.raises(ValueError):
        value.split[1][0] = 7
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.sub_(1.0)


def test_configs_are_frozen_hashable_and_still_write_json_lists(digits):
    cfg = _model(digits, hidden=[32, 16], activations=["relu", "tanh"])
    assert cfg.hidden == (32, 16) and isinstance(hash(cfg), int)
    d = cfg.to_dict()
    assert d["hidden"] == [32, 16] and d["activations"] == ["relu", "tanh"] and d["input_shape"] == [1, 8, 8]
    assert ModelConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert dataclasses.replace(cfg, latent=3).latent == 3 and cfg.latent == 2


def test_save_and_open_keep_weights_history_split_and_optimizer(digits, trained3, tmp_path):
    trainer, value = trained3
    out = save_trained(value, tmp_path / "run")
    assert (out / OPTIMIZER_WEIGHTS).is_file() and (out / OPTIMIZER_JSON).is_file()
    assert json.loads((out / "config.json").read_text())["data_fingerprint"] == value.data_fingerprint
    again = open_trained(out, digits)
    assert again.fingerprint == value.fingerprint and again.epoch == 3 and again.notes == ()
    assert [h["val_total"] for h in again.history] == [h["val_total"] for h in value.history]
    np.testing.assert_array_equal(again.val_idx, value.val_idx)
    saved, live = again.optimizer["state"], trainer.optimizer.state_dict()["state"]
    assert set(saved) == set(live)
    for i in live:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(saved[i][key], live[i][key].cpu()), (i, key)


def test_a_continued_run_starts_from_the_saved_loss(digits, trained3, tmp_path, torch_one_thread):
    _trainer, value = trained3
    opened = open_trained(save_trained(value, tmp_path / "run"), digits)
    more = resume_trainer(opened, opened.model_config, dataclasses.replace(opened.train_config, epochs=1), digits)
    first = more.evaluate_terms()["total"]  # before any new step: exactly the saved model
    assert first == pytest.approx(value.history[-1]["val_total"], rel=1e-5)
    for _ in more.run():
        pass
    assert [h["epoch"] for h in more.history] == [1, 2, 3, 4]  # history appended, epochs numbered on
    fresh = _train(digits, dataclasses.replace(TRAIN, epochs=1))
    saved_train = value.history[-1]["train_total"]
    new_train = more.history[-1]["train_total"]
    # the continued epoch is near where the saved run ended, far below a first epoch from scratch
    assert new_train <= saved_train * 1.05
    assert new_train < fresh.history[0]["train_total"] - 0.5 * (fresh.history[0]["train_total"] - saved_train)
    assert more.history[-1]["val_total"] < value.history[-1]["val_total"]


def test_an_old_run_without_optimizer_state_continues_with_a_fresh_one(digits, trained3, tmp_path):
    _trainer, value = trained3
    out = save_trained(value, tmp_path / "old")
    os.unlink(out / OPTIMIZER_WEIGHTS)
    os.unlink(out / OPTIMIZER_JSON)
    opened = open_trained(out, digits)
    assert opened.optimizer is None and any("fresh optimizer" in n for n in opened.notes)
    more = resume_trainer(opened, opened.model_config, dataclasses.replace(opened.train_config, epochs=1), digits)
    for _ in more.run():
        pass
    assert len(more.history) == 4


@pytest.mark.parametrize("damage", ["garbage", "wrong_shape", "nan", "bad_json", "odd_index"])
def test_a_damaged_optimizer_file_is_a_note_not_a_crash(digits, trained3, tmp_path, damage):
    from safetensors.torch import load_file, save_file

    _trainer, value = trained3
    out = save_trained(value, tmp_path / damage)
    w = out / OPTIMIZER_WEIGHTS
    if damage == "garbage":
        w.write_bytes(b"\x00" * 64)
    elif damage == "bad_json":
        (out / OPTIMIZER_JSON).write_text("{not json")
    else:
        tensors = load_file(str(w))
        key = next(k for k in tensors if k.endswith("exp_avg"))
        if damage == "odd_index":  # "²" passes str.isdigit() but int() refuses it
            tensors["state.².exp_avg"] = tensors.pop(key)
        else:
            tensors[key] = torch.zeros(3) if damage == "wrong_shape" else torch.full_like(tensors[key], float("nan"))
        save_file(tensors, str(w))
    opened = open_trained(out, digits)
    assert opened.optimizer is None and any("fresh optimizer" in n for n in opened.notes)


def test_fork_detection_and_what_cannot_continue(digits, trained3):
    from aestudio.core.datasets import load_dataset

    _trainer, value = trained3
    m, t = value.model_config, value.train_config
    assert settings_changes(value, m, dataclasses.replace(t, epochs=50, device="auto")) == []
    assert settings_changes(value, dataclasses.replace(m, beta=2.0), dataclasses.replace(t, lr=1e-4, seed=3)) == \
        ["beta", "lr", "seed"]
    assert continue_problem(value, m, digits) is None
    assert "weights do not fit" in continue_problem(value, dataclasses.replace(m, latent=3), digits)
    assert "not the one" in continue_problem(value, m, digits.subset(np.arange(digits.n - 1)))
    shapes = load_dataset("shapes")
    assert "open its data set" in continue_problem(value, m, shapes)
    with pytest.raises(ConfigError):
        resume_trainer(value, dataclasses.replace(m, latent=3), t, digits)


def test_cli_resume_continues_in_place_and_a_changed_flag_forks(digits, tmp_path, capsys, torch_one_thread):
    base = ["train", "--data", "digits", "--arch", "dense", "--latent", "2", "--hidden", "32", "--batch-size", "32",
            "--device", "cpu", "--threads", "1", "--quiet"]
    run = tmp_path / "run"
    assert cli.main([*base, "--epochs", "2", "--out", str(run)]) == 0
    assert (run / OPTIMIZER_WEIGHTS).is_file() and open_trained(run, digits).optimizer is not None
    before = load_run(run)
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--threads", "1", "--quiet"]) == 0
    grown = load_run(run)  # the same run, grown: history appended, no parent
    assert [h["epoch"] for h in grown.history] == [1, 2, 3, 4]
    assert grown.history[:2] == before.history and "parent" not in grown.meta
    assert grown.history[2]["train_total"] < before.history[0]["train_total"]
    assert cli.main(["train", "--resume", str(run), "--epochs", "1", "--lr", "5e-4", "--threads", "1", "--quiet"]) == 0
    fork = load_run(tmp_path / "run-2")
    assert fork.train_config.lr == 5e-4 and len(fork.history) == 5
    parent = fork.meta["parent"]
    assert parent["path"] == str(run) and parent["name"] == "run" and parent["epoch"] == 4
    assert parent["fingerprint"] == open_trained(run, digits).fingerprint
    assert load_run(run).history == grown.history  # the parent is untouched
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--data", "shapes"]) == 2
    assert capsys.readouterr().err.strip().startswith("aestudio: error: --resume continues on the run's own data")
    assert cli.main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert cli.main(["train", "--data", "digits"]) == 2  # --out is still required for a new run
    assert "required: --out" in capsys.readouterr().err


def test_a_streamed_set_is_fingerprinted_by_its_cache_file_not_by_reading_it(tmp_path):
    class Streamed:  # stands in for datasets.stream.StreamedImageSet: images live in a cache file
        n, shape, labels = 10, (1, 8, 8), None

        def __init__(self, path):
            self.cache_file = str(path)

        @property
        def images(self):
            raise AssertionError("the whole cache was read")

    cache = tmp_path / "cache.npy"
    cache.write_bytes(b"x" * 640)
    first = data_fingerprint(Streamed(cache))
    assert first == data_fingerprint(Streamed(cache))
    cache.write_bytes(b"y" * 700)  # a rebuilt cache is other data
    assert data_fingerprint(Streamed(cache)) != first
