"""GANSpace (Härkönen et al. 2020; thesis L478, L1608-1613): PCA of sampled W codes.

The principal axes of W, found from codes the mapping network makes from random z, are
unsupervised edit directions; what each does is learned by looking (the grid). Edits are
applied to a chosen range of W+ layers (e.g. the first 7 for pose in FFHQ models).
Components are numbered from 0 here; the thesis's PC10 / PC2 / PC47 do not say whether
they count from 0 or 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PCA:
    components: np.ndarray  # [k, w_dim] unit rows, by decreasing variance
    std: np.ndarray         # [k] standard deviation of W along each component
    mean: np.ndarray        # [w_dim]


def fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Make each row's largest-magnitude entry positive, so runs agree on the sign."""
    v = np.array(vectors, dtype=np.float64)
    idx = np.argmax(np.abs(v), axis=1)
    return v * np.sign(v[np.arange(len(v)), idx])[:, None]


def ganspace(w: np.ndarray, k: int = 10) -> PCA:
    """Top-k principal axes of sampled W codes w [N, w_dim]."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] < 2:
        raise ValueError(f"ganspace: need sampled W codes [N >= 2, w_dim], got shape {w.shape}")
    if not 1 <= k <= min(w.shape):
        raise ValueError(f"ganspace: k={k} components must be in 1..{min(w.shape)}")
    mean = w.mean(axis=0)
    _, s, vt = np.linalg.svd(w - mean, full_matrices=False)
    return PCA(components=fix_signs(vt[:k]), std=s[:k] / np.sqrt(w.shape[0] - 1), mean=mean)


def sample_w(mapping, n: int = 10000, z_dim: int = 512, seed: int = 0, batch: int = 1000) -> np.ndarray:
    """W codes from `mapping(z) -> w` (e.g. an ONNX Runtime backend's `map`) for n random z."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, batch):
        z = rng.standard_normal((min(batch, n - start), z_dim)).astype(np.float32)
        out.append(np.asarray(mapping(z), dtype=np.float64))
    return np.concatenate(out)
