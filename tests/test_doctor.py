"""The training doctor: each finding provoked on purpose, and none on a healthy run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet, split_indices
from aestudio.core.doctor import CODES, Diagnosis, falling_rate
from aestudio.core.models import Autoencoder
from aestudio.core.training import Trainer

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def dense(**kw) -> ModelConfig:
    return ModelConfig(**{"arch": "dense", "input_shape": (1, 8, 8), "latent": 8, **kw})


def train_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 5, "batch_size": 32, "lr": 2e-3, "device": "cpu", **kw})


def run(data, mcfg, tcfg, model=None):
    trainer = Trainer(mcfg, tcfg, data, model=model)
    events = list(trainer.run())
    found = [e for e in events if isinstance(e, Diagnosis)]
    assert [d.to_dict() for d in found] == trainer.diagnoses
    codes = [d.code for d in found]
    assert len(codes) == len(set(codes)), "each code at most once per run"
    for d in found:
        assert d.code in CODES and d.message and d.remedy
    return trainer, found, events[-1]


def codes_of(found) -> list[str]:
    return [d.code for d in found]


def by_code(found, code) -> Diagnosis:
    return next(d for d in found if d.code == code)


def test_healthy_runs_raise_nothing(digits):
    _, found, fin = run(digits, dense(latent=16), train_cfg(epochs=30))
    assert fin.reason == "completed"
    assert found == [], [d.text() for d in found]
    # stacked pretraining: only the fine-tuning is judged
    _, found, fin = run(digits, dense(latent=16, hidden=[48, 32], stacked=True), train_cfg(epochs=30, pretrain_epochs=1))
    assert fin.reason == "completed" and found == [], [d.text() for d in found]


def test_learning_rate_of_5_is_named(digits):
    _, found, _ = run(digits.subset(slice(0, 400)), dense(), train_cfg(lr=5.0))
    codes = codes_of(found)
    assert {"nan", "constant_output"} & set(codes), codes
    d = by_code(found, "nan" if "nan" in codes else "constant_output")
    assert d.settings.get("lr", 5.0) < 5.0
    assert "times that of always predicting the mean training image" in d.message or "finite" in d.message
    # a broken fit gets no advice about its loss trend
    assert not {"still_improving", "overfitting"} & set(codes)


def test_two_epochs_on_200_images_are_too_few_steps(digits):
    _, found, _ = run(digits.subset(slice(0, 200)), dense(), train_cfg(epochs=2))
    assert "too_few_steps" in codes_of(found)
    d = by_code(found, "too_few_steps")
    assert "10 optimizer steps" in d.message
    assert d.settings["epochs"] > 2 and d.epoch == 2


def test_too_few_steps_and_still_improving_ask_for_the_same_epochs(digits):
    # three epochs on 200 images: both findings, and the user is not told 800 epochs in one and 8 in the other
    _, found, _ = run(digits.subset(slice(0, 200)), dense(), train_cfg(epochs=3, lr_decay=0.0))
    assert {"too_few_steps", "still_improving"} <= set(codes_of(found)), [d.text() for d in found]
    few, still = by_code(found, "too_few_steps"), by_code(found, "still_improving")
    assert still.settings["epochs"] == few.settings["epochs"] > 3
    assert f"({few.settings['epochs']} epochs instead of 3)" in still.remedy


def test_beta_50_collapses_the_posterior(digits):
    _, found, _ = run(digits.subset(slice(0, 400)), dense(kind="vae", beta=50.0), train_cfg(epochs=20))
    assert "posterior_collapse" in codes_of(found)
    d = by_code(found, "posterior_collapse")
    assert "8 of the 8 latent dimensions" in d.message
    assert d.settings == {"beta": 1.0}
    assert "constant_output" not in codes_of(found)  # explained by the collapse, not reported twice


def test_dead_units_forced_by_negative_biases(digits):
    mcfg = dense(hidden=[64], activation="relu")
    model = Autoencoder(mcfg)
    with torch.no_grad():
        for block in [*model.enc_blocks, model.from_code]:
            for layer in block.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.bias.fill_(-20.0)
    _, found, _ = run(digits.subset(slice(0, 400)), mcfg, train_cfg(epochs=3), model=model)
    assert "dead_units" in codes_of(found)
    d = by_code(found, "dead_units")
    assert "128 of the 128 ReLU units (100%)" in d.message
    assert d.settings["activation"] == "leaky_relu"


def test_healthy_relu_runs_raise_nothing(digits):
    from aestudio.core.datasets import load_dataset

    shapes = load_dataset("shapes").subset(slice(0, 1200))
    conv = ModelConfig(arch="conv", input_shape=shapes.shape, latent=16, activation="relu")
    for data, mcfg, epochs in ((digits, dense(latent=16, activation="relu"), 30), (shapes, conv, 8)):
        _, found, fin = run(data, mcfg, train_cfg(epochs=epochs))
        assert fin.reason == "completed"
        assert "dead_units" not in codes_of(found), [d.text() for d in found]


def test_units_are_not_called_dead_on_one_validation_image(digits):
    """Any one input leaves about half of a healthy model's ReLU units at zero: no evidence of death."""
    trainer = Trainer(dense(latent=16, activation="relu"), train_cfg(epochs=10), digits.subset(slice(0, 600)),
                      val_data=digits.subset(slice(600, 601)))
    found = [e for e in trainer.run() if isinstance(e, Diagnosis)]
    assert "dead_units" not in codes_of(found), [d.text() for d in found]
    stats = trainer.doctor.probe_stats(trainer.model)
    assert stats["dead"] / stats["units"] >= 0.4  # what the old check would have called half dead


