"""Quality measures: baselines agree with scikit-learn, image metrics have known values, probes and
AUROC separate what is separable, the ELBO falls with training, evaluate_run gives plain floats."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aestudio.core import evaluation as ev
from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet, load_dataset, split_indices
from aestudio.core.models import Autoencoder
from aestudio.core.training import fit


@pytest.fixture(scope="module")
def trained_vae(digits):
    """A small dense VAE trained 6 epochs on digits, with the ELBO before and after."""
    torch.manual_seed(0)
    mcfg = ModelConfig(arch="dense", kind="vae", input_shape=digits.shape, latent=4, hidden=[64], loss="bce")
    tcfg = TrainConfig(epochs=6, batch_size=64, lr=3e-3, device="cpu", seed=0)
    train_idx, val_idx = split_indices(digits.n, tcfg.val_fraction, tcfg.seed)
    val = digits.subset(val_idx).as_float()
    before = ev.elbo_nats(Autoencoder(mcfg), val)  # same init as the trainer's model (seeded)
    torch.manual_seed(tcfg.seed)
    trainer, last = fit(mcfg, tcfg, digits)
    assert last.reason == "completed"
    return trainer, before, digits.subset(train_idx), digits.subset(val_idx)


def _rand_images(n=64, shape=(1, 12, 12), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


# ---- model passes -----------------------------------------------------------------------------
def test_batched_passes_match_one_big_pass_and_restore_mode():
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(arch="conv", kind="vae", input_shape=(1, 12, 12), latent=3, hidden=[8, 8]))
    model.train()
    x = _rand_images(37)
    codes = ev.encode_images(model, x, batch_size=10)
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        ref = model.encode(torch.from_numpy(x)).mu.numpy()
        rec_ref = model.decode(torch.from_numpy(ref)).numpy()
    np.testing.assert_allclose(codes, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev.reconstruct_images(model, x, batch_size=7), rec_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev.decode_codes(model, ref), rec_ref, rtol=1e-5, atol=1e-6)
    assert ev.decode_codes(model, ref[0]).shape == (1, 1, 12, 12)
    mse = ev.recon_mse(model, x, batch_size=5)
    assert mse == pytest.approx(float(np.mean((rec_ref - x) ** 2)), rel=1e-5)
    assert ev.anomaly_scores(model, x).shape == (37,)
    # uint8 input is scaled like float input
    x8 = (x * 255).round().astype(np.uint8)
    np.testing.assert_allclose(ev.encode_images(model, x8), ev.encode_images(model, x8 / np.float32(255)), atol=1e-6)


def test_pca_baseline_matches_sklearn_reconstruction_error():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    basis = rng.random((5, 1 * 10 * 10))
    coef = rng.random((300, 5))
    x = (coef @ basis / 5 + 0.05 * rng.random((300, 100))).clip(0, 1).astype(np.float32).reshape(300, 1, 10, 10)
    train, test = x[:200], x[200:]
    out = ev.pca_baseline(train, test, 4)
    ref = PCA(n_components=4, svd_solver="full").fit(train.reshape(200, -1))
    rec = np.clip(ref.inverse_transform(ref.transform(test.reshape(100, -1))), 0, 1)
    assert out["mse"] == pytest.approx(float(np.mean((rec - test.reshape(100, -1)) ** 2)), rel=1e-4)
    assert out["k"] == 4 and out["model"].n_components_ == 4
    # more components never hurt, and k is capped at what the data allows
    assert ev.pca_baseline(train, test, 8)["mse"] < out["mse"]
    assert ev.pca_baseline(train[:3], test, 50)["k"] == 3


# ---- image similarity -----------------------------------------------------------------------
def test_psnr_known_values_and_identical_images():
    clean = np.full((4, 1, 8, 8), 0.5, np.float32)
    other = clean + 0.1  # mse 0.01 -> 20 dB
    assert ev.psnr(clean, other) == pytest.approx(20.0, abs=1e-4)
    np.testing.assert_allclose(ev.psnr_per_image(clean, other), 20.0, atol=1e-4)
    with np.errstate(all="raise"):
        assert ev.psnr(clean, clean) == math.inf
        assert ev.psnr(clean, clean, max_db=100.0) == 100.0
    mixed = other.copy()
    mixed[0] = clean[0]
    per = ev.psnr_per_image(clean, mixed)
    assert per[0] == math.inf and per[1] == pytest.approx(20.0, abs=1e-4)
    # Gaussian noise of sigma s (no clipping near 0.5) gives about -20 log10(s)
    noisy = clean + np.random.default_rng(0).normal(0, 0.05, clean.shape).astype(np.float32)
    assert ev.psnr(clean, noisy) == pytest.approx(26.02, abs=1.0)


def test_ssim_identical_is_one_and_noise_lowers_it():
    x = load_dataset("fashion-10k").subset(np.arange(16)).as_float()
    assert ev.ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    light = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    heavy = np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1).astype(np.float32)
    s_light, s_heavy = ev.ssim_per_image(x, light), ev.ssim_per_image(x, heavy)
    assert s_light.shape == (16,)
    assert np.all(s_light < 1.0) and np.all(s_heavy < s_light)
    assert ev.ssim(x, heavy) < 0.6
    # RGB and tiny images work; SSIM is symmetric
    rgb = _rand_images(3, (3, 6, 6))
    rgb2 = _rand_images(3, (3, 6, 6), seed=1)
    assert ev.ssim(rgb, rgb) == pytest.approx(1.0)
    assert ev.ssim(rgb, rgb2) == pytest.approx(ev.ssim(rgb2, rgb))


# ---- VAE measures ---------------------------------------------------------------------------
def test_elbo_positive_and_falls_with_training(trained_vae):
    trainer, before, _, val = trained_vae
    after = ev.elbo_nats(trainer.model, val.as_float())
    assert 0 < after < before
    # deterministic (seeded sampling)
    assert ev.elbo_nats(trainer.model, val.as_float()) == after
    kl = ev.per_dim_kl(trainer.model, val.as_float())
    assert kl.shape == (4,) and np.all(kl >= 0)
    assert set(ev.inactive_dims(np.array([0.001, 0.5, 0.0, 2.0]))) == {0, 2}


def test_vae_only_measures_refuse_other_models():
    model = Autoencoder(ModelConfig(arch="dense", kind="ae", input_shape=(1, 8, 8), latent=2))
    with pytest.raises(ValueError, match="variational"):
        ev.elbo_nats(model, _rand_images(4, (1, 8, 8)))
    with pytest.raises(ValueError, match="variational"):
        ev.per_dim_kl(model, _rand_images(4, (1, 8, 8)))


# ---- representation quality ------------------------------------------------------------------
def _clusters(n_per=100, classes=4, dim=6, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dim))
    labels = np.repeat(np.arange(classes), n_per)
    feats = centres[labels] + rng.normal(0, spread, (len(labels), dim))
    return feats, labels


def test_probes_high_on_separable_codes_and_chance_on_random():
    ftr, ytr = _clusters(seed=0)
    fte, yte = ftr + np.random.default_rng(5).normal(0, 0.3, ftr.shape), ytr
    assert ev.probe_accuracy(ftr, ytr, fte, yte, labels_per_class=5, seed=0) > 0.95
    assert ev.knn_accuracy(ftr, ytr, fte, yte, labels_per_class=5, seed=0) > 0.95
    rng = np.random.default_rng(3)
    rtr, rte = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    chance = ev.probe_accuracy(rtr, ytr, rte, yte, labels_per_class=20, seed=0)
    assert 0.1 < chance < 0.4  # 4 classes: chance 0.25
    assert 0.1 < ev.knn_accuracy(rtr, ytr, rte, yte, labels_per_class=20, seed=0) < 0.4
    # one label per class still works (k shrinks to 1)
    assert ev.knn_accuracy(ftr, ytr, fte, yte, labels_per_class=1) > 0.9
    # the labelled examples: per_class of each class, seeded
    pick = ev.pick_labeled(ytr, 3, seed=7)
    assert np.array_equal(np.bincount(ytr[pick]), [3, 3, 3, 3])
    assert np.array_equal(pick, ev.pick_labeled(ytr, 3, seed=7))


def test_silhouette_separates_clusters_from_noise():
    f, y = _clusters(spread=0.2)
    assert ev.silhouette(f, y) > 0.7
    assert abs(ev.silhouette(np.random.default_rng(0).normal(size=f.shape), y)) < 0.1
    assert ev.silhouette(f, y, max_points=50) > 0.5
    assert math.isnan(ev.silhouette(f, np.zeros(len(f))))


def test_anomaly_auroc_high_when_anomalies_differ():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 200), rng.normal(4, 1, 50)])
    is_anom = np.r_[np.zeros(200, bool), np.ones(50, bool)]
    assert ev.anomaly_auroc(scores, is_anom) > 0.95
    assert ev.anomaly_auroc(-scores, is_anom) < 0.05
    fpr, tpr, thr = ev.roc_curve(scores, is_anom)
    assert fpr[0] == 0 and tpr[-1] == 1 and len(fpr) == len(tpr) == len(thr)
    assert math.isnan(ev.anomaly_auroc(scores, np.zeros(250, bool)))


def test_anomaly_scores_flag_images_unlike_the_training_data(trained_vae):
    trainer, _, _, val = trained_vae
    normal = val.as_float()
    odd = np.random.default_rng(0).random(normal.shape).astype(np.float32)
    scores = ev.anomaly_scores(trainer.model, np.concatenate([normal, odd]))
    assert ev.anomaly_auroc(scores, np.r_[np.zeros(len(normal), bool), np.ones(len(odd), bool)]) > 0.95


# ---- everything at once ---------------------------------------------------------------------
def test_evaluate_run_keys_and_plain_floats(trained_vae):
    trainer, _, train, val = trained_vae
    out = ev.evaluate_run(trainer.model, trainer.model_config, trainer.train_config, val, train_data=train,
                          noise="gaussian:0.3", normal_classes=[0, "1"], labels_per_class=10, seed=0)
    assert set(out) == {"recon_mse", "pca_mse", "mean_image_mse", "psnr_noisy", "psnr_denoised", "elbo_nats", "probe_accuracy",
                        "probe_accuracy_pca", "probe_accuracy_raw", "knn_accuracy", "silhouette", "anomaly_auroc"}
    assert all(type(v) is float and math.isfinite(v) for v in out.values())
    json.dumps(out)
    assert 0 < out["recon_mse"] < 0.2 and 0 < out["pca_mse"] < 0.2
    assert out["probe_accuracy_raw"] > 0.6  # digits are easy from pixels
    # deterministic
    again = ev.evaluate_run(trainer.model, trainer.model_config, trainer.train_config, val, train_data=train,
                            noise="gaussian:0.3", normal_classes=[0, "1"], labels_per_class=10, seed=0)
    assert again == out


def test_evaluate_run_without_labels_noise_or_train_data():
    x = (np.random.default_rng(0).random((40, 1, 8, 8)) * 255).astype(np.uint8)
    data = ImageSet("blobs", x, None, [])
    model = Autoencoder(ModelConfig(arch="dense", kind="ae", input_shape=(1, 8, 8), latent=3))
    out = ev.evaluate_run(model, None, None, data, noise="none")
    assert set(out) == {"recon_mse", "pca_mse", "mean_image_mse"}
    assert out["mean_image_mse"] == pytest.approx(float(np.mean((x / 255.0 - (x / 255.0).mean(0)) ** 2)), rel=1e-5)
    with pytest.raises(Exception, match="no classes"):
        ev.evaluate_run(model, None, None, data, normal_classes=[0])
    with pytest.raises(Exception, match="shape"):
        ev.evaluate_run(model, None, None, ImageSet("big", np.zeros((3, 1, 9, 9), np.uint8), None, []))


def test_resolve_classes_reads_names_indices_and_refuses_lookalikes() -> None:
    names = ["zero", "one", "two", "three"]
    assert ev.resolve_classes([1, "TWO", "3", "0", "٣"], names) == [1, 2, 3, 0, 3]
    for bad in ("²", "--1", "4", "-1", "fish"):
        with pytest.raises(ev.ConfigError):
            ev.resolve_classes([bad], names)
