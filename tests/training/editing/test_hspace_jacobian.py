"""Jacobian subspace iteration (Paper V, Alg. 1 and 2) against explicit Jacobians."""
import pytest
import torch

from training.editing.hspace_jacobian import (
    jacobian_subspace_iteration,
    masked,
    sequential_jacobian_subspace_iteration,
)

torch.set_num_threads(1)

PLANTED = (8.0, 4.0, 2.0, 1.0, 0.2, 0.2, 0.2, 0.2)
CLOSE = (8.0, 6.5, 5.2, 4.2, 0.2, 0.2, 0.2, 0.2)  # slow convergence: (σ_{i+1}/σ_i)² ≈ 0.65


def _mlp(seed: int = 0, d_in: int = 48, d_out: int = 40, planted=PLANTED):
    """A nonlinear map h -> W2 tanh(W1 h + c) whose Jacobian has a well-separated top spectrum.

    W1 gets planted singular values (by default 8, 4, 2, 1 then 0.2); tanh's slope (near
    1 at the point) perturbs them but keeps the top four apart.
    """
    g = torch.Generator().manual_seed(seed)
    Qa, _ = torch.linalg.qr(torch.randn(d_in, d_in, generator=g, dtype=torch.float64))
    Qb, _ = torch.linalg.qr(torch.randn(d_out, d_out, generator=g, dtype=torch.float64))
    planted = torch.tensor(planted, dtype=torch.float64)
    s = torch.cat([planted, torch.full((min(d_in, d_out) - len(planted),), 0.1, dtype=torch.float64)])
    W1 = Qb[:, : len(s)] @ torch.diag(s) @ Qa[:, : len(s)].T  # d_out x d_in
    W2 = torch.eye(d_out, dtype=torch.float64) + 0.05 * torch.randn(d_out, d_out, generator=g, dtype=torch.float64)
    c = 0.3 * torch.randn(d_out, generator=g, dtype=torch.float64)
    h = 0.1 * torch.randn(d_in, generator=g, dtype=torch.float64)

    def f(x):
        return W2 @ torch.tanh(W1 @ x + c)

    return f, h


def _reference(f, h):
    J = torch.autograd.functional.jacobian(f, h)
    U, S, Vt = torch.linalg.svd(J, full_matrices=False)
    return J, U, S, Vt.T


def _abs_cos(a, b):
    return (a * b).sum(0).abs() / (a.norm(dim=0) * b.norm(dim=0))


def test_batched_matches_explicit_jacobian():
    """Alg. 1 gives the top-3 singular values within 1e-3 relative and |cos| > 0.999 for each
    left and right singular vector, against torch.autograd's explicit Jacobian."""
    f, h = _mlp()
    _, Ur, Sr, Vr = _reference(f, h)
    assert Sr[2] / Sr[3] > 1.5  # the spectrum really is well separated
    info = {}
    U, S, V = jacobian_subspace_iteration(f, h, k=3, iters=300, generator=torch.Generator().manual_seed(1), info=info)
    assert info["converged"]
    assert torch.all((S - Sr[:3]).abs() / Sr[:3] < 1e-3)
    assert torch.all(_abs_cos(V, Vr[:, :3]) > 0.999)
    assert torch.all(_abs_cos(U, Ur[:, :3]) > 0.999)
    assert torch.all(S[:-1] >= S[1:])
    assert torch.allclose(V.T @ V, torch.eye(3, dtype=V.dtype), atol=1e-8)


def test_works_on_any_shape_of_h():
    """f on a 3-d tensor h (flattened inside) gives the same singular values as on the flat h."""
    f, h = _mlp(seed=3)
    shape = (3, 4, 4)

    def f3(x):
        return f(x.reshape(-1)).reshape(5, 8)

    S_flat = jacobian_subspace_iteration(f, h, 2, iters=300, generator=torch.Generator().manual_seed(0)).S
    U, S, V = jacobian_subspace_iteration(f3, h.reshape(shape), 2, iters=300, generator=torch.Generator().manual_seed(0))
    assert V.shape == (48, 2) and U.shape == (40, 2)
    assert torch.allclose(S, S_flat, rtol=1e-6)


@pytest.mark.parametrize("b", [1, 2])
def test_sequential_agrees_with_batched(b):
    """Alg. 2 with mini-batch b finds the same top-3 singular values (1e-3) and vectors
    (|cos| > 0.999) as Alg. 1 and as the explicit Jacobian, on a spectrum that needs tens
    of iterations, and its V is orthonormal across blocks to 1e-8."""
    f, h = _mlp(seed=1, planted=CLOSE)
    _, _, Sr, Vr = _reference(f, h)
    assert torch.all(Sr[:3] / Sr[1:4] > 1.1)
    Ub, Sb, Vb = jacobian_subspace_iteration(f, h, 3, iters=500, generator=torch.Generator().manual_seed(2))
    info = {}
    Us, Ss, Vs = sequential_jacobian_subspace_iteration(f, h, 3, b=b, iters=500,
                                                        generator=torch.Generator().manual_seed(5), info=info)
    assert info["converged"]
    assert torch.all((Ss - Sb).abs() / Sb < 1e-3)
    assert torch.all((Ss - Sr[:3]).abs() / Sr[:3] < 1e-3)
    assert torch.all(_abs_cos(Vs, Vb) > 0.999)
    assert torch.all(_abs_cos(Vs, Vr[:, :3]) > 0.999)
    assert torch.all(_abs_cos(Us, Ub) > 0.999)
    assert torch.allclose(Vs.T @ Vs, torch.eye(3, dtype=Vs.dtype), atol=1e-8)


