"""InterFaceGAN, GANSpace, SeFa and the linear edit (training.editing) on planted ground truth."""
import numpy as np
import pytest

from training.editing.directions import Directions, DirectionsError, edit, layer_indices
from training.editing.ganspace import ganspace, sample_w
from training.editing.interfacegan import conditional_direction, fit_svm
from training.editing.sefa import sefa


def _random_orthonormal(rng, d, k):
    return np.linalg.qr(rng.standard_normal((d, k)))[0].T


def test_sefa_recovers_planted_eigenvectors():
    """Affine weights built as U diag(s) V^T (split into layers): SeFa's top directions are V's rows, |cos| > 0.999."""
    rng = np.random.default_rng(0)
    w_dim, k = 64, 5
    v = _random_orthonormal(rng, w_dim, w_dim)
    s = np.concatenate([[10, 8, 6, 5, 4], np.linspace(1, 0.1, w_dim - 5)])
    a = _random_orthonormal(rng, 96, w_dim).T @ np.diag(s) @ v  # [96, w_dim] with singular vectors v
    layers = [a[:32], a[32:80], a[80:]]
    directions, values = sefa(layers, k=k)
    assert directions.shape == (k, w_dim)
    for i in range(k):
        assert abs(directions[i] @ v[i]) > 0.999
    np.testing.assert_allclose(values, s[:k] ** 2, rtol=1e-9)


def test_ganspace_recovers_planted_axes():
    """Codes from a planted covariance (mapped through a fake `mapping`): PCA axes match, std matches the planted spread."""
    rng = np.random.default_rng(1)
    w_dim = 32
    axes = _random_orthonormal(rng, w_dim, w_dim)
    spread = np.concatenate([[5.0, 3.0, 2.0], np.full(w_dim - 3, 0.3)])
    mapping = lambda z: 1.5 + (z * spread) @ axes  # noqa: E731 - a linear "mapping network"
    w = sample_w(mapping, n=20000, z_dim=w_dim, seed=0)
    pca = ganspace(w, k=3)
    for i in range(3):
        assert abs(pca.components[i] @ axes[i]) > 0.99
    np.testing.assert_allclose(pca.std, spread[:3], rtol=0.05)
    np.testing.assert_allclose(pca.mean, 1.5, atol=0.1)


def test_interfacegan_separates_and_conditions():
    """Separable labels: the SVM classifies all codes, its normal aligns with the planted one; the conditional direction is orthogonal to the condition."""
    rng = np.random.default_rng(2)
    d = 48
    n1, n2 = _random_orthonormal(rng, d, 2)
    n2 = 0.6 * n1 + 0.8 * n2  # a correlated second attribute
    x = rng.standard_normal((600, d))
    margin1, margin2 = x @ n1, x @ n2
    keep = np.abs(margin1) > 0.3  # a gap between the classes: linearly separable
    svm1 = fit_svm(x[keep], margin1[keep] > 0)
    svm2 = fit_svm(x, margin2 > 0)
    assert svm1.accuracy == 1.0
    assert svm1.normal @ n1 > 0.9
    cond = conditional_direction(svm1.normal, svm2.normal)
    assert abs(cond @ svm2.normal) < 1e-10
    assert np.linalg.norm(cond) == pytest.approx(1.0)
    assert cond @ svm1.normal > 0.5


def test_edit_touches_only_chosen_layers():
    """w' = w + alpha n changes exactly the chosen W+ layers, by alpha n; W+ directions are added whole."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 6, 8)).astype(np.float32)
    n = rng.standard_normal(8).astype(np.float32)
    out = edit(w, n, np.array([1.0, -2.0]), layers="1:3")
    np.testing.assert_allclose(out[:, [0, 3, 4, 5]], w[:, [0, 3, 4, 5]])
    np.testing.assert_allclose(out[1, 1:3], w[1, 1:3] - 2 * n, rtol=1e-6)
    full = rng.standard_normal((6, 8))
    np.testing.assert_allclose(edit(w[0], full, 0.5), w[0] + 0.5 * full, atol=1e-6)
    with pytest.raises(DirectionsError, match="0..5"):
        layer_indices([7], 6)


def test_directions_file_round_trip_and_errors(tmp_path):
    """Saved directions load back as unit rows with method, layers and std; a file missing a field names it."""
    d = Directions(directions=np.array([[3.0, 4.0], [0.0, 2.0]]), method="sefa", layers=np.arange(2, 5),
                   std=np.array([1.0, 2.0]))
    path = d.save(tmp_path / "d.npz")
    back = Directions.load(path)
    np.testing.assert_allclose(back.directions, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    assert back.method == "sefa" and list(back.layers) == [2, 3, 4] and list(back.std) == [1.0, 2.0]
    np.savez(tmp_path / "bad.npz", directions=np.eye(2))
    with pytest.raises(DirectionsError, match="'method' is missing"):
        Directions.load(tmp_path / "bad.npz")
