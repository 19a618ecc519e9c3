"""Top singular vectors of a Jacobian without forming it (Paper V, Alg. 1 and Alg. 2).

For f: R^d_in -> R^d_out at a point h, subspace (power) iteration on JᵀJ finds the k
largest singular values of J = ∂f/∂h and their singular vectors. J V comes from
forward-mode autodiff (one JVP per column, batched with vmap) and Jᵀ(J V) from reverse
mode (one VJP per column), so memory grows with k, never with d_in x d_out.

In h-space, f is the U-Net's noise prediction as a function of the mid-block output
(`training.editing.hspace.noise_given_h`); the right singular vectors V are the
image-specific editing directions, and a mask on the output gives the region-specific
variant of Eq 9 (`masked`).

Stopping: the paper's rule (eigenvalues of JᵀJ steady) can hold while the vectors still
turn: eigenvalue estimates err at second order in the vectors' angles, and where
σ_i ≈ σ_i+1 power iteration separates the two vectors only at the rate (σ_i+1/σ_i)² per
step. So the iteration also requires every vector's eigen-residual to be small
(`vector_tol`), and reports the relative spectral gaps (σ_i − σ_i+1)/σ_i with the
Davis-Kahan bounds they give on each vector's error; a gap under `min_gap` is warned of,
because such directions are not unique. Alg. 1 iterates one column more than asked
(`oversample`), which gives σ_k+1 for the k-th gap and speeds the k-th vector up.
"""
from __future__ import annotations

import logging
from typing import Callable, NamedTuple

import torch

log = logging.getLogger(__name__)


class JacobianSVD(NamedTuple):
    """k singular triplets of ∂f/∂h, largest first: U (d_out x k), S (k,), V (d_in x k)."""

    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor


def _flat(f: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor):
    """f as a map between flat vectors, and the flat point."""
    shape = h.shape

    def f_flat(v: torch.Tensor) -> torch.Tensor:
        return f(v.reshape(shape)).reshape(-1)

    return f_flat, h.detach().reshape(-1)


