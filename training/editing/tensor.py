"""Mode-n unfolding, folding, mode products and the HOSVD (thesis Sec 3.1, Alg 1).

Unfolding order. tensorly's `unfold(T, n)` moves mode n to the front and reshapes in C
order, so among the remaining modes the LAST one varies fastest. Kolda and Bader (2009),
the thesis's Eq 3.1, let the FIRST remaining mode vary fastest (Fortran order). The two
matrices have the same rows and the same columns in a different order, so they have the
same left singular vectors, singular values and Gram matrix; the HOSVD factors, the core
and every mode product come out identical. The HOSVD below therefore uses tensorly's
unfolding; `kolda_bader_unfold` gives the thesis's exact column order for anyone who
compares unfoldings entry by entry (with MATLAB's Tensor Toolbox, say).

Modes are counted from 0 here (the thesis counts from 1: its mode 1, the latent
dimension, is mode 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorly as tl
from tensorly import tenalg

tl.set_backend("numpy")


def unfold(tensor: np.ndarray, mode: int) -> np.ndarray:
    """Mode-`mode` unfolding [I_mode, prod(others)] in tensorly's (C) column order."""
    return tl.unfold(tensor, mode)


def fold(matrix: np.ndarray, mode: int, shape: Sequence[int]) -> np.ndarray:
    """Inverse of `unfold`."""
    return tl.fold(matrix, mode, tuple(shape))


def kolda_bader_unfold(tensor: np.ndarray, mode: int) -> np.ndarray:
    """Mode-`mode` unfolding in Kolda-Bader order (thesis Eq 3.1): first other mode fastest."""
    return np.reshape(np.moveaxis(tensor, mode, 0), (tensor.shape[mode], -1), order="F")


def mode_dot(tensor: np.ndarray, matrix: np.ndarray, mode: int) -> np.ndarray:
    """T x_mode A (thesis Eq 3.2): A is [J, I_mode] (or a vector [I_mode], dropping the mode)."""
    return tenalg.mode_dot(tensor, matrix, mode)


def multi_mode_dot(tensor: np.ndarray, matrices: Sequence[np.ndarray], modes: Sequence[int],
                   transpose: bool = False) -> np.ndarray:
    """T x_m1 A1 x_m2 A2 ...; `transpose` multiplies by the transposes (used for the core)."""
    return tenalg.multi_mode_dot(tensor, list(matrices), modes=list(modes), transpose=transpose)


@dataclass
class HOSVD:
    """T ~ core x_0 U_0 x_1 U_1 ... (thesis Eq 3.4/3.8).

    `factors[n]` is [I_n, J_n] with orthonormal columns (J_n <= I_n after truncation);
    `singular_values[n]` holds ALL mode-n singular values of T, kept or not, so the
    truncation error can be read off (thesis Eq 3.9).
    """

    core: np.ndarray
    factors: list[np.ndarray]
    singular_values: list[np.ndarray]

    def reconstruct(self) -> np.ndarray:
        return multi_mode_dot(self.core, self.factors, range(len(self.factors)))

    def discarded_energy(self) -> float:
        """Sum over modes of the squared singular values that truncation dropped.

        It equals ||T - T_hat||_F^2 when only one mode is truncated and bounds it
        from above otherwise (thesis Eq 3.9).
        """
        return float(sum(np.sum(s[u.shape[1]:] ** 2)
                         for s, u in zip(self.singular_values, self.factors)))


def hosvd(tensor: np.ndarray, ranks: Sequence[int | None] | None = None) -> HOSVD:
    """Higher-order SVD (thesis Alg 1) with optional truncation of each mode.

    ranks: one entry per mode, an int keeps that many leading singular vectors,
    None keeps them all (at most min(I_n, prod(other sizes)) exist).
    """
    tensor = np.asarray(tensor, dtype=np.float64)
    if ranks is None:
        ranks = [None] * tensor.ndim
    if len(ranks) != tensor.ndim:
        raise ValueError(f"hosvd: got {len(ranks)} ranks for a {tensor.ndim}-mode tensor; "
                         "give one rank (or None) per mode")
    factors, values = [], []
    for mode, rank in enumerate(ranks):
        u, s, _ = np.linalg.svd(unfold(tensor, mode), full_matrices=False)
        if rank is not None:
            if not 1 <= rank <= u.shape[1]:
                raise ValueError(f"hosvd: rank {rank} for mode {mode} must be in 1..{u.shape[1]}")
            u = u[:, :rank]
        factors.append(u)
        values.append(s)
    core = multi_mode_dot(tensor, factors, range(tensor.ndim), transpose=True)
    return HOSVD(core=core, factors=factors, singular_values=values)
