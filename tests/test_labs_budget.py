"""The labs' training budget (optimizer steps, not epochs) and the "still improving" note."""
from __future__ import annotations

import pytest

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import split_indices
from aestudio.core.labs import anomaly as an
from aestudio.core.labs import budget as bd
from aestudio.core.labs import denoising as dn
from aestudio.core.labs import pca_compare as pc

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _history(values, stage="train", key="val_total"):
    return [{"stage": stage, "epoch": i + 1, key: v} for i, v in enumerate(values)]


def test_budget_is_in_steps_more_images_fewer_epochs():
    small, large = bd.lab_epochs(1_000, 100, 2_000), bd.lab_epochs(10_000, 100, 2_000)
    assert small == 200 and large == 20  # about 2,000 steps either way
    assert bd.lab_epochs(100_000, 100, 500) == bd.LEAST_EPOCHS  # at least two epochs to compare
    cfg = dn.steps_config(TrainConfig(batch_size=50, epochs=99), 1_000, 400, "gaussian:0.3", seed=3)
    assert cfg.epochs == 20 and cfg.batch_size == 50 and cfg.noise == "gaussian:0.3" and cfg.seed == 3


def test_still_improving_reads_the_tail_of_the_validation_loss():
    falling = _history([1.0 * 0.97 ** i for i in range(20)])  # 3 % an epoch to the end
    note = bd.still_improving(falling, steps_per_epoch=15, what="The autoencoder")
    assert note.startswith("The autoencoder was still improving when its step budget ran out")
    assert "over the last 60 steps" in note and "11%" in note and "Raise Training steps" in note
    assert bd.still_improving(_history([1.0, 0.5, 0.4, 0.4, 0.4, 0.401, 0.399, 0.4, 0.4, 0.4])) is None  # converged
    assert bd.still_improving(_history([1.0, 0.5, 0.4, 0.42, 0.45, 0.5])) is None  # overfitting, not improving
    assert bd.still_improving(_history([1.0])) is None  # one epoch: cannot tell
    # only the last stage counts (layer-wise pretraining before fine-tuning), and training loss without validation
    pre = _history([5.0, 1.0], stage="pretrain layer 1/2")
    assert bd.still_improving(pre + _history([0.5] * 5, stage="fine-tune")) is None
    assert bd.still_improving(_history([1.0, 0.8, 0.6], key="train_total")) is not None
    ups = [bd.improvement(_history([1.0, 0.9, 0.8, 0.7, 0.6]), 10), bd.improvement(_history([1.0, 0.9, 0.8, 0.7, 0.5]), 10)]
    assert bd.improving_note("Both", ups, plural=True).startswith("Both were still improving when their")


@pytest.fixture(scope="module")
def split(digits):
    tr, va = split_indices(digits.n, 0.2, 0)
    return digits.subset(tr[:400]), digits.subset(va[:200])


@pytest.fixture(scope="module")
def mcfg(digits):
    return ModelConfig(arch="dense", input_shape=digits.shape, latent=8, hidden=[64])


def test_note_when_training_is_cut_short_and_none_when_converged(split, mcfg):
    train, val = split
    tcfg = TrainConfig(batch_size=32, lr=3e-3, device="cpu", seed=0)  # 400 images: 13 steps an epoch
    short = pc.train_size_sweep(mcfg, train, val, [8], steps=40, train_config=tcfg)
    assert short[0].still_improving and pc.sweep_note(short).startswith("The autoencoder at size 8 was still improving")
    assert "over the last 13 steps" in pc.sweep_note(short)
    long = pc.train_size_sweep(mcfg, train, val, [8], steps=1_500, train_config=tcfg)
    assert not long[0].still_improving and pc.sweep_note(long) is None
    assert long[0].mse < short[0].mse

    normal = an.train_normal_model(mcfg, train, [0, 1], steps=40, train_config=tcfg, val_set=val)
    assert "still improving" in normal.note("The normal-class model")
    pair = dn.train_comparison_pair(mcfg, train, "gaussian:0.3", steps=40, train_config=tcfg, val_set=val)
    assert pair.note.startswith("Both models were still improving")


def test_the_drop_while_the_learning_rate_anneals_is_not_improvement():
    from aestudio.core.labs.budget import improvement

    flat_then_annealed = [{"val_total": v} for v in [5.0] * 14 + [5.0 * 0.97 ** k for k in range(1, 7)]]
    assert improvement(flat_then_annealed, 10).improving  # read without the schedule: a fall at the end
    judged = improvement(flat_then_annealed, 10, lr_decay=0.3)
    assert not judged.improving and judged.epochs == 14  # the epochs at the full rate


def test_the_anomaly_lab_learns_the_normal_images_as_they_are(digits, monkeypatch):
    """`auto` would shift a small normal-class set; the one-class model trains on it unshifted (a
    detector learns what normal looks like), unless shifts were asked for explicitly."""
    seen = []
    monkeypatch.setattr(an, "lab_train", lambda mcfg, cfg, *a, **k: seen.append(cfg.augment))
    mcfg = ModelConfig(arch="dense", input_shape=digits.shape, latent=4, hidden=[16])
    for augment in ("auto", "shift", "none"):
        an.train_normal_model(mcfg, digits, [0, 1], steps=10, train_config=TrainConfig(augment=augment))
    assert seen == ["none", "shift", "none"]
    assert dn.steps_config(TrainConfig(augment="auto"), 800, 100).augment == "auto"  # other labs: as the studio
