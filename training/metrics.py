"""FID and KID between real and generated drawings, with Inception weights from a local path.

No weights can be downloaded here, so the feature network is a TorchScript file the
curator provides (`--inception PATH`), e.g. NVlabs' inception-2015-12-05 detector saved
with torch.jit.save, called as `net(images, return_features=True)` on float images
[B, 3, H, W] in 0..255 (it resizes to 299 itself) and returning [B, D] features. Without
the file the metrics are skipped with a message; the encoder's own validation L2 and
perceptual distance are always reported.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

log = logging.getLogger(__name__)


class InceptionMissing(FileNotFoundError):
    """No Inception file at the given path: FID/KID cannot be computed."""


def load_inception(path: Path | None):
    if path is None:
        raise InceptionMissing("FID/KID skipped: no Inception weights given (pass --inception PATH "
                               "to a local TorchScript copy of the weights)")
    if not Path(path).is_file():
        raise InceptionMissing(f"{path}: no such Inception TorchScript file; FID/KID skipped")
    return torch.jit.load(str(path), map_location="cpu").eval()


@torch.no_grad()
def features(net, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 [N, R, R] gray images -> [N, D] float64 features (gray repeated to RGB)."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).float()[:, None].repeat(1, 3, 1, 1)
        out.append(net(x, return_features=True).double().numpy())
    return np.concatenate(out)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    return float(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * np.real(covmean)))


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel,
    averaged over random subsets (as in Binkowski et al. 2018)."""
    rng = np.random.default_rng(seed)
    n = real.shape[1]
    m = min(len(real), len(fake), subset_size)
    total = 0.0
    for _ in range(subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / subsets / m)


def gan_metrics(inception: Path | None, real: np.ndarray, fake: np.ndarray, kid_subsets: int = 100) -> dict:
    """{'fid', 'kid'} or {'skipped': why} when no Inception file is at hand."""
    try:
        net = load_inception(inception)
    except InceptionMissing as exc:
        log.warning("%s", exc)
        return {"skipped": str(exc)}
    fr, ff = features(net, real), features(net, fake)
    return {"fid": fid(fr, ff), "kid": kid(fr, ff, subsets=kid_subsets), "real": len(real), "fake": len(fake)}