def test_tiny_train_set_with_a_big_model_overfits(digits):
    _, found, _ = run(digits.subset(slice(0, 60)), dense(hidden=[512, 256], latent=32),
                      train_cfg(epochs=150, batch_size=16, lr=1e-3))
    assert "overfitting" in codes_of(found)
    d = by_code(found, "overfitting")
    assert "times the training error" in d.message and d.settings


def test_few_epochs_at_a_low_learning_rate_are_still_improving(digits):
    _, found, _ = run(digits, dense(), train_cfg(epochs=5, lr=1e-4, batch_size=16))
    assert "still_improving" in codes_of(found)
    d = by_code(found, "still_improving")
    assert d.settings["epochs"] > 5 and d.settings["lr"] == 1e-3
    assert "per epoch" in d.message


def _history(values: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "val_total": v, "train_total": v} for i, v in enumerate(values)]


def _check_end(values: list[float], lr_decay: float) -> list[str]:
    from aestudio.core.doctor import Doctor

    x = torch.rand(64, 1, 8, 8)
    doctor = Doctor(dense(), train_cfg(epochs=len(values), lr_decay=lr_decay), 2000, 100, x, x)
    return codes_of(doctor.check_end(_history(values), 100 * len(values), len(values)))


def test_the_drop_while_the_learning_rate_anneals_is_not_still_improving():
    # flat for 14 epochs at the full rate, then 6 epochs of decay take the loss down by 7% each
    flat_then_annealed = [10.0] * 14 + [10.0 * 0.93 ** k for k in range(1, 7)]
    assert "still_improving" not in _check_end(flat_then_annealed, lr_decay=0.3)
    # without a decay the same curve means the model was still learning when it stopped
    assert "still_improving" in _check_end(flat_then_annealed, lr_decay=0.0)
    # falling steeply before the decay began is still reported, with the window it judged
    steep = [10.0 * 0.9 ** k for k in range(20)]
    assert "still_improving" in _check_end(steep, lr_decay=0.3)


def _overfit_check(val: list[float], train: list[float], probe_vs_mean: float | None = None) -> list[str]:
    from aestudio.core.doctor import Doctor

    x = torch.rand(64, 1, 8, 8)
    doctor = Doctor(dense(), train_cfg(epochs=len(val)), 2000, 100, x, x)
    if probe_vs_mean is not None:  # the last epoch's probe: validation error / the mean image's
        doctor.stats.append({"mse_ratio": probe_vs_mean})
    history = [{"epoch": i + 1, "val_total": v, "train_total": t, "val_recon": v, "train_recon": t}
               for i, (v, t) in enumerate(zip(val, train))]
    return codes_of(doctor.check_end(history, 100 * len(val), len(val)))


def test_a_wide_gap_is_overfitting_only_once_the_validation_error_stopped_falling():
    train = [10.0 * 0.8 ** k for k in range(20)]  # ends at 0.14
    improving = [10.0 * 0.97 ** k for k in range(20)]  # still 3% lower each epoch: gap 40x but no harm yet
    assert "overfitting" not in _overfit_check(improving, train)
    stalled = [10.0 * 0.97 ** min(k, 10) for k in range(20)]  # flat for the last half
    assert "overfitting" in _overfit_check(stalled, train)


