"""Exploration labs, Qt-free cores: few labels, traversal and generation, latent health."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import make_shapes
from aestudio.core.evaluation import encode_images, fit_pca, per_dim_kl
from aestudio.core.labs.few_labels import (
    chance_accuracy, few_label_curve, few_labels_experiment, finetune_accuracy, summary_lines,
)
from aestudio.core.labs.health import health_report
from aestudio.core.labs.traversal import (
    dim_order, factor_correlations, interpolation_strip, mosaic, prior_samples, traversal_experiment, traversal_grid,
)
from aestudio.core.training import fit


def _train(data, kind: str, epochs: int, latent: int = 8, **model_kw):
    mc = ModelConfig(arch="dense", kind=kind, input_shape=data.shape, latent=latent, **model_kw)
    tc = TrainConfig(epochs=epochs, batch_size=64, device="cpu", seed=0)
    trainer, last = fit(mc, tc, data)
    assert last.reason == "completed"
    return trainer


@pytest.fixture(scope="module")
def digits_ae(digits):
    trainer = _train(digits, "ae", epochs=8)
    return trainer, digits.subset(trainer.train_idx), digits.subset(trainer.val_idx)


@pytest.fixture(scope="module")
def digits_vae(digits):
    trainer = _train(digits, "vae", epochs=20, loss="bce")  # 460 steps: every dimension in use (KL > 0.01)
    return trainer, digits.subset(trainer.train_idx), digits.subset(trainer.val_idx)


# ---- few labels ---------------------------------------------------------------------------------
def test_few_label_curve_codes_beat_chance_and_more_labels_help(digits_ae):
    trainer, train, val = digits_ae
    model = trainer.model
    xtr, xte = train.as_float(), val.as_float()
    pca = fit_pca(xtr, 8)
    feats_tr = {"codes": encode_images(model, xtr), "pca": pca.transform(xtr.reshape(len(xtr), -1)),
                "raw": xtr.reshape(len(xtr), -1)}
    feats_te = {"codes": encode_images(model, xte), "pca": pca.transform(xte.reshape(len(xte), -1)),
                "raw": xte.reshape(len(xte), -1)}
    calls = []
    counts = [1, 10, None]
    curves = few_label_curve(feats_tr, train.labels, feats_te, val.labels, counts, repeats=2, seed=0,
                             progress=lambda d, t: calls.append((d, t)))
    assert set(curves) == {"codes", "pca", "raw"}
    chance = chance_accuracy(val.labels)
    assert chance < 0.2
    for means, stds in curves.values():
        assert means.shape == stds.shape == (3,)
        assert np.all((means >= 0) & (means <= 1)) and np.all(stds >= 0)
        assert stds[-1] == 0.0  # "all labels" is one deterministic fit
    codes = curves["codes"][0]
    assert np.all(codes > 2 * chance), codes  # the codes carry class information even with one label per class
    raw = curves["raw"][0]
    assert raw[-1] > 0.85 and raw[0] > 2 * chance  # logistic regression on 8x8 digit pixels is a strong baseline
    average = np.mean([m for m, _ in curves.values()], axis=0)
    assert np.all(np.diff(average) >= -0.01), average  # more labels: higher (or equal) accuracy on average
    for means, _ in curves.values():
        assert means[-1] >= means[0]
    # progress: 2 + 2 + 1 draws, 3 feature sets
    assert calls[-1] == (15, 15) and calls[0] == (0, 15)


def test_few_label_curve_is_deterministic_and_paired(digits_ae):
    _trainer, train, val = digits_ae
    x = {"raw": train.as_float().reshape(train.n, -1)}
    y = {"raw": val.as_float().reshape(val.n, -1)}
    a = few_label_curve(x, train.labels, y, val.labels, [5], repeats=2, seed=3)
    b = few_label_curve(x, train.labels, y, val.labels, [5], repeats=2, seed=3)
    np.testing.assert_array_equal(a["raw"][0], b["raw"][0])
    with pytest.raises(ValueError):
        few_label_curve({"raw": x["raw"], "codes": x["raw"]}, train.labels, y, val.labels, [1])


def test_finetune_accuracy_trains_a_copy(digits_ae):
    trainer, train, val = digits_ae
    model = trainer.model
    before = [p.detach().clone() for p in model.parameters()]
    res = finetune_accuracy(model, train.images, train.labels, val.images, val.labels, per_class=10, epochs=5,
                            seed=0, return_details=True)
    assert res.steps == 10  # 100 labelled images in batches of 64: 2 steps per epoch
    assert 0.0 <= res.accuracy <= 1.0 and res.accuracy > 2 * chance_accuracy(val.labels)
    assert abs(res.probe_accuracy - res.accuracy) < 0.5
    for p, q in zip(before, model.parameters()):
        assert torch.equal(p, q)  # the original model is untouched
    acc = finetune_accuracy(model, train.images, train.labels, val.images, val.labels, per_class=1, epochs=2, seed=1)
    assert isinstance(acc, float)


def test_few_labels_experiment_and_summary(digits_ae):
    trainer, train, val = digits_ae
    r = few_labels_experiment(trainer.model, train.images, train.labels, val.images, val.labels, counts=[1, 5],
                              repeats=1, finetune=True, finetune_epochs=2)
    assert set(r.curves) == {"codes", "pca", "raw", "finetune"}
    np.testing.assert_allclose(r.per_class, [1, 5])
    header, rows = r.rows()
    assert header[0] == "labels per class" and len(header) == 9 and len(rows) == 2
    lines = summary_lines(r)
    assert any("Chance" in line for line in lines)
    from aestudio.core.config import ConfigError

    with pytest.raises(ConfigError):
        few_labels_experiment(trainer.model, train.images, None, val.images, None)
    merged = few_labels_experiment(trainer.model, train.images, train.labels, val.images, val.labels,
                                   counts=[1, 1000, None], repeats=1)
    assert merged.counts == [1, None] and len(merged.per_class) == 2
    assert any(n.startswith("1000 labels per class is every label here") for n in merged.notes)
    one = np.zeros(len(train.images), np.int64)
    with pytest.raises(ConfigError, match="at least two classes"):
        few_labels_experiment(trainer.model, train.images, one, val.images, np.zeros(len(val.images), np.int64))


def test_few_labels_summary_says_where_the_codes_win_as_it_is():
    """Codes that lose at 1 label per class and win at 5 and 10 were summarised as winning "up to 10"
    (seen on RGB photo patches); the verdict now names the counts where they win and lose."""
    from aestudio.core.labs.few_labels import FewLabelsResult

    def result(codes: list[float], raw: list[float]) -> FewLabelsResult:
        counts = [1, 5, 10, 50, None]
        z = np.zeros(len(counts))
        return FewLabelsResult(counts, np.array([1, 5, 10, 50, 800.0]), {"codes": (np.array(codes), z),
                               "raw": (np.array(raw), z)}, 0.54, 1600, 400, 2, 16, 3)

    photos = summary_lines(result([0.58, 0.785, 0.757, 0.775, 0.833], [0.69, 0.70, 0.725, 0.777, 0.84]))
    assert "The codes beat raw pixels at 5 and 10 labels per class, lose at 1 and all, and tie at 50." in photos
    photos = summary_lines(result([0.58, 0.785, 0.757, 0.765, 0.833], [0.69, 0.70, 0.725, 0.777, 0.84]))
    assert "The codes beat raw pixels at 5 and 10 labels per class and lose at 1, 50 and all." in photos
    assert not any("up to" in line for line in photos)
    prefix = summary_lines(result([0.7, 0.8, 0.75, 0.7, 0.8], [0.5, 0.6, 0.7, 0.8, 0.9]))
    assert any(line.startswith("The codes beat raw pixels up to 10 labels per class;") for line in prefix)
    every = summary_lines(result([0.9] * 5, [0.5] * 5))
    assert any("at every label count" in line for line in every)
    never = summary_lines(result([0.5] * 5, [0.9] * 5))  # an IndexError once
    assert any(line.startswith("Raw pixels beat the codes at every count") for line in never)
    # equal accuracies are ties, not losses (150 classes of 2 noise images: every curve at 0%)
    tied = summary_lines(result([0.0] * 5, [0.0] * 5))
    assert any(line.startswith("The codes and raw pixels do equally well at every count") for line in tied)
    mixed = summary_lines(result([0.6, 0.8, 0.7, 0.7, 0.9], [0.5, 0.8, 0.9, 0.702, 0.9]))
    assert "The codes beat raw pixels at 1 label per class, lose at 10, and tie at 5, 50 and all." in mixed
    some = summary_lines(result([0.5, 0.8, 0.7, 0.7, 0.9], [0.5, 0.9, 0.9, 0.702, 0.9]))
    assert "Raw pixels beat the codes at 5 and 10 labels per class and tie at 1, 50 and all." in some


def test_few_labels_counts_beyond_the_largest_class_are_the_all_point():
    from aestudio.core.labs.few_labels import _merge_all

    assert _merge_all([1, 5, 10, 50, None], 2) == ([1, None], [5, 10, 50])
    assert _merge_all([1, 5, 10], 10) == ([1, 5, None], [10])
    assert _merge_all([1, 5, None], 100) == ([1, 5, None], [])


# ---- traversal and generation -----------------------------------------------------------------
def test_mosaic_shape_and_padding():
    imgs = np.ones((5, 1, 4, 3), np.float32)
    m = mosaic(imgs, rows=2, cols=3, pad=2, fill=0.5)
    assert m.shape == (1, 2 * 4 + 2, 3 * 3 + 2 * 2)
    assert m[0, 4, 0] == 0.5  # the gap between rows
    assert m[0, 0, 0] == 1.0 and m[0, -1, -1] == 0.5  # the sixth tile is missing
    rgb = mosaic(np.zeros((4, 3, 5, 5), np.uint8), 2, 2, pad=0)
    assert rgb.shape == (3, 10, 10) and rgb.dtype == np.float32


def test_traversal_grid_shape(digits_vae):
    trainer, _, val = digits_vae
    model = trainer.model
    x = val.as_float()
    codes = encode_images(model, x)
    order, scores, what = dim_order(model, codes, x)
    assert what == "KL" and sorted(order.tolist()) == list(range(8))
    assert np.all(np.diff(scores[order]) <= 1e-12)  # most informative first
    dims, values = order[:5], np.linspace(-3, 3, 7)
    grid = traversal_grid(model, codes.mean(0), dims, values, sigma=1.0, pad=1)
    assert grid.shape == (1, 5 * 8 + 4, 7 * 8 + 6)
    assert grid.min() >= 0.0 and grid.max() <= 1.0
    with pytest.raises(ValueError):
        traversal_grid(model, codes.mean(0), [8], values)


def test_dim_order_uses_variance_for_plain_autoencoders(digits_ae):
    trainer, _, val = digits_ae
    codes = np.random.default_rng(0).normal(size=(500, 8)) * 2.0 ** np.arange(8)
    order, _scores, what = dim_order(trainer.model, codes, val.as_float())
    assert what == "variance" and order[0] == 7 and order[-1] == 0


def test_spherical_interpolation_keeps_the_norm(digits_vae):
    trainer, _, val = digits_vae
    model = trainer.model
    x = val.as_float()[:40]
    codes = encode_images(model, x)
    unit = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    cos = unit @ unit.T
    # a pair at about right angles: slerp between codes of different norms only stays between them away from
    # the antiparallel case, where 1 / sin(angle) blows up
    i, j = np.unravel_index(np.argmin(np.abs(cos)), cos.shape)
    sph_codes, sph_images = interpolation_strip(model, x[i], x[j], steps=9, spherical=True)
    lin_codes, _ = interpolation_strip(model, x[i], x[j], steps=9, spherical=False)
    assert sph_images.shape == (9, 1, 8, 8)
    na, nb = np.linalg.norm(codes[i]), np.linalg.norm(codes[j])
    sph_norms = np.linalg.norm(sph_codes, axis=1)
    lin_norms = np.linalg.norm(lin_codes, axis=1)
    assert np.all(sph_norms >= 0.95 * min(na, nb)) and np.all(sph_norms <= 1.05 * max(na, nb))
    np.testing.assert_allclose(sph_codes[[0, -1]], codes[[i, j]], atol=1e-4)
    assert lin_norms[4] < sph_norms[4]  # a straight line cuts through the middle, closer to the origin


def test_prior_samples_say_where_they_come_from(digits_ae, digits_vae):
    vae = digits_vae[0].model
    imgs, note = prior_samples(vae, 6, seed=0)
    assert imgs.shape == (6, 1, 8, 8) and "prior" in note
    ae = digits_ae[0].model
    codes = encode_images(ae, digits_ae[2].as_float())
    imgs2, note2 = prior_samples(ae, 4, seed=0, codes=codes)
    assert imgs2.shape == (4, 1, 8, 8) and "fitted to the codes" in note2


@pytest.mark.parametrize("method", ["spearman", "mi"])
def test_factor_correlation_finds_the_right_dimension(method):
    rng = np.random.default_rng(0)
    n = 3000
    names = ["shape", "scale", "x", "y"]
    factors = np.stack([rng.integers(0, 3, n), rng.uniform(0.5, 1, n), rng.uniform(0, 1, n),
                        rng.uniform(0, 1, n)], axis=1).astype(np.float32)
    # codes: 6 dims; factor k lives in dim perm[k] (scaled, monotonic, noisy), two dims are pure noise
    perm = [4, 0, 5, 2]
    codes = rng.normal(0, 1, (n, 6))
    for k, d in enumerate(perm):
        f = (factors[:, k] - factors[:, k].mean()) / factors[:, k].std()
        codes[:, d] = (3.0 if k != 1 else -2.0) * f + 0.2 * rng.normal(size=n)
    matrix, summary = factor_correlations(codes, factors, names, method=method)
    assert matrix.shape == (6, 4) and np.all((matrix >= 0) & (matrix <= 1))
    assert summary.best_dim.tolist() == perm
    assert np.all(summary.best_score > 0.5) and summary.gap_score > 0.4
    assert "shape → z5" in summary.line and summary.verdict.startswith("Well disentangled")
    # shuffled codes track nothing
    _, noise = factor_correlations(rng.normal(size=(n, 6)), factors, names, method=method)
    assert noise.gap_score < 0.1 and noise.verdict.startswith("Entangled")
    with pytest.raises(ValueError):
        factor_correlations(codes, factors, names[:3])


def test_traversal_experiment_on_shapes():
    data = make_shapes(n=300, size=16, seed=1)
    trainer = _train(data, "vae", epochs=1)
    val = data.subset(trainer.val_idx)
    r = traversal_experiment(trainer.model, val.images, val.factors, val.factor_names, max_rows=4, steps=5,
                             pair=(0, 3), interp_steps=6, n_samples=10, seed=0)
    assert r.grid.shape == (1, 4 * 16 + 3, 5 * 16 + 4)
    assert set(r.strips) == {"linear", "spherical"} and r.strips["linear"].shape == (1, 16, 6 * 16 + 5)
    assert r.factor_matrix.shape == (8, 5) and r.factor_summary.factor_names == val.factor_names
    header, rows = r.rows()
    assert header == ["dimension", "KL", *val.factor_names] and len(rows) == 8


# ---- latent health ------------------------------------------------------------------------------
def test_health_report_flags_a_dead_vae_dimension(digits_vae):
    import copy

    trainer, train, val = digits_vae
    model = copy.deepcopy(trainer.model)
    latent = model.config.latent
    dead = 3
    with torch.no_grad():  # mu_3 = 0 and logvar_3 = 0 for every image: exactly the prior
        for row in (dead, latent + dead):
            model.to_code.weight[row].zero_()
            model.to_code.bias[row] = 0.0
    kl = per_dim_kl(model, val.as_float())
    assert kl[dead] < 1e-6
    calls = []
    r = health_report(model, train.images, train.labels, val.images, val.labels,
                      progress=lambda d, t: calls.append((d, t)))
    assert r.is_vae and dead in r.inactive.tolist() and r.kl[dead] < 1e-6
    assert r.status(dead) == "inactive"
    assert any("inactive" in f and f"z{dead + 1}" in f for f in r.findings)
    assert r.silhouette is not None and -1 <= r.silhouette <= 1
    assert r.knn_accuracy is not None and r.knn_accuracy > 2 * r.chance
    assert len(r.findings) == len(r.severity) and calls[-1] == (5, 5)
    header, rows = r.rows()
    assert header[:2] == ["dimension", "KL (nats)"] and rows[dead][-1] == "inactive"


def test_health_report_flags_dead_units_and_handles_no_labels(digits_ae):
    import copy

    trainer, train, val = digits_ae
    model = copy.deepcopy(trainer.model)
    with torch.no_grad():
        model.to_code.weight[5].zero_()
    r = health_report(model, train.images, None, val.images, None)
    assert not r.is_vae and r.kl is None
    assert r.inactive.tolist() == [5] and r.std[5] < 1e-6
    assert any("dead" in f for f in r.findings)
    assert any("No class labels" in f for f in r.findings)
    assert r.silhouette is None and r.knn_accuracy is None


def test_knn_verdict_is_judged_from_chance_to_perfect():
    """99% with two classes (chance 54%) was "far from always" under a rule of multiples of chance."""
    from aestudio.core.labs.health import knn_verdict

    text, sev = knn_verdict(0.99, 0.54, 5)
    assert sev == "ok" and "almost always share a class" in text and "99%" in text
    assert knn_verdict(0.75, 0.10, 5)[1] == "ok"  # ten classes
    assert "mostly share" in knn_verdict(0.75, 0.10, 5)[0]
    assert knn_verdict(0.30, 0.10, 5)[1] == "info"
    assert knn_verdict(0.60, 0.54, 5)[1] == "warn"  # two classes, barely above chance
    assert knn_verdict(0.12, 0.10, 5)[1] == "warn"


def test_a_sparse_code_is_called_sparse_only_near_its_target():
    """Units averaging 0.3 against a target of 0.05 were reported as "Sparse code: 0% of units ..."."""
    from aestudio.core.labs.health import sparsity_finding

    text, sev = sparsity_finding(np.full(8, 0.33), "kl", 0.05)
    assert sev == "warn" and text.startswith("Not sparse (yet)") and "0.33" in text
    text, sev = sparsity_finding(np.full(8, 0.06), "kl", 0.05)
    assert sev == "ok" and text.startswith("Sparse code")
    text, sev = sparsity_finding(np.array([0.0, 0.01, 0.4, 0.5]), "l1", 0.05)
    assert sev == "info" and "50% of the units" in text
