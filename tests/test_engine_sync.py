"""The engine's device-side bookkeeping: uint8 data on the device, loss values read at a bounded
interval (never per batch), NaN found and rolled back at those looks, and the CUDA-only speed
settings turning into notes elsewhere."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import aestudio.core.training as engine
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig, dumps, loads
from aestudio.core.training import BatchEnd, EpochEnd, Finished, Trainer, _LossMeter


def small(**kw) -> ModelConfig:
    base = dict(arch="dense", kind="ae", input_shape=(1, 8, 8), latent=4, hidden=(32, 16))
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture
def rare_looks(monkeypatch):
    """Look at the losses every 7 batches and never because of the clock."""
    monkeypatch.setattr(engine, "SYNC_EVERY_BATCHES", 7)
    monkeypatch.setattr(engine, "SYNC_EVERY_S", float("inf"))


def test_images_stay_uint8_on_the_device_and_batches_are_exact_floats(digits):
    trainer = Trainer(small(), TrainConfig(epochs=1), digits)
    assert trainer.u8_train.dtype == torch.uint8 and trainer.u8_val.dtype == torch.uint8
    expected = digits.images[trainer.train_idx].astype(np.float32) / np.float32(255)
    assert np.array_equal(trainer.x_train.numpy(), expected)
    rows = torch.tensor([3, 0, 5])
    assert torch.equal(trainer.train_rows(rows), trainer.x_train[rows])
    assert torch.equal(trainer.val_rows(slice(2, 6)), trainer.x_val[2:6])
    assert trainer.x_val.dtype == torch.float32 and float(trainer.x_val.max()) <= 1.0


def test_losses_are_read_at_bounded_looks_and_the_epoch_means_are_exact(digits, rare_looks, monkeypatch):
    seen_totals = []
    real = engine.loss_terms

    def spy(model, x_in, target, **kw):
        terms = real(model, x_in, target, **kw)
        if model.training:
            seen_totals.append((float(terms["total"].detach()), target.shape[0]))
        return terms

    monkeypatch.setattr(engine, "loss_terms", spy)
    events = list(Trainer(small(), TrainConfig(epochs=2, batch_size=64), digits).run())
    batches = [e for e in events if isinstance(e, BatchEnd)]
    per_epoch = batches[0].batches  # 23 for digits' training split
    looked = [e.batch for e in batches if e.terms and e.epoch == 1]
    assert looked == [1, 8, 15, 22, per_epoch]  # first batch of the run, every 7, the epoch's last batch
    looked2 = [e.batch for e in batches if e.terms and e.epoch == 2]
    assert looked2 == [7, 14, 21, per_epoch]
    for e in batches:  # a look reports the loss of its own batch
        if e.terms:
            assert e.terms["total"] == seen_totals[e.step - 1][0]
    epoch1 = next(e for e in events if isinstance(e, EpochEnd))
    first = seen_totals[:per_epoch]
    mean = sum(v * n for v, n in first) / sum(n for _, n in first)
    assert epoch1.train["total"] == pytest.approx(mean, rel=1e-12)


def test_a_nan_between_looks_is_found_named_and_rolled_back(digits, rare_looks, monkeypatch):
    real = engine.loss_terms
    calls = {"n": 0}

    def poisoned(model, x_in, target, **kw):
        terms = real(model, x_in, target, **kw)
        if model.training:
            calls["n"] += 1
            if calls["n"] == 23 + 10:  # epoch 2, batch 10: between the looks after batches 7 and 14
                terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(engine, "loss_terms", poisoned)
    trainer = Trainer(small(), TrainConfig(epochs=3, batch_size=64), digits)
    after_epoch1, batches_seen = None, []
    for event in trainer.run():
        if isinstance(event, EpochEnd):
            after_epoch1 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        if isinstance(event, BatchEnd) and event.epoch == 2:
            batches_seen.append(event.batch)
        last = event
    assert isinstance(last, Finished) and last.reason == "nan" and last.epochs_done == 1
    assert "epoch 2, batch 10" in last.message
    assert batches_seen[-1] == 13  # found at the next look (batch 14, not reported), not at the epoch end
    assert any(d["code"] == "nan" for d in trainer.diagnoses)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, after_epoch1[k]), k


def test_a_stop_after_an_unseen_nan_reports_the_nan(digits, rare_looks, monkeypatch):
    real = engine.loss_terms
    calls = {"n": 0}

    def poisoned(model, x_in, target, **kw):
        terms = real(model, x_in, target, **kw)
        if model.training:
            calls["n"] += 1
            if calls["n"] == 3:
                terms["total"] = terms["total"] * float("inf")
        return terms

    monkeypatch.setattr(engine, "loss_terms", poisoned)
    trainer = Trainer(small(), TrainConfig(epochs=2, batch_size=64), digits)
    for event in trainer.run():
        if isinstance(event, BatchEnd) and event.batch == 4:
            trainer.control.stop()
        last = event
    assert last.reason == "nan" and "batch 3" in last.message


def test_loss_meter_sums_per_image_and_finds_the_first_bad_batch():
    meter = _LossMeter()
    meter.add({"recon": torch.tensor(2.0), "total": torch.tensor(2.0)}, 10)
    rows, bad = meter.flush()
    assert rows == [{"recon": 2.0, "total": 2.0}] and bad is None
    meter.add({"recon": torch.tensor(4.0), "total": torch.tensor(float("nan"))}, 30)
    meter.add({"recon": torch.tensor(1.0), "total": torch.tensor(float("inf"))}, 30)
    rows, bad = meter.flush()
    assert bad[0] == 1 and np.isnan(bad[1])  # counted from the first batch ever added
    assert meter.seen == 70 and meter.means()["recon"] == pytest.approx((20 + 120 + 30) / 70)
    assert meter.flush() == ([], None)


def test_cuda_speed_settings_are_notes_on_a_cpu(digits, monkeypatch):
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: False)
    trainer = Trainer(small(), TrainConfig(epochs=1, device="cpu", amp=True, channels_last=True), digits)
    assert trainer._amp_dtype is None and not trainer._channels_last
    assert any("amp" in n and "bfloat16 instructions" in n and "float32" in n for n in trainer.notes)
    assert any("channels-last" in n and "dense" in n for n in trainer.notes)
    conv = Trainer(small(arch="conv", hidden=(8,)), TrainConfig(epochs=1, device="cpu", channels_last=True), digits)
    assert any("channels-last" in n and "cpu" in n for n in conv.notes)
    assert conv.train_config.channels_last  # the setting itself is kept in the config
    assert list(conv.run())[-1].reason == "completed"


def test_mixed_precision_on_a_cpu_with_bfloat16_instructions(digits, monkeypatch):
    """`amp` on a CPU that multiplies bfloat16 natively trains in bfloat16 autocast: products in
    bfloat16, weights and losses in float32, the same fit as float32 within a few percent."""
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: True)
    cfg = small(kind="vae", latent=4)
    runs = {}
    for amp in (False, True):
        torch.manual_seed(0)
        trainer = Trainer(cfg, TrainConfig(epochs=3, batch_size=64, device="cpu", amp=amp), digits)
        events = list(trainer.run())
        assert events[-1].reason == "completed" and not trainer.notes
        runs[amp] = trainer
    mixed = runs[True]
    assert mixed._amp_dtype == torch.bfloat16 and mixed._scaler is None
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())  # the weights stay float32
    with mixed._autocast():
        code = mixed.model.encode(mixed.val_rows(slice(0, 8)))
        hidden = mixed.model.enc_blocks[0](mixed.val_rows(slice(0, 8)))
    assert hidden.dtype == torch.bfloat16 and code.mu.dtype == code.logvar.dtype == torch.float32
    first, last = mixed.history[0]["val_total"], mixed.history[-1]["val_total"]
    assert last < first  # it learns
    assert last == pytest.approx(runs[False].history[-1]["val_total"], rel=0.05)


def test_cpu_bfloat16_detection_reads_the_cpu_flags():
    engine.cpu_has_bf16.cache_clear()
    try:
        flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
        assert engine.cpu_has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    finally:
        engine.cpu_has_bf16.cache_clear()


def test_speed_settings_round_trip_through_the_run_config():
    _, train, _ = loads(dumps(small(), TrainConfig(amp=True, channels_last=True)))
    assert train.amp and train.channels_last
    old = json.loads(dumps(small(), TrainConfig()))
    del old["train"]["amp"], old["train"]["channels_last"]  # a run saved before these settings existed
    _, train, _ = loads(json.dumps(old))
    assert train.amp is False and train.channels_last is False
    old["train"]["amp"] = "yes"
    with pytest.raises(ConfigError, match="amp"):
        loads(json.dumps(old))


def test_the_studio_worker_sends_only_batches_that_carry_losses(qtbot, digits, rare_looks, monkeypatch):
    """The loss curves plot what a progress event carries: events between the engine's looks
    (no loss values) are not sent, the looks are."""
    import aestudio.workers.training as worker_mod

    monkeypatch.setattr(worker_mod, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(worker_mod, "PREVIEW_INTERVAL_S", 1e9)
    worker = worker_mod.TrainingWorker(small(), TrainConfig(epochs=1, batch_size=64), digits, threads=1)
    sent, errors = [], []
    worker.progress.connect(sent.append)
    worker.errored.connect(errors.append)
    worker.work()  # on this thread: signals are delivered at once
    assert not errors
    assert [e.batch for e in sent] == [1, 8, 15, 22, 23]  # the looks of test_losses_are_read_at_bounded_looks
    assert all("total" in e.terms for e in sent)
