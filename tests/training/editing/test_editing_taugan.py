"""Paper I's tau-GAN model (training.editing.taugan): canonical parameters, ALS, rotation transfer."""
import numpy as np
import pytest

from training.editing.taugan import TauGAN, elastic_net


def planted(seed=0):
    """Codes = person + expression + view effects + small noise, P=8, E=5, R=2, W+ 3 x 10."""
    rng = np.random.default_rng(seed)
    p, e, r = 8, 5, 2
    codes = (rng.standard_normal((p, 1, 1, 30)) + rng.standard_normal((1, e, 1, 30))
             + rng.standard_normal((1, 1, r, 30)))
    return codes.reshape(p, e, r, 3, 10) + 0.05 * rng.standard_normal((p, e, r, 3, 10))


@pytest.mark.parametrize("style_separated", [False, True])
def test_one_hot_parameters_and_rotation_edit_are_exact(style_separated):
    """Rows of U2, U3, U4 (one-hot canonical q') give back a training code; gamma = 1 moves it to the other view (Eq 13-14)."""
    codes = planted()
    model = TauGAN.fit(codes, style_separated=style_separated)
    assert len(model.blocks) == (3 if style_separated else 1)
    params = [[b.factors[0][2], b.factors[1][3], b.factors[2][0]] for b in model.blocks]
    np.testing.assert_allclose(model.synthesize(params), codes[2, 3, 0], atol=1e-10)
    np.testing.assert_allclose(model.rotate(params, 1.0), codes[2, 3, 1], atol=1e-10)


def test_regularised_als_transfers_rotation():
    """ALS with ridge + lasso fits a code and its rotation edit lands within 20% of the view change (Paper I Sec IV-F)."""
    codes = planted()
    model = TauGAN.fit(codes, ridge=0.1, lasso=0.1, sweeps=6)
    params = model.estimate(codes[2, 3, 0])
    change = np.abs(codes[2, 3, 1] - codes[2, 3, 0]).mean()
    assert np.abs(model.synthesize(params) - codes[2, 3, 0]).mean() < 0.1 * change
    assert np.abs(model.rotate(params, 1.0) - codes[2, 3, 1]).mean() < 0.2 * change


def test_elastic_net_meets_optimality_conditions():
    """FISTA's answer satisfies the elastic-net KKT conditions: zero entries have |gradient| <= lasso, others = -lasso sign."""
    rng = np.random.default_rng(1)
    a, y = rng.standard_normal((40, 12)), rng.standard_normal(40)
    x = elastic_net(a, y, ridge=0.5, lasso=5.0, iters=3000)
    g = 2 * a.T @ (a @ x - y) + 2 * 0.5 * x
    nz = np.abs(x) > 1e-9
    assert nz.any() and (~nz).any()
    np.testing.assert_allclose(g[nz], -5.0 * np.sign(x[nz]), atol=1e-6)
    assert np.all(np.abs(g[~nz]) <= 5.0 + 1e-6)


def test_style_separated_needs_layered_codes():
    """Flat codes cannot be split into styles: a ValueError says what shape is needed."""
    with pytest.raises(ValueError, match="num_ws, w_dim"):
        TauGAN.fit(np.zeros((2, 2, 2, 30)), style_separated=True)