def _overfit_remedy(shape: tuple[int, int, int], shift: int = 0, **model) -> dict:
    from aestudio.core.doctor import Doctor

    x = torch.rand(64, *shape)
    doctor = Doctor(dense(input_shape=shape, **model), train_cfg(epochs=20), 2000, 100, x, x, shift=shift)
    train = [10.0 * 0.8 ** k for k in range(20)]
    stalled = [10.0 * 0.97 ** min(k, 10) for k in range(20)]
    history = [{"epoch": i + 1, "val_total": v, "train_total": t, "val_recon": v, "train_recon": t}
               for i, (v, t) in enumerate(zip(stalled, train))]
    found = doctor.check_end(history, 2000, 20)
    return by_code(found, "overfitting").settings


def test_overfitting_on_unshifted_images_is_remedied_with_random_shifts():
    """Shifts are what cured memorisation on small image sets (augment.py: the 200-image tiny folder
    1.18x -> 0.33x PCA-16's error); where a run could not be shifted, or already was, the remedy is
    input noise."""
    assert _overfit_remedy((1, 28, 28)) == {"augment": "shift"}
    assert _overfit_remedy((1, 28, 28), shift=4) == {"noise": "gaussian:0.2"}  # shifted already
    assert _overfit_remedy((1, 8, 8)) == {"noise": "gaussian:0.2"}  # a pixel is an eighth of the image
    linear = {"hidden": [], "output": "linear"}
    assert _overfit_remedy((1, 28, 28), **linear) == {"noise": "gaussian:0.2"}  # PCA's subspace of the images


def test_nan_is_named(digits):
    mcfg = dense()
    model = Autoencoder(mcfg)
    with torch.no_grad():
        model.to_code.weight[0, 0] = float("nan")
    _, found, fin = run(digits.subset(slice(0, 200)), mcfg, train_cfg(epochs=2, lr=1e-2), model=model)
    assert fin.reason == "nan"
    assert codes_of(found) == ["nan"]
    assert by_code(found, "nan").settings == {"lr": 1e-3}


def test_mostly_blank_images(digits):
    rng = np.random.default_rng(0)
    images = np.full((200, 1, 8, 8), 30, np.uint8)
    images[:40] = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8)  # 20% real pictures
    data = ImageSet("blank", images, None, [])
    trainer = Trainer(dense(), train_cfg(epochs=1), data)
    first = next(e for e in trainer.run() if isinstance(e, Diagnosis))
    assert first.code == "mostly_blank" and first.epoch == 0
    assert "80% of the images" in first.message
    # and real digits are not blank
    _, found, _ = run(digits.subset(slice(0, 100)), dense(), train_cfg(epochs=1))
    assert "mostly_blank" not in codes_of(found)


def test_mostly_transparent_images(digits):
    data = digits.subset(slice(0, 100))
    data.transparent_fraction = 0.8
    _, found, _ = run(data, dense(), train_cfg(epochs=1))
    assert "mostly_transparent" in codes_of(found)
    assert "80% of the pixels" in by_code(found, "mostly_transparent").message
    data.transparent_fraction = 0.1
    _, found, _ = run(data, dense(), train_cfg(epochs=1))
    assert "mostly_transparent" not in codes_of(found)


def test_falling_rate_is_robust_to_one_outlier():
    assert falling_rate([1.0, 0.9, 0.81, 0.729]) == pytest.approx(0.1)
    assert abs(falling_rate([1.0, 1.0, 5.0, 1.0, 1.0])) < 1e-9
    assert falling_rate([1.0]) == 0.0


# ---- the command line ------------------------------------------------------------------------------
def test_cli_prints_diagnoses_and_writes_them(tmp_path, capsys):
    from aestudio.cli import main

    out = tmp_path / "few"
    rc = main(["train", "--data", "digits", "--arch", "dense", "--latent", "8", "--epochs", "2", "--batch-size", "64",
               "--device", "cpu", "--quiet", "--out", str(out)])
    assert rc == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("diagnosis: ")]
    assert lines and lines[0].startswith("diagnosis: too_few_steps: Training took only ")
    assert " Remedy: Train for " in lines[0]
    saved = json.loads((out / "diagnoses.json").read_text())
    assert [d["code"] for d in saved] == [ln.split(": ")[1] for ln in lines]
    assert all(set(d) == {"code", "epoch", "message", "remedy"} for d in saved)
    assert lines[0] == f"diagnosis: {saved[0]['code']}: {saved[0]['message']} Remedy: {saved[0]['remedy']}"


