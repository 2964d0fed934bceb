"""Exploration labs, Qt-free core: denoising reports, anomaly scores, PCA vs autoencoder.

Small dense autoencoders trained a few epochs on the 8x8 digits keep this quick (the labs budget
their training in optimizer steps: 1,437 training digits in batches of 32 are 45 steps an epoch).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aestudio.core import evaluation as ev
from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
from aestudio.core.datasets import DatasetError, split_indices
from aestudio.core.labs import anomaly as an
from aestudio.core.labs import denoising as dn
from aestudio.core.labs import pca_compare as pc
from aestudio.core.training import Control, fit


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def split(digits):
    tr, va = split_indices(digits.n, 0.2, 0)
    return digits.subset(tr), digits.subset(va)


@pytest.fixture(scope="module")
def mcfg(digits):
    return ModelConfig(arch="dense", input_shape=digits.shape, latent=8, hidden=[64])


@pytest.fixture(scope="module")
def tcfg():
    return TrainConfig(epochs=3, batch_size=32, lr=3e-3, device="cpu", seed=0)


@pytest.fixture(scope="module")
def model(digits, mcfg, tcfg):
    trainer, last = fit(mcfg, tcfg, digits)
    assert last.reason == "completed"
    return trainer.model.cpu().eval()


# ---- denoising ---------------------------------------------------------------------------------
def test_noise_spec_and_corruption_are_seeded():
    assert dn.noise_spec("gaussian", 0.3) == "gaussian:0.3"
    assert dn.noise_spec("mask", 0.0) == "none"
    assert dn.noise_spec("saltpepper", 0.25) == "saltpepper:0.25"
    with pytest.raises(ValueError):
        dn.noise_spec("blur", 0.1)
    x = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    a, b = dn.corrupt(x, "gaussian:0.3", seed=1), dn.corrupt(x, "gaussian:0.3", seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, dn.corrupt(x, "gaussian:0.3", seed=2))
    assert a.min() >= 0.0 and a.max() <= 1.0
    masked = dn.corrupt(x, "mask:0.5", seed=0)
    assert 0.3 < np.mean(masked == 0) < 0.7
    np.testing.assert_array_equal(dn.corrupt(x, "none"), x)


def test_denoiser_beats_noisy_input_and_metrics_are_sane(split, mcfg, tcfg):
    train, val = split
    pair = dn.train_comparison_pair(mcfg, train, "gaussian:0.3", steps=135, seed=0, train_config=tcfg, val_set=val)
    assert pair.steps == 135 and pair.plain.epochs == pair.denoiser.epochs == 3
    plain, denoiser = pair.plain.model, pair.denoiser.model
    assert not plain.training and not denoiser.training
    x = val.as_float()
    noisy = dn.corrupt(x, "gaussian:0.3", seed=0)
    rep = dn.denoise_report(denoiser, x, "gaussian:0.3", noisy=noisy)
    ref = dn.denoise_report(plain, x, "gaussian:0.3", noisy=noisy)
    assert rep.n_evaluated == val.n
    assert rep.psnr_out_mean > rep.psnr_noisy_mean  # it removed noise
    assert rep.psnr_gain > 0
    np.testing.assert_array_equal(rep.noisy, ref.noisy)  # both models saw the same inputs
    for r in (rep, ref):
        for s in (r.ssim_noisy, r.ssim_out):
            assert np.all(s >= -1.0) and np.all(s <= 1.0)
        assert r.clean.shape == r.noisy.shape == r.outputs.shape == (dn.SHOW, 1, 8, 8)
        assert r.outputs.min() >= 0.0 and r.outputs.max() <= 1.0
    # the report's own corruption is the same as `corrupt` with the same seed
    again = dn.denoise_report(denoiser, x, "gaussian:0.3", seed=0)
    assert again.psnr_out_mean == pytest.approx(rep.psnr_out_mean)


def test_denoise_report_without_noise_and_limits(model, split):
    _, val = split
    rep = dn.denoise_report(model, val.images, "none", max_images=50, n_show=3)
    assert rep.n_evaluated == 50 and len(rep.clean) == 3
    assert np.all(rep.psnr_noisy == dn.PSNR_CAP_DB)  # identical images are capped, not inf
    assert np.allclose(rep.ssim_noisy, 1.0)
    with pytest.raises(ValueError):
        dn.train_comparison_pair(ModelConfig(arch="dense", input_shape=(1, 8, 8), latent=2), val, "none")


def test_quick_train_honours_a_stopped_control(split, mcfg, tcfg):
    train, _ = split
    control = Control()
    control.stop()
    calls = []
    model = dn.quick_train(mcfg, dn.lab_train_config(tcfg, 2), train, progress=lambda d, t: calls.append((d, t)),
                           control=control)
    assert calls == [] and not model.training


# ---- anomaly ---------------------------------------------------------------------------------------
def test_error_scores_maps_and_threshold_counting(model, split):
    _, val = split
    x = val.as_float()[:40]
    scores = an.error_scores(model, x)
    rec = ev.reconstruct_images(model, x)
    np.testing.assert_allclose(scores, ((x - rec) ** 2).reshape(40, -1).mean(1), rtol=1e-5)
    maps = an.error_maps(model, x[:4])
    assert maps.shape == (4, 8, 8) and maps.min() >= 0
    np.testing.assert_allclose(maps, np.abs(x[:4] - np.clip(rec[:4], 0, 1))[:, 0], rtol=1e-5, atol=1e-6)

    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert an.count_flagged(s, 0.25) == (3, 60.0)
    assert an.count_flagged(s, 0.5) == (0, 0.0)  # strictly above
    assert an.count_flagged(np.array([]), 0.1) == (0, 0.0)
    thr = an.default_threshold(np.arange(1000.0))
    assert an.count_flagged(np.arange(1000.0), thr)[0] == 50
    counts, edges = an.histogram(np.random.default_rng(0).exponential(size=500))
    assert counts.sum() == 500 and len(edges) == len(counts) + 1


def test_anomaly_report_picks_the_worst(model, split):
    _, val = split
    rep = an.anomaly_report(model, val.images, val.labels, val.class_names, top=5)
    assert rep.n == val.n and len(rep.top) == 5
    assert rep.scores[rep.top[0]] == rep.scores.max()
    assert np.all(np.diff(rep.scores[rep.top]) <= 0)
    assert rep.top_maps.shape == (5, 8, 8) and rep.top_images.shape == (5, 1, 8, 8)
    assert rep.counts.sum() == val.n


def test_model_trained_on_normal_classes_flags_the_others(split, mcfg, tcfg):
    train, val = split
    progress = []
    trained = an.train_normal_model(mcfg, train, [0, 1], steps=60, progress=lambda d, t: progress.append((d, t)),
                                    seed=0, train_config=tcfg)
    assert progress and progress[-1][0] == progress[-1][1]
    assert trained.steps_per_epoch == 10  # 294 normal images in batches of 32 and trained.epochs == 6 and len(trained.history) == 6
    model = trained.model
    scores = an.error_scores(model, val.as_float())
    is_anomaly = ~np.isin(val.labels, [0, 1])
    result = an.roc(scores, is_anomaly)
    assert result.auroc > 0.7
    assert result.fpr[0] == 0 and result.tpr[-1] == 1
    full = an.normal_class_result(scores, val, train, ["0", 1], pca_k=8)
    assert full.normal_classes == [0, 1] and full.pca_k == 8
    assert full.model_roc.auroc == pytest.approx(result.auroc)
    assert 0.5 < full.pca_roc.auroc <= 1.0
    assert full.n_train == int(np.isin(train.labels, [0, 1]).sum())
    with pytest.raises(ConfigError):
        an.roc(scores, np.zeros(len(scores), bool))
    with pytest.raises(ConfigError):
        an.normal_subset(train, list(range(10)))  # nothing left to be an anomaly
    with pytest.raises(ConfigError):
        an.normal_subset(train, [])


def _write_folder(folder, digits):
    folder.mkdir()
    for i in range(6):
        Image.fromarray(digits.images[i, 0]).resize((16, 16), Image.Resampling.NEAREST).save(folder / f"digit_{i}.png")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(folder / f"noise_{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (folder / "notes.txt").write_text("not an image")


def test_score_folder_ranks_images_and_reports_skipped_files(model, digits, tmp_path):
    folder = tmp_path / "odd"
    _write_folder(folder, digits)
    seen = []
    result = an.score_folder(model, folder, progress=lambda d, t: seen.append((d, t)))
    assert result.n == 9 and result.images.shape == (9, 1, 8, 8)
    assert sorted(result.names) == sorted([f"digit_{i}.png" for i in range(6)] + [f"noise_{i}.png" for i in range(3)])
    skipped = {p.split("/")[-1]: why for p, why in result.skipped}
    assert "broken.png" in skipped and "notes.txt" in skipped
    ranked = result.ranked()
    assert [r for r, _, _ in ranked] == list(range(1, 10))
    assert all(a[2] >= b[2] for a, b in zip(ranked, ranked[1:]))
    assert {name for _, name, _ in ranked[:3]} == {f"noise_{i}.png" for i in range(3)}  # noise looks unusual
    assert seen and seen[-1][0] == seen[-1][1]
    # names line up with the images: re-scoring one image gives its score
    i = result.names.index("digit_0.png")
    assert an.error_scores(model, result.images[i:i + 1])[0] == pytest.approx(result.scores[i])


def test_score_folder_without_images_says_so(model, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DatasetError):
        an.score_folder(model, tmp_path)


# ---- PCA vs autoencoder --------------------------------------------------------------------------------
def test_pca_curve_decreases_and_matches_sklearn(split):
    train, val = split
    curve = pc.pca_curve(train.images, val.images, [1, 2, 4, 8, 16, 32, 64, 500])
    assert list(curve.sizes) == [1, 2, 4, 8, 16, 32, 64]  # 500 > 64 pixels is dropped
    assert np.all(np.diff(curve.mse) <= 1e-9)
    assert curve.mse[-1] < 1e-8  # all 64 components reproduce 8x8 images
    ref = ev.pca_baseline(train.images, val.images, 8)["mse"]
    assert curve.at(8) == pytest.approx(ref, rel=1e-5)
    assert curve.at(10) == curve.at(8)
    full = pc.pca_curve(train.images, val.images)
    assert list(full.sizes) == list(range(1, 65))
    with pytest.raises(ConfigError):
        pc.pca_curve(train.images, val.images, [0])


def test_verdict_names_the_winner_and_percentage():
    assert pc.verdict(16, 0.012, 0.019) == "At 16 dimensions the autoencoder's error is 0.012, 37% lower than PCA's 0.019."
    text = pc.verdict(8, 0.029, 0.023)
    assert text.startswith("At 8 dimensions PCA's error is 0.023") and "21% lower than the autoencoder's 0.029" in text
    assert pc.verdict(1, 0.05, 0.0502).startswith("At 1 dimension the autoencoder and PCA reconstruct about equally")
    # values that round alike get more digits
    assert "0.0123" in pc.verdict(4, 0.0123, 0.0119) and "0.0119" in pc.verdict(4, 0.0123, 0.0119)


def test_compare_at_size(model, split):
    train, val = split
    cmp = pc.compare_at_size(model, train.images, val.images, val.labels)
    assert cmp.k == 8
    assert cmp.ae_mse == pytest.approx(ev.recon_mse(model, val.as_float()), rel=1e-3)
    assert cmp.pca_mse == pytest.approx(ev.pca_baseline(train.images, val.images, 8)["mse"], rel=1e-5)
    assert cmp.pca_map.shape == cmp.ae_map.shape == (val.n, 2)
    assert cmp.ae_map_method == "PCA of the codes"
    assert cmp.originals.shape == cmp.pca_recons.shape == cmp.ae_recons.shape == (8, 1, 8, 8)
    assert cmp.verdict.startswith("At 8 dimensions")
    assert len(cmp.labels) == val.n


def test_lab_image_rows_show_a_spread_of_a_class_sorted_set(model, split):
    # a folder's validation images sorted by class: the first eight are one class; the rows show them all
    train, val = split
    order = np.argsort(val.labels, kind="stable")
    x, labels = val.as_float()[order], val.labels[order]
    assert len(set(labels[:8].tolist())) == 1
    cmp = pc.compare_at_size(model, train.images, x, labels)
    rep = dn.denoise_report(model, x, "gaussian:0.3", labels=labels)
    for shown, originals in ((cmp.shown, cmp.originals), (rep.shown, rep.clean)):
        assert len(set(labels[shown].tolist())) == 8  # eight classes, one image each
        np.testing.assert_array_equal(originals, x[shown])  # the rows hold the images they name
    np.testing.assert_allclose(cmp.ae_recons, np.clip(ev.reconstruct_images(model, x[cmp.shown]), 0, 1), atol=1e-6)
    noisy = dn.corrupt(x, "gaussian:0.3", seed=0)
    np.testing.assert_array_equal(rep.noisy, noisy[rep.shown])
    # per-image PSNR of a shown image is that image's own
    i = int(rep.shown[3])
    assert rep.psnr_out[i] == pytest.approx(ev.psnr_per_image(x[i:i + 1], rep.outputs[3:4], max_db=dn.PSNR_CAP_DB)[0])


def test_two_dimensional_model_map_is_its_codes(split):
    train, val = split
    torch.manual_seed(0)
    from aestudio.core.models import Autoencoder

    m2 = Autoencoder(ModelConfig(arch="dense", input_shape=(1, 8, 8), latent=2, hidden=[16])).eval()
    cmp = pc.compare_at_size(m2, train.images, val.images)
    assert cmp.ae_map_method == "codes" and cmp.labels is None
    np.testing.assert_allclose(cmp.ae_map, ev.encode_images(m2, val.as_float()), rtol=1e-5, atol=1e-6)


def test_train_size_sweep(split, mcfg, tcfg):
    train, val = split
    progress = []
    pts = pc.train_size_sweep(mcfg, train, val, [4, 2, 4], steps=90, progress=lambda d, t: progress.append((d, t)),
                              train_config=tcfg)
    assert [p.size for p in pts] == [2, 4] and all(p.epochs == 2 and p.steps == 90 for p in pts)
    assert all(p.improvement is not None for p in pts)
    assert all(np.isfinite(p.mse) and 0 < p.mse < 0.2 for p in pts)
    assert progress[-1][0] == progress[-1][1] and len({t for _, t in progress}) == 1  # one shared total
    stopped = Control()
    stopped.stop()
    assert pc.train_size_sweep(mcfg, train, val, [2, 4], steps=90, control=stopped, train_config=tcfg) == []
    with pytest.raises(ConfigError):
        pc.train_size_sweep(mcfg, train, val, [0], steps=90)
