"""Paper II's expression model (training.editing.expression) on latents from a planted multilinear model."""
import numpy as np
import pytest
import torch

from training.editing.expression import ExpressionModel, RecoverySettings, expression_accuracy

torch.set_num_threads(1)
P_TRAIN, P_HELD, E, I, R = 16, 4, 6, 4, 2
NUM_WS, W_DIM = 4, 16


def planted(noise=0.4, seed=0):
    """Codes w[p,e,i,r] = m + A a_p + v_r + s_i x_e + noise, a Tucker model with 1-augmented factors.

    The expression directions x_e are centred over expressions: the mean expression is
    indistinguishable from the mean code, so that is what "the" direction of e means.
    """
    rng = np.random.default_rng(seed)
    d = NUM_WS * W_DIM
    a = rng.standard_normal((P_TRAIN + P_HELD, 5)) @ rng.standard_normal((5, d))
    v = rng.standard_normal((R, d))
    x = rng.standard_normal((E, d))
    x -= x.mean(axis=0)
    s = np.arange(1, I + 1) / I
    codes = (rng.standard_normal(d) + a[:, None, None, None] + v[None, None, None]
             + s[None, None, :, None, None] * x[None, :, None, None])
    codes = codes + noise * rng.standard_normal(codes.shape)
    return codes.reshape(P_TRAIN + P_HELD, E, I, R, NUM_WS, W_DIM), x, v


@pytest.fixture(scope="module")
def fitted():
    codes, x, v = planted()
    return ExpressionModel.fit(codes[:P_TRAIN]), codes, x, v


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_expression_directions_match_planted_ones(fitted):
    """Each global expression direction (Eq 13-14) has cosine > 0.95 with the planted one, with the right sign."""
    model, _, x, _ = fitted
    for e in range(E):
        n = model.expression_direction(e)
        assert n.shape == (NUM_WS, W_DIM)
        assert _cos(n, x[e]) > 0.95


def test_expression_direction_matches_closed_form(fitted):
    """Untruncated U2, U3, U5: n_e = sum_i u4[i] mean_{p,r}(w[p,e,i,r] - w_mean), the notes' cross-check."""
    model, codes, _, _ = fitted
    train = codes[:P_TRAIN].reshape(P_TRAIN, E, I, R, -1)
    mean = train.reshape(-1, train.shape[-1]).mean(axis=0)
    u4 = model.factors[2][:, 0]
    assert np.all(np.diff(u4) > 0), "u4 must grow with intensity"
    for e in range(E):
        closed = np.einsum("i,pird->d", u4, train[:, e] - mean) / (P_TRAIN * R)
        np.testing.assert_allclose(model.expression_direction(e).ravel(), closed, rtol=1e-8, atol=1e-10)


def test_recovered_expression_parameters_classify_held_out_codes(fitted):
    """Adam recovery (Eq 6) on people left out of the model: argmax of q'_3 is the right expression for >= 95%."""
    model, codes, _, _ = fitted
    held = codes[P_TRAIN:].reshape(-1, NUM_WS, W_DIM)
    labels = np.broadcast_to(np.arange(E)[None, :, None, None], (P_HELD, E, I, R)).ravel()
    params = model.recover(held, RecoverySettings(steps=200))
    assert [p.shape for p in params] == [(len(held), n) for n in (P_TRAIN, E, I, R)]
    assert expression_accuracy(model, params[1], labels) >= 0.95
    # The fit is close to the codes: well under their spread around the mean.
    err = np.sum((model.reconstruct(params) - held) ** 2, axis=(1, 2))
    spread = np.sum((held - model.mean.reshape(NUM_WS, W_DIM)) ** 2, axis=(1, 2))
    assert np.median(err / spread) < 0.1


@pytest.mark.slow
def test_one_hot_parameters_reproduce_training_codes_and_full_rank_fits_better():
    """With no truncation one-hot q' give back a training code; the full-rank Q fits held-out codes no worse than rank one."""
    codes, _, _ = planted()
    model = ExpressionModel.fit(codes[:P_TRAIN], intensity_rank=None)
    one_hot = [np.eye(n)[[k]] for n, k in zip((P_TRAIN, E, I, R), (3, 2, 1, 0))]
    np.testing.assert_allclose(model.reconstruct(one_hot)[0], codes[3, 2, 1, 0], atol=1e-9)
    held = codes[P_TRAIN:, :2].reshape(-1, NUM_WS, W_DIM)
    rank_one = model.reconstruct(model.recover(held, RecoverySettings(steps=200)))
    full = model.reconstruct_full_rank(model.recover_full_rank(held))
    assert np.sum((full - held) ** 2) <= np.sum((rank_one - held) ** 2)


def test_rotation_direction_moves_between_views(fitted):
    """The rotation direction (Eq 16-18) is the planted view difference v_1 - v_0 (cosine > 0.95)."""
    model, _, _, v = fitted
    assert _cos(model.rotation_direction(0, 1), v[1] - v[0]) > 0.95


def test_directions_need_truncated_intensity():
    """Asking for a global direction from an untruncated intensity mode is a ValueError that says what to do."""
    codes, _, _ = planted()
    model = ExpressionModel.fit(codes[:P_TRAIN], intensity_rank=None)
    with pytest.raises(ValueError, match="intensity_rank=1"):
        model.expression_direction(0)


def test_model_file_round_trip(fitted, tmp_path):
    """A saved model loads back with the same directions; a foreign file is a ValueError naming it."""
    model = fitted[0]
    model.save(tmp_path / "m.npz")
    back = ExpressionModel.load(tmp_path / "m.npz")
    np.testing.assert_allclose(back.expression_direction(2), model.expression_direction(2), rtol=1e-12)
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="other.npz"):
        ExpressionModel.load(tmp_path / "other.npz")