def test_cli_healthy_run_prints_none_and_writes_empty_list(tmp_path, capsys):
    from aestudio.cli import main

    out = tmp_path / "ok"
    rc = main(["train", "--data", "digits", "--arch", "dense", "--latent", "16", "--epochs", "30",
               "--device", "cpu", "--quiet", "--out", str(out)])
    assert rc == 0
    assert "diagnosis: " not in capsys.readouterr().out
    assert json.loads((out / "diagnoses.json").read_text()) == []


def test_evaluate_json_reports_mean_image_mse(tmp_path, capsys, digits):
    from aestudio.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--arch", "dense", "--latent", "4", "--epochs", "1",
                 "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    tr, va = split_indices(digits.n, 0.2, 0)
    x = digits.as_float().astype(np.float64)
    expected = float(np.mean((x[va] - x[tr].mean(0)) ** 2))
    assert result["mean_image_mse"] == pytest.approx(expected, rel=1e-5)
    assert result["recon_mse"] < result["mean_image_mse"]


# ---- the studio ------------------------------------------------------------------------------------
def test_studio_shows_findings_and_applies_a_remedy(qtbot):
    from conftest import find_by_name
    from PySide6.QtCore import Qt

    from aestudio.app import create_window
    from aestudio.ui.diagnosis_panel import EMPTY_TEXT

    w = create_window("digits")
    qtbot.addWidget(w)
    w.show()
    w.builder.set_config(ModelConfig(arch="dense", latent=2, hidden=[32]))
    w.training_panel.set_config(TrainConfig(epochs=2, batch_size=32, lr=5.0, device="cpu"))
    panel = find_by_name(w, "Diagnosis")
    assert panel.findings == [] and EMPTY_TEXT in panel.empty.text()
    assert find_by_name(w, "Learning rate") is w.training_panel.lr

    with qtbot.waitSignal(w.state.training.finished, timeout=30000):
        qtbot.mouseClick(find_by_name(w, "Train"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=15000)
    codes = [d.code for d in panel.findings]
    assert {"nan", "constant_output"} & set(codes), codes
    finding = next(d for d in panel.findings if d.code in ("nan", "constant_output"))
    assert finding.message in panel.text() and finding.remedy in panel.text()
    card = next(c for c in panel._cards if c.diagnosis is finding)
    assert card.isVisible() and card.message.text() == finding.message
    assert card.apply_btn is not None and card.apply_btn.accessibleName() == "Apply and retrain"

    with qtbot.waitSignal(w.state.training.started, timeout=15000):
        qtbot.mouseClick(card.apply_btn, Qt.MouseButton.LeftButton)
    assert w.state.train_config.lr == finding.settings["lr"] == 1e-3
    assert w.training_panel.config().lr == pytest.approx(1e-3)
    w.state.training.stop()
    qtbot.waitUntil(lambda: not w.state.training.running, timeout=10000)
    assert not {"nan", "constant_output"} & {d.code for d in panel.findings}


def test_a_wide_gap_on_a_model_that_ends_at_its_best_and_reconstructs_new_images_well_is_not_overfitting():
    # like the conv AE-16 on strokes: the gap reaches 12x, the validation error creeps down by under 2%
    # over the last fifth and ends at its lowest, 0.16x the mean image's error
    train = [1.0 * 0.85 ** k for k in range(20)]
    val = [4.6 - 0.01 * k for k in range(20)]
    assert val[-1] / train[-1] > 8
    assert "overfitting" not in _overfit_check(val, train, probe_vs_mean=0.16)
    # the same curves on a model that explains little of the new images: reported
    assert "overfitting" in _overfit_check(val, train, probe_vs_mean=0.5)
    # or when the validation error ends 3% above its lowest (a memorising model gone flat)
    flat = val[:12] + [val[11] * 1.03] * 8
    assert "overfitting" in _overfit_check(flat, train, probe_vs_mean=0.16)


def _random_bits(n: int, seed: int = 0) -> ImageSet:
    """Images of independent random pixels (0 or 255): nothing carries over from one image to the next."""
    rng = np.random.default_rng(seed)
    images = (rng.random((n, 1, 8, 8)) < 0.5).astype(np.uint8) * 255
    return ImageSet("random bits", images, np.zeros(n, np.int64), ["bits"])


def test_a_model_that_memorises_noise_is_overfitting_not_a_constant_output():
    """On random pixels a big model learns its training images by heart while its validation error
    stays at the mean image's: the constant-output rule must not fire (its remedy, batch norm, would
    not help); the run is told it overfits, with the epoch where validation was best."""
    trainer, found, _ = run(_random_bits(200), dense(hidden=[512], latent=16), train_cfg(epochs=60))
    last = trainer.doctor.stats[-1]
    assert last["mse_ratio"] >= 0.9 and last["train_mse_ratio"] < 0.5  # the case: memorised, no better on new images
    assert "constant_output" not in codes_of(found)
    d = by_code(found, "overfitting")
    assert d.settings["epochs"] < 60 and "memorises" in d.message


def test_a_denoiser_is_probed_with_noisy_images_and_judged_against_clean_ones():
    """A denoising model never sees clean inputs in training, so the doctor must not judge it on them:
    a perfect denoiser that is useless on clean images is healthy."""
    from aestudio.core.doctor import Doctor
    from aestudio.core.noise import parse_noise

    gen = torch.Generator().manual_seed(0)
    x_train, x_val = torch.rand(300, 1, 8, 8, generator=gen), torch.rand(100, 1, 8, 8, generator=gen)
    mcfg = dense()
    doctor = Doctor(mcfg, train_cfg(noise="gaussian:0.5", seed=3), 300, 10, x_train, x_val)
    noisy = doctor.probe_input
    assert not torch.equal(noisy, doctor.probe)
    expected = parse_noise("gaussian:0.5").apply(doctor.probe, torch.Generator().manual_seed(3 + 7))
    assert torch.equal(noisy, expected)  # the same corruption at every check

    class Oracle(Autoencoder):
        """Returns the clean probe image for its noisy version, and the mean grey for anything else."""

        def forward(self, x):
            return self.decode(self.encode(x).z)

        def encode(self, x):
            from aestudio.core.models import Code

            hit = (x.flatten(1)[:, None, :] == noisy.flatten(1)[None]).all(-1)
            z = torch.where(hit.any(1, keepdim=True), hit.float().argmax(1, keepdim=True).float(), torch.full((len(x), 1), -1.0))
            return Code(z, z)

        def decode(self, z):
            idx = z[:, 0].long()
            out = torch.full((len(z), 1, 8, 8), 0.5)
            out[idx >= 0] = doctor.probe[idx[idx >= 0]]
            return out

    oracle = Oracle(mcfg)
    stats = doctor.probe_stats(oracle)
    assert stats["mse"] == 0.0 and stats["var_ratio"] > 0.9
    found = doctor.check_epoch(oracle, 5, 5, 500)
    assert "constant_output" not in [d.code for d in found]
    # the same oracle judged on clean images (no noise in the config) learned nothing
    plain = Doctor(mcfg, train_cfg(seed=3), 300, 10, x_train, x_val)
    assert plain.probe_stats(oracle)["mse_ratio"] > 0.9


def test_the_heading_counts_the_findings(qtbot):
    """A short panel scrolls its findings; the heading says how many there are."""
    from aestudio.core.doctor import Diagnosis
    from aestudio.ui.diagnosis_panel import DiagnosisPanel
    from aestudio.ui.state import StudioState

    panel = DiagnosisPanel(StudioState())
    qtbot.addWidget(panel)
    assert panel.head.text() == "Diagnosis"
    panel.add(Diagnosis("mostly_transparent", 0, "90% of the pixels were transparent.", "Pick a background."))
    assert panel.head.text() == "Diagnosis · 1 finding"
    panel.add(Diagnosis("too_few_steps", 15, "Only 225 steps.", "Train longer.", {"epochs": 267}))
    panel.add(Diagnosis("too_few_steps", 15, "Only 225 steps.", "Train longer."))  # the same code again: ignored
    assert panel.head.text() == "Diagnosis · 2 findings" and len(panel.findings) == 2
    panel.clear()
    assert panel.head.text() == "Diagnosis" and panel.findings == []
