"""HOSVD and unfoldings (training.editing.tensor) on random tensors with known answers."""
import numpy as np
import pytest

from training.editing.tensor import fold, hosvd, kolda_bader_unfold, mode_dot, unfold


def test_kolda_bader_unfold_follows_eq_3_1():
    """Entry T[i1..iN] lands in column j = sum_k i_k J_k (first other mode fastest), as in thesis Eq 3.1."""
    t = np.random.default_rng(0).standard_normal((3, 4, 2, 5))
    for n in range(4):
        x = kolda_bader_unfold(t, n)
        for idx in np.ndindex(t.shape):
            j, stride = 0, 1
            for k in range(4):
                if k != n:
                    j += idx[k] * stride
                    stride *= t.shape[k]
            assert x[idx[n], j] == t[idx]


def test_tensorly_unfold_is_a_column_permutation_of_kolda_bader():
    """tensorly's unfolding has the same columns in another order: same Gram matrix, same factors; fold inverts it."""
    t = np.random.default_rng(1).standard_normal((3, 4, 2, 5))
    for n in range(4):
        a, b = unfold(t, n), kolda_bader_unfold(t, n)
        assert a.shape == b.shape
        assert not np.array_equal(a, b)  # the two orders really differ
        np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-12)
        assert sorted(map(tuple, a.T.round(12))) == sorted(map(tuple, b.T.round(12)))
        np.testing.assert_array_equal(fold(a, n, t.shape), t)


def test_mode_dot_matches_eq_3_2():
    """(T x_n A) sums T over mode n against A's columns (thesis Eq 3.2)."""
    rng = np.random.default_rng(2)
    t, a = rng.standard_normal((3, 4, 5)), rng.standard_normal((6, 4))
    np.testing.assert_allclose(mode_dot(t, a, 1), np.einsum("ijk,lj->ilk", t, a), atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (7, 5, 4, 3, 2)])
def test_hosvd_full_rank_reconstructs_with_orthonormal_factors(shape):
    """A random 4-/5-mode tensor comes back to 1e-5 relative at full rank; every factor has orthonormal columns."""
    t = np.random.default_rng(3).standard_normal(shape)
    h = hosvd(t)
    assert np.linalg.norm(h.reconstruct() - t) / np.linalg.norm(t) < 1e-5
    for u in h.factors:
        np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-10)


@pytest.mark.parametrize("mode,rank", [(0, 3), (1, 2), (3, 1), (4, 1)])
def test_single_mode_truncation_error_equals_discarded_energy(mode, rank):
    """Truncating one mode leaves |T - T_hat|^2 = sum of that mode's discarded squared singular values (1e-6 rel)."""
    t = np.random.default_rng(4).standard_normal((7, 5, 4, 3, 2))
    ranks = [None] * 5
    ranks[mode] = rank
    h = hosvd(t, ranks)
    err = np.linalg.norm(h.reconstruct() - t) ** 2
    expected = np.sum(h.singular_values[mode][rank:] ** 2)
    assert abs(err - expected) <= 1e-6 * expected
    assert abs(h.discarded_energy() - expected) <= 1e-12 * expected


def test_multi_mode_truncation_error_is_bounded_by_discarded_energy():
    """With several modes truncated the error stays under the sum of discarded energies (thesis Eq 3.9) but is not zero."""
    t = np.random.default_rng(5).standard_normal((7, 5, 4, 3))
    h = hosvd(t, [4, 3, 2, None])
    err = np.linalg.norm(h.reconstruct() - t) ** 2
    assert 0 < err <= h.discarded_energy() * (1 + 1e-9)


def test_hosvd_rejects_bad_ranks():
    """A rank outside 1..I_n, or the wrong number of ranks, is a ValueError naming the problem."""
    t = np.zeros((3, 4, 5))
    with pytest.raises(ValueError, match="rank 9 for mode 1"):
        hosvd(t, [None, 9, None])
    with pytest.raises(ValueError, match="one rank"):
        hosvd(t, [None, None])