def test_masked_jacobian_is_the_jacobian_of_the_masked_output():
    """Eq 9: the masked variant's singular values are those of diag(M) J, not of J."""
    f, h = _mlp(seed=2)
    mask = torch.zeros(40, dtype=torch.float64)
    mask[:10] = 1.0
    J, *_ = _reference(f, h)
    Sm_ref = torch.linalg.svdvals(mask[:, None] * J)
    U, S, V = jacobian_subspace_iteration(masked(f, mask), h, 2, iters=500, generator=torch.Generator().manual_seed(0))
    assert torch.all((S - Sm_ref[:2]).abs() / Sm_ref[:2] < 1e-3)
    assert U[10:].abs().max() < 1e-10  # the left singular vectors live inside the region
    assert not torch.allclose(S, torch.linalg.svdvals(J)[:2], rtol=1e-2)


def test_initial_guess_spanning_the_answer_converges_at_once():
    """V0 = the true right singular vectors: the result reproduces them after a few iterations."""
    f, h = _mlp(seed=4)
    _, _, Sr, Vr = _reference(f, h)
    info = {}
    _, S, V = jacobian_subspace_iteration(f, h, 2, iters=50, V0=Vr[:, :2], info=info)
    assert info["iterations"] <= 5
    assert torch.all(_abs_cos(V, Vr[:, :2]) > 0.9999)


def test_iteration_cap_is_reported():
    """With a cap of 2 iterations on a slowly converging spectrum, info says not converged."""
    f, h = _mlp(seed=0)
    info = {}
    jacobian_subspace_iteration(f, h, 4, iters=2, generator=torch.Generator().manual_seed(0), info=info)
    assert info["iterations"] == 2 and not info["converged"]
    assert info["residual"] > 1e-3 and len(info["gaps"]) == len(info["angle_bounds"]) == 4  # one oversampled


def _linear(sigmas, d=64, seed=0):
    """f(h) = A h with A = Qb diag(sigmas, then 0.006 .. 0.001) Qa^T; returns f, h, Qa."""
    g = torch.Generator().manual_seed(seed)
    Qa, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    Qb, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.cat([torch.tensor(sigmas, dtype=torch.float64),
                   torch.linspace(0.006, 0.001, d - len(sigmas), dtype=torch.float64)])
    A = Qb @ torch.diag(s) @ Qa.T
    return (lambda h: A @ h), torch.zeros(d, dtype=torch.float64), Qa


def test_close_singular_values_are_reported_and_vectors_must_settle(caplog):
    """The issue's spectrum (sigma 0.0090, 0.0085, 0.0082, 0.0080 as on the demo DDPM at t=600): the
    eigenvalue rule alone stops with the third vector 2-4 degrees off; requiring small eigen-residuals
    brings it within 0.3 degrees, the reported gaps are the true ones, the Davis-Kahan bounds hold, and
    the pair closer than 5% is warned of."""
    f, h, Qa = _linear([0.0090, 0.0085, 0.0082, 0.0080])

    def errors(**kwargs):
        info = {}
        _, _, V = jacobian_subspace_iteration(f, h, 3, iters=1000, generator=torch.Generator().manual_seed(0),
                                              info=info, **kwargs)
        cos = (V * Qa[:, :3]).sum(0).abs().clamp(max=1)
        return (1 - cos.square()).sqrt(), info

    eigen_only, _ = errors(vector_tol=float("inf"), oversample=0)  # the paper's rule, k columns
    assert eigen_only[2] > 0.02
    with caplog.at_level("WARNING", logger="training.editing.hspace_jacobian"):
        err, info = errors(vector_tol=1e-4)
    assert info["converged"] and info["residual"] <= 1e-4 and err[2] < 0.005
    # the gap after the third direction is known from the oversampled fourth
    assert info["gaps"] == pytest.approx([1 - 0.0085 / 0.0090, 1 - 0.0082 / 0.0085, 1 - 0.0080 / 0.0082], abs=1e-4)
    assert all(e <= bound * 1.01 + 1e-12 for e, bound in zip(err.tolist(), info["angle_bounds"]))
    assert "directions 2-3, 3-4 are within 5%" in caplog.text


def test_bad_arguments_are_named():
    """k out of range, a wrong V0 shape and b > k raise ValueError naming the argument."""
    f, h = _mlp()
    with pytest.raises(ValueError, match="k=0"):
        jacobian_subspace_iteration(f, h, 0)
    with pytest.raises(ValueError, match="V0"):
        jacobian_subspace_iteration(f, h, 2, V0=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="b=4"):
        sequential_jacobian_subspace_iteration(f, h, 3, b=4)