def _jvp_columns(f_flat, h: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """J V for the columns of V (d_in x m) by batched forward-mode JVPs: d_out x m."""
    jv = torch.func.vmap(lambda v: torch.func.jvp(f_flat, (h,), (v,))[1])(V.T.contiguous())
    return jv.T


def _jtjv_columns(f_flat, h: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(J V, Jᵀ J V): the JVPs, then one VJP per column of <f(h), J v> (Eq 7)."""
    JV = _jvp_columns(f_flat, h, V)
    _, vjp_fn = torch.func.vjp(f_flat, h)
    (JtJV,) = torch.func.vmap(vjp_fn)(JV.T.contiguous())
    return JV, JtJV.T


def _ritz(f_flat, h: torch.Tensor, V: torch.Tensor, chunk: int) -> JacobianSVD:
    """Best singular triplets within span(V): SVD of J V (d_out x k, small k).

    This is Alg. 1's last line, "orthonormalize U", done so that U, S and V belong to
    each other exactly: J (V W) = U S with U orthonormal.
    """
    JV = torch.cat([_jvp_columns(f_flat, h, V[:, i : i + chunk]) for i in range(0, V.shape[1], chunk)], 1)
    U, S, Wt = torch.linalg.svd(JV, full_matrices=False)
    return JacobianSVD(U, S, V @ Wt.T)


def eigen_residuals(V: torch.Tensor, JtJV: torch.Tensor) -> torch.Tensor:
    """‖JᵀJ v − (vᵀJᵀJ v) v‖ / ‖JᵀJ v‖ per column v of V: 0 only for an eigenvector.

    By Davis-Kahan, v is within an angle of residual · λ_i / (λ_i − λ_i+1) of the true
    singular vector, so the residual measures the vectors' convergence where the
    eigenvalues alone (steady at second order) do not.
    """
    rayleigh = (V * JtJV).sum(0)
    return (JtJV - V * rayleigh).norm(dim=0) / JtJV.norm(dim=0).clamp_min(1e-30)


def spectral_gaps(S: torch.Tensor) -> list[float]:
    """(σ_i − σ_i+1) / σ_i for i = 1..k−1: how well separated each direction is from the next."""
    return [float((S[i] - S[i + 1]) / S[i].clamp_min(1e-30)) for i in range(len(S) - 1)]


def angle_bounds(S: torch.Tensor, residuals: torch.Tensor) -> list[float]:
    """Davis-Kahan bound on the sine of each vector's error, i = 1..k−1 (the k-th needs σ_k+1)."""
    lam = S.square()
    return [float(residuals[i] * lam[i] / (lam[i] - lam[i + 1]).clamp_min(1e-30)) for i in range(len(S) - 1)]


class _Progress:
    """Eigenvalue changes and eigen-residuals per iteration; converged when both are small
    `patience` times running."""

    def __init__(self, tol: float, vector_tol: float, patience: int):
        self.tol, self.vector_tol, self.patience = tol, vector_tol, patience
        self.eig: torch.Tensor | None = None
        self.steady = 0
        self.residuals = torch.full((1,), float("nan"))

    def step(self, V: torch.Tensor, JtJV: torch.Tensor, eig: torch.Tensor) -> bool:
        """V: the iterate, JtJV = JᵀJ V, eig: the eigenvalue estimates from it."""
        self.residuals = eigen_residuals(V, JtJV)
        if self.eig is not None:
            eig_change = float(((eig - self.eig).abs() / eig.abs().clamp_min(1e-30)).max())
            ok = eig_change <= self.tol and float(self.residuals.max()) <= self.vector_tol
            self.steady = self.steady + 1 if ok else 0
        self.eig = eig
        return self.steady >= self.patience


def _check(h: torch.Tensor, k: int, iters: int, V0: torch.Tensor | None) -> int:
    d_in = h.numel()
    if not 1 <= k <= d_in:
        raise ValueError(f"k={k}: ask for between 1 and {d_in} (the size of h) singular vectors")
    if iters < 1:
        raise ValueError(f"iters={iters}: the iteration cap must be at least 1")
    if V0 is not None and tuple(V0.shape) != (d_in, k):
        raise ValueError(f"V0 has shape {tuple(V0.shape)}; it must be (d_in, k) = ({d_in}, {k})")
    return d_in


def jacobian_subspace_iteration(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    k: int,
    iters: int = 100,
    V0: torch.Tensor | None = None,
    tol: float = 1e-5,
    patience: int = 3,
    generator: torch.Generator | None = None,
    info: dict | None = None,
    vector_tol: float = 1e-3,
    min_gap: float = 0.05,
    oversample: int = 1,
) -> JacobianSVD:
    """Alg. 1: the k largest singular values and vectors of ∂f/∂h at h.

    f takes a tensor shaped like h and returns any tensor (both flattened inside).
    Iterates V <- left singular vectors of Jᵀ J V until, for `patience` iterations in a
    row, the eigenvalues of JᵀJ change by less than `tol` (relative) and every vector's
    eigen-residual is below `vector_tol`, or `iters` times. `info`, when given,
    receives {"iterations", "converged", "residual" (the largest eigen-residual, the
    vectors' convergence), "gaps" (relative spectral gaps, after each of the k), "angle_bounds"
    (bounds on the sine of each vector's error)}. Directions with a gap under `min_gap` are
    warned of. `oversample` extra columns are iterated along (not returned, not required to
    converge) so that σ_k+1, and with it the k-th direction's gap, is known.
    """
    d_in = _check(h, k, iters, V0)
    f_flat, hv = _flat(f, h)
    p = max(0, min(int(oversample), d_in - k))
    V = V0.to(hv) if V0 is not None else torch.randn(d_in, k, generator=generator, dtype=hv.dtype).to(hv.device)
    if p:
        V = torch.cat([V, torch.randn(d_in, p, generator=generator, dtype=hv.dtype).to(hv.device)], 1)
    V, _ = torch.linalg.qr(V)
    progress = _Progress(tol, vector_tol, patience)
    converged = False
    it = 0
    for it in range(1, iters + 1):
        _, V_hat = _jtjv_columns(f_flat, hv, V)
        V_next, eig, _ = torch.linalg.svd(V_hat, full_matrices=False)
        converged = progress.step(V[:, :k], V_hat[:, :k], eig[:k])
        V = V_next
        if converged:
            break
    full = _ritz(f_flat, hv, V, chunk=k + p)
    _report(info, it, converged, progress.residuals, full.S, min_gap, "batched", k)
    return JacobianSVD(full.U[:, :k], full.S[:k], full.V[:, :k])


def sequential_jacobian_subspace_iteration(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    k: int,
    b: int = 1,
    iters: int = 100,
    V0: torch.Tensor | None = None,
    tol: float = 1e-5,
    patience: int = 3,
    generator: torch.Generator | None = None,
    info: dict | None = None,
    vector_tol: float = 1e-3,
    min_gap: float = 0.05,
) -> JacobianSVD:
    """Alg. 2: the same k triplets, found b at a time for small memory (stopping as Alg. 1).

    Each block of b vectors is iterated against the part of R^d_in orthogonal to the
    blocks already found (deflation). As the reading notes warn, the block is projected
    once more after its loop, or blocks are only orthogonal to about 1e-5, and U and S
    come from a final SVD of J V (in chunks of b) rather than from the inner loop.
    """
    d_in = _check(h, k, iters, V0)
    if not 1 <= b <= k:
        raise ValueError(f"b={b}: the mini-batch size must be between 1 and k={k}")
    f_flat, hv = _flat(f, h)
    found = torch.zeros(d_in, 0, dtype=hv.dtype, device=hv.device)
    total_iters, all_converged, residuals = 0, True, []

    def project(Phi: torch.Tensor) -> torch.Tensor:
        # The found columns are orthonormal, so (VᵀV)^-1 = I in [I - V (VᵀV)^-1 Vᵀ].
        return Phi - found @ (found.T @ Phi)

    def deflate(Phi: torch.Tensor) -> torch.Tensor:
        return torch.linalg.qr(project(Phi))[0]

    for start in range(0, k, b):
        stop = min(start + b, k)
        if V0 is not None:
            Phi = V0[:, start:stop].to(hv)
        else:
            Phi = torch.randn(d_in, stop - start, generator=generator, dtype=hv.dtype).to(hv.device)
        Phi = deflate(Phi)
        progress = _Progress(tol, vector_tol, patience)
        converged = False
        for it in range(1, iters + 1):
            _, Phi_hat = _jtjv_columns(f_flat, hv, Phi)
            Phi_hat = project(Phi_hat)
            Phi_next, eig, _ = torch.linalg.svd(Phi_hat, full_matrices=False)
            converged = progress.step(Phi, Phi_hat, eig)
            Phi = Phi_next
            if converged:
                break
        total_iters += it
        all_converged &= converged
        residuals.append(progress.residuals)
        found = torch.cat([found, deflate(Phi)], 1)
    result = _ritz(f_flat, hv, found, chunk=b)
    _report(info, total_iters, all_converged, torch.cat(residuals), result.S, min_gap, f"sequential b={b}", k)
    return result


def _report(info: dict | None, iterations: int, converged: bool, residuals: torch.Tensor, S: torch.Tensor,
            min_gap: float, kind: str, k: int) -> None:
    gaps = spectral_gaps(S)
    residual = float(residuals.max())
    if info is not None:
        info.update(iterations=iterations, converged=converged, residual=residual, gaps=gaps,
                    angle_bounds=angle_bounds(S, residuals))
    gap_text = ", ".join(f"{g:.3f}" for g in gaps) or "none (k=1)"
    if converged:
        log.info("Jacobian subspace iteration (%s, k=%d) converged after %d iterations (residual %.1e); "
                 "relative gaps %s", kind, k, iterations, residual, gap_text)
    else:
        log.warning(
            "Jacobian subspace iteration (%s, k=%d) hit the cap of %d iterations before converging (vectors' "
            "eigen-residual %.1e); raise iters or lower k",
            kind, k, iterations, residual,
        )
    close = [i + 1 for i, g in enumerate(gaps) if g < min_gap]
    if close:
        log.warning("Jacobian directions %s are within %.0f%% of the next singular value (gaps %s): such "
                    "directions are not unique, any rotation among them is almost as good",
                    ", ".join(f"{i}-{i + 1}" for i in close), 100 * min_gap, gap_text)


def masked(f: Callable[[torch.Tensor], torch.Tensor], mask: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Eq 9: f with its output multiplied by a (binary) mask of the region of interest.

    The singular vectors of the masked Jacobian are the directions in h that change the
    masked region most. The mask broadcasts against f's output.
    """

    def f_masked(h: torch.Tensor) -> torch.Tensor:
        return f(h) * mask

    return f_masked
