"""Top singular vectors of a Jacobian without forming it (Paper V, Alg. 1 and Alg. 2).

For f: R^d_in -> R^d_out at a point h, subspace (power) iteration on JᵀJ finds the k
largest singular values of J = ∂f/∂h and their singular vectors. J V comes from
forward-mode autodiff (one JVP per column, batched with vmap) and Jᵀ(J V) from reverse
mode (one VJP per column), so memory grows with k, never with d_in x d_out.

In h-space, f is the U-Net's noise prediction as a function of the mid-block output
(`training.editing.hspace.noise_given_h`); the right singular vectors V are the
image-specific editing directions, and a mask on the output gives the region-specific
variant of Eq 9 (`masked`).
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


def _converged(history: list[torch.Tensor], tol: float, patience: int) -> bool:
    """True when the eigenvalues of JᵀJ moved less than tol (relative) `patience` times running."""
    if len(history) <= patience:
        return False
    for prev, cur in zip(history[-patience - 1 : -1], history[-patience:]):
        if ((cur - prev).abs() / cur.abs().clamp_min(1e-30)).max() > tol:
            return False
    return True


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
) -> JacobianSVD:
    """Alg. 1: the k largest singular values and vectors of ∂f/∂h at h.

    f takes a tensor shaped like h and returns any tensor (both flattened inside).
    Iterates V <- left singular vectors of Jᵀ J V until the eigenvalues of JᵀJ change by
    less than `tol` (relative) for `patience` iterations in a row, or `iters` times.
    `info`, when given, receives {"iterations", "converged"}.
    """
    d_in = _check(h, k, iters, V0)
    f_flat, hv = _flat(f, h)
    V = V0.to(hv) if V0 is not None else torch.randn(d_in, k, generator=generator, dtype=hv.dtype).to(hv.device)
    V, _ = torch.linalg.qr(V)
    history: list[torch.Tensor] = []
    converged = False
    it = 0
    for it in range(1, iters + 1):
        _, V_hat = _jtjv_columns(f_flat, hv, V)
        V, eig, _ = torch.linalg.svd(V_hat, full_matrices=False)
        history.append(eig)
        if _converged(history, tol, patience):
            converged = True
            break
    _report(info, it, converged, "batched", k)
    return _ritz(f_flat, hv, V, chunk=k)


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
) -> JacobianSVD:
    """Alg. 2: the same k triplets, found b at a time for small memory.

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
    total_iters, all_converged = 0, True

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
        history: list[torch.Tensor] = []
        converged = False
        for it in range(1, iters + 1):
            _, Phi_hat = _jtjv_columns(f_flat, hv, Phi)
            Phi, eig, _ = torch.linalg.svd(project(Phi_hat), full_matrices=False)
            history.append(eig)
            if _converged(history, tol, patience):
                converged = True
                break
        total_iters += it
        all_converged &= converged
        found = torch.cat([found, deflate(Phi)], 1)
    _report(info, total_iters, all_converged, f"sequential b={b}", k)
    return _ritz(f_flat, hv, found, chunk=b)


def _report(info: dict | None, iterations: int, converged: bool, kind: str, k: int) -> None:
    if info is not None:
        info.update(iterations=iterations, converged=converged)
    if converged:
        log.info("Jacobian subspace iteration (%s, k=%d) converged after %d iterations", kind, k, iterations)
    else:
        log.warning(
            "Jacobian subspace iteration (%s, k=%d) hit the cap of %d iterations before converging; "
            "the smallest of the k singular values may be inexact (raise iters or lower k)",
            kind, k, iterations,
        )


def masked(f: Callable[[torch.Tensor], torch.Tensor], mask: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Eq 9: f with its output multiplied by a (binary) mask of the region of interest.

    The singular vectors of the masked Jacobian are the directions in h that change the
    masked region most. The mask broadcasts against f's output.
    """

    def f_masked(h: torch.Tensor) -> torch.Tensor:
        return f(h) * mask

    return f_masked
