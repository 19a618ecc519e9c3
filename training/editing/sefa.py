"""SeFa (Shen and Zhou 2021; thesis L490-498): closed-form directions from the generator's weights.

The style affine layers map w to style codes y = A w + b. The unit n that changes the
styles most maximises |A n|^2, so the directions are the top eigenvectors of A^T A, with A
the concatenation (stacked rows) of the affine weights of the chosen layers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from training.editing.ganspace import fix_signs


def sefa(weights: Sequence[np.ndarray], k: int = 10, normalize_rows: bool = False
         ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenvectors [k, w_dim] (unit rows) and eigenvalues [k] of A^T A.

    weights: the affine weights [style channels, w_dim] of the chosen layers.
    normalize_rows: scale every style channel's row to unit length first (what the SeFa
    authors' code does, so wide layers do not dominate); off by default, as in the thesis.
    """
    if len(weights) == 0:
        raise ValueError("sefa: no affine weights given; choose at least one layer")
    mats = [np.asarray(w, dtype=np.float64) for w in weights]
    w_dim = mats[0].shape[1]
    for i, m in enumerate(mats):
        if m.ndim != 2 or m.shape[1] != w_dim:
            raise ValueError(f"sefa: affine weight {i} has shape {m.shape}; expected [channels, {w_dim}]")
    a = np.concatenate(mats, axis=0)
    if normalize_rows:
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    if not 1 <= k <= w_dim:
        raise ValueError(f"sefa: k={k} must be in 1..{w_dim}")
    values, vectors = np.linalg.eigh(a.T @ a)  # ascending
    order = np.argsort(values)[::-1][:k]
    return fix_signs(vectors[:, order].T), values[order]
