"""Latent tools: projections and their inverses, traversals, interpolation, prior samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aestudio.core.config import ModelConfig
from aestudio.core.latent import (
    Projection, available_methods, code_stats, interpolate, interpolate_codes, sample_codes, sample_prior, traverse,
)
from aestudio.core.models import Autoencoder


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (3, 6))
    return (centres[np.repeat(np.arange(3), 60)] + rng.normal(0, 0.5, (180, 6))).astype(np.float32)


def test_available_methods():
    methods = available_methods()
    assert methods[:2] == ["pca", "tsne"]
    assert set(methods) <= {"pca", "tsne", "umap"}


def test_pca_projection_inverse_round_trips(codes):
    proj = Projection().fit(codes, "pca")
    assert proj.method == "pca" and proj.points.shape == (180, 2)
    np.testing.assert_allclose(proj.transform(codes), proj.points, atol=1e-4)
    grid = np.random.default_rng(1).normal(0, 3, (10, 2)).astype(np.float32)
    back = proj.inverse(grid)
    assert back.shape == (10, 6)
    np.testing.assert_allclose(proj.transform(back), grid, atol=1e-4)
    # a single point gives a single code
    assert proj.inverse(grid[0]).shape == (6,)
    # the inverse of a projected code is its projection onto the principal plane: closest of all
    # codes in that plane, and exact when the codes lie in a plane
    flat = codes[:, :2] @ np.random.default_rng(2).normal(size=(2, 6)).astype(np.float32)
    p2 = Projection().fit(flat, "pca")
    np.testing.assert_allclose(p2.inverse(p2.points), flat, atol=1e-3)


def test_two_dimensional_codes_are_shown_as_is():
    z = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    proj = Projection().fit(z, "tsne")
    assert proj.method == "identity"
    np.testing.assert_array_equal(proj.points, z)
    np.testing.assert_array_equal(proj.inverse(z[:5]), z[:5])
    one = Projection().fit(z[:, :1], "pca")
    assert one.points.shape == (50, 2) and one.inverse(one.points).shape == (50, 1)
    np.testing.assert_array_equal(one.inverse(one.points), z[:, :1])


def test_tsne_inverse_gives_the_code_near_the_clicked_point(codes):
    calls = []
    proj = Projection().fit(codes, "tsne", seed=0, progress=lambda f, m: calls.append(f))
    assert proj.method == "tsne" and proj.points.shape == (180, 2)
    assert calls[0] == 0.0 and calls[-1] == 1.0
    # clicking exactly on a point returns its code
    np.testing.assert_allclose(proj.inverse(proj.points[17]), codes[17], atol=1e-5)
    # clicking right next to a point returns a code near its code (same cluster, close by)
    spread = proj.points.std(0)
    near = proj.points[:30] + 0.01 * spread
    back = proj.inverse(near)
    dist_to_own = np.linalg.norm(back - codes[:30], axis=1)
    typical = np.linalg.norm(codes[:30] - codes[:30].mean(0), axis=1).mean()
    assert np.median(dist_to_own) < 0.5 * typical
    # new codes land near their neighbours' positions
    t = proj.transform(codes[:5])
    np.testing.assert_allclose(t, proj.points[:5], atol=1e-4)


def test_max_points_subsamples_with_seed(codes):
    proj = Projection().fit(codes, "tsne", seed=3, max_points=50)
    assert proj.points.shape == (50, 2) and len(proj.indices) == 50
    np.testing.assert_array_equal(proj.codes, codes[proj.indices])
    again = Projection().fit(codes, "tsne", seed=3, max_points=50)
    np.testing.assert_array_equal(proj.indices, again.indices)
    np.testing.assert_allclose(proj.points, again.points)


def test_unknown_method_and_bad_codes():
    with pytest.raises(ValueError, match="unknown projection"):
        Projection().fit(np.zeros((10, 3)), "mds")
    with pytest.raises(ValueError):
        Projection().fit(np.zeros((0, 3)))
    with pytest.raises(RuntimeError):
        Projection().inverse(np.zeros((1, 2)))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(arch="dense", kind="vae", input_shape=(1, 8, 8), latent=3, hidden=[16]))


def test_traverse_changes_only_one_dimension(model):
    base = np.array([0.1, -0.2, 0.3], np.float32)
    imgs = traverse(model, base, 1, np.linspace(-3, 3, 7))
    assert imgs.shape == (7, 1, 8, 8)
    with torch.no_grad():
        z = torch.tensor(base).repeat(7, 1)
        z[:, 1] = torch.linspace(-3, 3, 7)
        np.testing.assert_allclose(imgs, model.eval().decode(z).numpy(), atol=1e-6)
    with pytest.raises(ValueError):
        traverse(model, base, 3, [0.0])


def test_interpolation_endpoints_and_slerp_norms(model):
    a, b = np.array([1.0, 0, 0], np.float32), np.array([0, 2.0, 0], np.float32)
    lin = interpolate_codes(a, b, 5)
    np.testing.assert_allclose(lin[0], a)
    np.testing.assert_allclose(lin[-1], b)
    np.testing.assert_allclose(lin[2], (a + b) / 2)
    sph = interpolate_codes(a, b, 5, spherical=True)
    np.testing.assert_allclose(sph[0], a, atol=1e-6)
    np.testing.assert_allclose(sph[-1], b, atol=1e-6)
    assert np.linalg.norm(sph[2]) > np.linalg.norm(lin[2])  # slerp keeps away from the origin
    # parallel codes fall back to linear
    np.testing.assert_allclose(interpolate_codes(a, 2 * a, 3, spherical=True), interpolate_codes(a, 2 * a, 3))
    assert interpolate(model, a, b, 6).shape == (6, 1, 8, 8)


def test_prior_samples_are_seeded(model):
    x1, x2 = sample_prior(model, 4, seed=1), sample_prior(model, 4, seed=1)
    np.testing.assert_array_equal(x1, x2)
    assert x1.shape == (4, 1, 8, 8) and 0 <= x1.min() and x1.max() <= 1
    assert not np.array_equal(x1, sample_prior(model, 4, seed=2))
    ae = Autoencoder(ModelConfig(arch="dense", kind="ae", input_shape=(1, 8, 8), latent=3, hidden=[16]))
    codes = np.random.default_rng(0).normal(5.0, 0.1, (500, 3)).astype(np.float32)
    z = sample_codes(ae, 2000, seed=0, codes=codes)
    np.testing.assert_allclose(z.mean(0), 5.0, atol=0.02)
    np.testing.assert_allclose(z.std(0), 0.1, atol=0.02)


def test_code_stats_ranges():
    codes = np.array([[0.0, 1.0], [2.0, 1.0]], np.float32)
    st = code_stats(codes)
    np.testing.assert_allclose(st.mean, [1.0, 1.0])
    np.testing.assert_allclose(st.std, [1.0, 0.0])
    np.testing.assert_allclose(st.min, [0.0, 1.0])
    np.testing.assert_allclose(st.max, [2.0, 1.0])
    assert st.range(0) == (-2.0, 4.0)
    assert st.range(1) == (-2.0, 4.0)  # a constant dimension still gets a usable range


def test_locate_marks_codes_cheaply_and_exactly_for_pca():
    from aestudio.core.latent import Projection, dim_name

    rng = np.random.default_rng(0)
    codes = rng.normal(size=(60, 5)).astype(np.float32)
    pca = Projection().fit(codes, method="pca")
    np.testing.assert_allclose(pca.locate(codes[:3]), pca.transform(codes[:3]), atol=1e-6)
    tsne = Projection().fit(codes, method="tsne", seed=0)
    np.testing.assert_allclose(tsne.locate(codes[4]), tsne.points[list(tsne.indices).index(4)]
                               if tsne.indices is not None else tsne.points[4], atol=1e-5)
    assert [dim_name(d) for d in range(3)] == ["z1", "z2", "z3"]
