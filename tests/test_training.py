"""The training engine: loss goes down, events, pause/stop, NaN recovery, denoising, stacked, run folders."""
from __future__ import annotations

import threading

import pytest
import torch

from aestudio.core.checkpoint import RunError, load_run, save_run
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.training import BatchEnd, Control, DeviceError, EpochEnd, Finished, StageStarted, Trainer, fit, resolve_device


def small(**kw) -> ModelConfig:
    base = dict(arch="dense", kind="ae", input_shape=(1, 8, 8), latent=4, hidden=[32, 16])
    base.update(kw)
    return ModelConfig(**base)


def test_loss_goes_down_and_events_are_complete(digits):
    events = []
    trainer, last = fit(small(), TrainConfig(epochs=3, batch_size=64, lr=3e-3), digits, events.append)
    assert last.reason == "completed" and last.epochs_done == 3
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert isinstance(events[0], StageStarted) and isinstance(events[-1], Finished)
    assert len(epochs) == 3 and len(batches) == 3 * batches[0].batches
    assert epochs[-1].val["recon"] < epochs[0].val["recon"] < batches[0].terms["recon"]
    assert batches[-1].step == batches[-1].total_steps and batches[-1].eta_s == pytest.approx(0.0, abs=1e-6)
    assert all(b.images_per_sec > 0 for b in batches)
    assert [h["epoch"] for h in trainer.history] == [1, 2, 3]
    assert {"train_recon", "val_recon", "train_total", "val_total"} <= set(trainer.history[0])


def test_every_term_is_reported_per_kind(digits):
    for kind, term in (("vae", "kl"), ("sparse", "sparsity"), ("contractive", "contractive")):
        _, last = fit(small(kind=kind, weight_decay=1e-4), TrainConfig(epochs=1, batch_size=128), digits,
                      cb := _Collector())
        assert last.reason == "completed"
        assert {term, "recon", "weight_decay", "total"} <= set(cb.batches[-1].terms)


class _Collector:
    def __init__(self):
        self.batches = []

    def __call__(self, e):
        if isinstance(e, BatchEnd):
            self.batches.append(e)


def test_seeded_cpu_training_is_reproducible(digits):
    a, _ = fit(small(), TrainConfig(epochs=1, seed=7), digits)
    b, _ = fit(small(), TrainConfig(epochs=1, seed=7), digits)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), ka
    assert a.history[0]["val_total"] == b.history[0]["val_total"]


def test_stop_is_honoured_within_one_batch(digits):
    control = Control()
    trainer = Trainer(small(), TrainConfig(epochs=50, batch_size=16), digits, control=control)
    seen = 0
    for event in trainer.run():
        if isinstance(event, BatchEnd):
            seen += 1
            if seen == 5:
                control.stop()
        if isinstance(event, Finished):
            assert event.reason == "stopped"
            break
    assert seen == 5


def test_pause_blocks_until_resumed(digits):
    control = Control()
    trainer = Trainer(small(), TrainConfig(epochs=1, batch_size=16), digits, control=control)
    gen = trainer.run()
    next(gen)  # StageStarted
    next(gen)  # first batch
    control.pause()
    got = []
    t = threading.Thread(target=lambda: got.append(next(gen)))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # paused: no batch is produced
    control.resume()
    t.join(5)
    assert isinstance(got[0], BatchEnd) and got[0].batch == 2


def test_nan_loss_stops_with_message_and_restores_last_finite_epoch(digits, monkeypatch):
    import aestudio.core.training as engine

    real = engine.loss_terms
    calls = {"n": 0}

    def poisoned(model, x_in, target, **kw):
        terms = real(model, x_in, target, **kw)
        calls["n"] += 1
        if calls["n"] == 30 and model.training:  # a training batch in epoch 2 (23 batches per epoch)
            terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(engine, "loss_terms", poisoned)
    trainer = Trainer(small(), TrainConfig(epochs=3, batch_size=64), digits)
    after_epoch1 = None
    for event in trainer.run():
        if isinstance(event, EpochEnd):
            after_epoch1 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        last = event
    assert last.reason == "nan" and last.epochs_done == 1
    assert "restored" in last.message and "learning rate" in last.message
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, after_epoch1[k]), k


def test_denoising_trains_on_noisy_inputs_against_clean_targets(digits):
    trainer = Trainer(small(), TrainConfig(epochs=1, noise="gaussian:0.3"), digits)
    seen = {}
    real = trainer._full_step

    def spy(x_in, target):
        seen["diff"] = float((x_in - target).abs().mean())
        return real(x_in, target)

    trainer._full_step = spy
    list(trainer.run())
    assert seen["diff"] > 0.05


def test_stacked_pretrains_each_layer_then_fine_tunes(digits):
    events = []
    fit(small(stacked=True), TrainConfig(epochs=1, pretrain_epochs=1), digits, events.append)
    stages = [e.name for e in events if isinstance(e, StageStarted)]
    assert stages == ["pretrain layer 1/3", "pretrain layer 2/3", "pretrain layer 3/3", "fine-tune"]


def test_shape_mismatch_and_missing_device_are_clear(digits):
    with pytest.raises(ConfigError, match="expects images of shape"):
        Trainer(small(input_shape=(1, 28, 28)), TrainConfig(), digits)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            resolve_device("cuda")


