"""InterFaceGAN (Shen et al. 2020; thesis L474, L1600-1606): a linear SVM on labelled latents.

The attribute's direction is the unit normal of the separating hyperplane, pointing to the
positive label. The conditional direction removes a second attribute by projection,
n1' = n1 - (n1^T n2) n2, so that moving along it leaves that attribute's score unchanged.

The SVM is the L2-regularised squared-hinge loss (what LIBLINEAR's LinearSVC minimises by
default), solved by L-BFGS from scipy: smooth, convex, and exact enough for 512-d codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


@dataclass
class LinearSVM:
    normal: np.ndarray  # unit vector, towards the positive label
    bias: float         # decision: normal . x + bias (in units of the unit normal)
    accuracy: float     # on the training latents

    def decision(self, latents: np.ndarray) -> np.ndarray:
        return np.asarray(latents, dtype=np.float64) @ self.normal + self.bias


def _check(latents, labels) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(latents, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if x.ndim != 2:
        raise ValueError(f"interfacegan: latents must be [N, latent size], got shape {x.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"interfacegan: {x.shape[0]} latents but {y.shape[0]} labels")
    values = np.unique(y)
    if values.size != 2:
        raise ValueError(f"interfacegan: labels must take exactly two values, got {values[:5]}")
    return x, np.where(y == values.max(), 1.0, -1.0)


def fit_svm(latents: np.ndarray, labels: np.ndarray, c: float = 1.0) -> LinearSVM:
    """Fit min 1/2 |v|^2 + c * sum(max(0, 1 - y (v.x + b))^2); labels: two values, the larger positive.

    Latents are centred and scaled by their overall standard deviation for the solve (so that
    `c` means the same thing for any generator); the normal is mapped back to latent space.
    """
    x, y = _check(latents, labels)
    mean = x.mean(axis=0)
    scale = float(x.std()) or 1.0
    xs = (x - mean) / scale
    n, d = xs.shape

    def loss(params):
        v, b = params[:d], params[d]
        margin = 1.0 - y * (xs @ v + b)
        active = np.maximum(margin, 0.0)
        value = 0.5 * v @ v + c * np.sum(active ** 2)
        g = -2.0 * c * active * y
        return value, np.concatenate([v + xs.T @ g, [g.sum()]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000})
    v, b = res.x[:d], res.x[d]
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError("interfacegan: the SVM found no direction (are the labels informative?)")
    normal = v / norm
    # Back to latent space: v.(x - mean)/scale + b = 0  ->  normal.x + bias = 0.
    bias = float(b * scale / norm - normal @ mean)
    accuracy = float(np.mean(np.sign(x @ normal + bias) == y))
    return LinearSVM(normal=normal, bias=bias, accuracy=accuracy)


def conditional_direction(primary: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """Unit direction of `primary` with every `conditions` direction projected out.

    conditions: one direction [d] or several [m, d]; with several, the whole span is
    removed (Gram-Schmidt through a QR), the natural extension of n1 - (n1.n2) n2.
    """
    n1 = np.asarray(primary, dtype=np.float64)
    basis, _ = np.linalg.qr(np.atleast_2d(np.asarray(conditions, dtype=np.float64)).T)
    out = n1 - basis @ (basis.T @ n1)
    norm = np.linalg.norm(out)
    if norm < 1e-8 * np.linalg.norm(n1):
        raise ValueError("interfacegan: the primary direction lies in the span of the conditions; "
                         "nothing is left after projecting them out")
    return out / norm
