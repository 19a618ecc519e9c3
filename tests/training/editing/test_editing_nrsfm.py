"""Paper III's NRSfM (training.editing.nrsfm) on landmarks from a planted shape basis and random cameras."""
import numpy as np
import pytest
import torch

from training.editing.nrsfm import (ShapeModel, camera_decomposition, complete_rotation, euler_from_rotation,
                                    fit_nrsfm, render_torch, rotation_from_euler)

torch.set_num_threads(1)
NOISE = 0.01


def planted(k, n=500, points=30, seed=0):
    """Shapes B0 + sum_k alpha_k d_k b_k^T (~10% deformation) seen by random affine cameras, plus 2D noise."""
    rng = np.random.default_rng(seed)
    b0 = rng.standard_normal((3, points))
    b0 -= b0.mean(axis=1, keepdims=True)
    profiles = np.linalg.qr(np.vstack([np.ones(points), b0, rng.standard_normal((k, points))]).T)[0][:, 4:].T
    d = rng.standard_normal((3, k))
    d /= np.linalg.norm(d, axis=0)
    alpha = rng.standard_normal((n, k)) * 0.3 * 0.7 ** np.arange(k) * np.sqrt(points) / 3
    shapes = []
    for i in range(n):
        cam = np.array([[rng.uniform(0.8, 1.2), rng.uniform(-0.05, 0.05)], [0, rng.uniform(0.8, 1.2)]])
        m = cam @ rotation_from_euler(rng.uniform([-0.35, -0.5, -0.2], [0.35, 0.5, 0.2]))[:2]
        shape3d = b0 + np.einsum("k,ck,kl->cl", alpha[i], d, profiles)
        shapes.append((m @ shape3d).T + rng.uniform(-2, 2, 2))
    shapes = np.array(shapes)
    return shapes + NOISE * rng.standard_normal(shapes.shape)


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 12])
def test_fit_reprojects_within_twice_the_noise(k):
    """The fitted model R(q_n) reproduces every shape to RMS <= 2x the landmark noise; the d_k stay unit length."""
    landmarks = planted(k)
    fit = fit_nrsfm(landmarks, num_bases=k)
    assert fit.q.shape == (len(landmarks), 8 + k)
    rms = np.sqrt(np.mean((fit.reproject() - landmarks) ** 2))
    assert rms == pytest.approx(fit.rms)
    assert rms <= 2 * NOISE
    np.testing.assert_allclose(np.linalg.norm(fit.model.d, axis=0), 1.0, atol=1e-2)
    # The model faces the camera: the shapes' rotations average to the identity.
    rotations = np.stack([rotation_from_euler(theta) for theta in fit.q[:, 3:6]])
    np.testing.assert_allclose(np.linalg.svd(rotations.mean(axis=0))[0] @ np.linalg.svd(rotations.mean(axis=0))[2],
                               np.eye(3), atol=1e-6)
    # Fitting q to one shape from scratch (Eq 11) is as good as the batch fit.
    q = fit.model.fit_q(landmarks[7])
    assert np.sqrt(np.mean((fit.model.render(q) - landmarks[7]) ** 2)) <= 2 * NOISE


def test_camera_decomposition_properties():
    """Alg 2 on random 2x3 matrices: K upper triangular with positive diagonal, R orthonormal rows, K R = M to 1e-6."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = rng.standard_normal((2, 3))
        k, r = camera_decomposition(m)
        assert k[1, 0] == 0 and k[0, 0] > 0 and k[1, 1] > 0
        np.testing.assert_allclose(r @ r.T, np.eye(2), atol=1e-10)
        np.testing.assert_allclose(k @ r, m, atol=1e-6)


def test_euler_angles_round_trip():
    """R = Rz Ry Rx read back from a completed two-row rotation gives the same angles (|theta_y| < pi/2)."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        theta = rng.uniform([-3, -1.5, -3], [3, 1.5, 3])
        r = rotation_from_euler(theta)
        np.testing.assert_allclose(complete_rotation(r[:2]), r, atol=1e-12)
        np.testing.assert_allclose(euler_from_rotation(r), theta, atol=1e-9)


def test_torch_render_matches_numpy():
    """The differentiable R(q) used to train the regressor equals the numpy model."""
    rng = np.random.default_rng(2)
    model = ShapeModel(b0=rng.standard_normal((3, 10)), d=rng.standard_normal((3, 4)), b=rng.standard_normal((4, 10)))
    q = rng.standard_normal((5, model.param_size))
    np.testing.assert_allclose(render_torch(model, torch.as_tensor(q)).numpy(), model.render(q), atol=1e-12)


def test_shape_model_file_round_trip(tmp_path):
    """A saved shape model renders the same landmarks after loading."""
    rng = np.random.default_rng(3)
    model = ShapeModel(b0=rng.standard_normal((3, 10)), d=rng.standard_normal((3, 2)), b=rng.standard_normal((2, 10)))
    model.save(tmp_path / "shape.npz")
    q = rng.standard_normal(model.param_size)
    np.testing.assert_array_equal(ShapeModel.load(tmp_path / "shape.npz").render(q), model.render(q))


def test_bad_landmarks_are_rejected():
    """NaN landmarks or a wrong shape raise a ValueError that says what is wrong."""
    pts = np.zeros((5, 10, 2))
    pts[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_nrsfm(pts, num_bases=2)
    with pytest.raises(ValueError, match=r"\[shapes, points >= 4, 2\]"):
        fit_nrsfm(np.zeros((5, 10, 3)), num_bases=2)