def test_run_folder_round_trip_and_refuses_pickles(digits, tmp_path):
    trainer, _ = fit(small(kind="vae", tied=True), TrainConfig(epochs=1), digits)
    path = save_run(tmp_path / "run", trainer.model_config, trainer.train_config, trainer.model, trainer.history, data="digits")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "history.json", "weights.safetensors"]
    run = load_run(path)
    assert run.model_config == trainer.model_config and run.data_spec == "digits" and run.history == trainer.history
    x = torch.from_numpy(digits.as_float()[:16])
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(run.model(x), trainer.model(x), atol=1e-6)
    pt = tmp_path / "model.pt"
    torch.save({"a": 1}, pt)
    with pytest.raises(RunError, match="refused"):
        load_run(pt)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text((path / "config.json").read_text())
    (tmp_path / "bad" / "weights.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(RunError, match="safetensors"):
        load_run(tmp_path / "bad")
    with pytest.raises(RunError, match="no run folder"):
        load_run(tmp_path / "missing")


def test_default_conv_model_does_not_collapse_on_sparse_strokes(tmp_path, torch_one_thread):
    """The old init collapsed to a constant black output on thin strokes (issue 7); now it learns."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from heldout import make_strokes

    from aestudio.core.datasets import load_dataset

    data = load_dataset(str(make_strokes(tmp_path / "strokes", n=300, size=16)))
    cfg = ModelConfig(arch="conv", kind="ae", input_shape=data.shape, latent=8)
    trainer = Trainer(cfg, TrainConfig(epochs=12, batch_size=32, lr=2e-3, seed=0), data)
    for _ in trainer.run():
        pass
    x = trainer.x_val
    with torch.no_grad():
        out = trainer.model.eval()(x)
    mean_mse = float(((x - trainer.x_train.mean(0)) ** 2).mean())
    mse = float(((out - x) ** 2).mean())
    assert mse < 0.6 * mean_mse  # far better than the best constant image
    assert float(out.std(0).mean()) > 0.3 * float(x.std(0).mean())  # the output varies with the input


def test_untrained_model_starts_at_the_mean_image(digits):
    trainer = Trainer(small(), TrainConfig(epochs=1, batch_size=64), digits)
    with torch.no_grad():
        out = trainer.model.eval()(trainer.x_train[:64])
    mean = trainer.x_train.mean(0)
    # the small last layer leaves the untrained output close to the mean image (clipped to [0.01, 0.99])
    assert float((out - mean.clamp(0.01, 0.99)).abs().mean()) < 0.05


def test_kl_warmup_ramps_beta_from_zero(digits):
    cfg = ModelConfig(arch="dense", kind="vae", input_shape=digits.shape, latent=2, hidden=[32], beta=2.0)
    trainer = Trainer(cfg, TrainConfig(epochs=2, batch_size=64, kl_warmup=0.5), digits)
    trainer._update_kl_weight(0, 100)
    assert trainer._kl_weight == 0.0
    trainer._update_kl_weight(25, 100)
    assert abs(trainer._kl_weight - 1.0) < 1e-9
    trainer._update_kl_weight(80, 100)
    assert trainer._kl_weight == 2.0


def _encoded(trainer: Trainer, n: int) -> torch.Tensor:
    was = trainer.model.training
    trainer.model.eval()
    with torch.no_grad():
        codes = trainer.model.encode(trainer.val_rows(slice(0, n))).mu.float().cpu()
    trainer.model.train(was)
    return codes


@pytest.mark.parametrize("kind", ["ae", "vae", "sparse"])
def test_validation_keeps_the_codes_the_map_would_encode(digits, kind):
    """The studio's latent map takes each epoch's codes from the validation pass; they must be the
    codes of the weights the snapshot holds, also after a stop mid-epoch restored the last epoch."""
    from aestudio.workers.training import make_snapshot

    control = Control()
    trainer = Trainer(small(kind=kind), TrainConfig(epochs=3, batch_size=32), digits, control=control)
    trainer.keep_val_codes = 50
    batches = 0
    for event in trainer.run():
        if isinstance(event, EpochEnd):
            kept = trainer.val_codes(50)
            assert kept is not None and torch.allclose(kept, _encoded(trainer, 50), atol=1e-6)
            assert trainer.val_codes(51) is None  # only as many as it was asked to keep
        if isinstance(event, BatchEnd) and event.epoch == 2:
            batches += 1
            assert trainer.val_codes(50) is None  # the weights moved on since the last validation
            if batches == 3:
                control.stop()
    assert trainer.history[-1]["epoch"] == 1  # stopped in epoch 2: epoch 1's weights restored ...
    kept = trainer.val_codes(50)  # ... and with them, epoch 1's codes count again
    assert kept is not None and torch.allclose(kept, _encoded(trainer, 50), atol=1e-6)
    snap = make_snapshot(trainer, 1, max_points=50)
    assert snap.codes.shape == (50, 4)
    assert torch.allclose(torch.from_numpy(snap.codes), _encoded(trainer, 50), atol=1e-6)


def test_a_denoiser_validated_on_noisy_inputs_keeps_no_codes(digits):
    """A denoiser's validation pass encodes corrupted images; the map shows clean images' codes."""
    from aestudio.workers.training import make_snapshot

    trainer, _ = fit(small(), TrainConfig(epochs=1, batch_size=32, noise="gaussian:0.5"), digits)
    trainer.keep_val_codes = 50
    trainer.evaluate_terms()
    assert trainer.val_codes(50) is None
    snap = make_snapshot(trainer, 1, max_points=50)
    assert torch.allclose(torch.from_numpy(snap.codes), _encoded(trainer, 50), atol=1e-6)
