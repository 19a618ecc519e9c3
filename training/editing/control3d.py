"""Paper III: 3D control of a generator through the landmark model (thesis L2155-2181).

- `Regressor` phi: w -> q, an MLP with 3 hidden layers of 512 and ReLU (Paper III Sec 4.1).
  It predicts standardised q (the paper's "mean-centred output features") and maps them
  back with the training set's mean and spread, which keeps the last layer well scaled.
- `train_regressor`: Adam on |R(phi(w)) - X|^2 (Eq 12), X the landmarks psi_L(G(w)) that
  an extractor found in the generated images (any extractor; they arrive as arrays).
- `linear_edit`: w = w0 + J^+ (q - q0) with J = d phi / d w at w0 (Eq 14).
- `gradient_edit`: min_w |phi(w) - q_t|^2 + lambda D(G(w), G(w0)) (Eq 15) with a pluggable
  image distance D (identity, LPIPS, the discriminator's features: see `inversion`);
  the paper's lambda_ID = 0.01 with ArcFace is the default strength.
w may be a W code [w_dim] or a flattened W+ code; phi is trained on whichever is given.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from training.editing.nrsfm import ShapeModel, render_torch


class Regressor(nn.Module):
    """phi: w [B, w_size] -> q [B, q_size]; 3 hidden layers (512 wide by default), ReLU."""

    def __init__(self, w_size: int, q_size: int, hidden: int = 512, layers: int = 3):
        super().__init__()
        dims = [w_size] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(dims[-1], q_size))
        self.register_buffer("w_mean", torch.zeros(w_size))
        self.register_buffer("w_std", torch.ones(w_size))
        self.register_buffer("q_mean", torch.zeros(q_size))
        self.register_buffer("q_std", torch.ones(q_size))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.q_mean + self.q_std * self.net((w - self.w_mean) / self.w_std)


def train_regressor(w: np.ndarray, landmarks: np.ndarray, model: ShapeModel, q_fit: np.ndarray,
                    steps: int = 2000, lr: float = 1e-3, batch: int = 256, hidden: int = 512,
                    seed: int = 0, log: Callable[[int, float], None] | None = None) -> Regressor:
    """Fit phi on codes w [N, w_size] and their images' landmarks [N, L, 2] (Eq 12).

    q_fit [N, 8+K]: the NRSfM fit's parameters of the same shapes, used only for the output
    standardisation (and so the first prediction is the mean q, a sensible start).
    """
    w_t = torch.as_tensor(np.asarray(w, dtype=np.float32))
    x_t = torch.as_tensor(np.asarray(landmarks, dtype=np.float32))
    q_t = torch.as_tensor(np.asarray(q_fit, dtype=np.float32))
    if not (len(w_t) == len(x_t) == len(q_t)):
        raise ValueError(f"regressor: {len(w_t)} codes, {len(x_t)} landmark sets and {len(q_t)} q rows must match")
    if q_t.shape[1] != model.param_size:
        raise ValueError(f"regressor: q has {q_t.shape[1]} entries, the shape model needs {model.param_size}")
    torch.manual_seed(seed)
    phi = Regressor(w_t.shape[1], q_t.shape[1], hidden=hidden)
    phi.w_mean.copy_(w_t.mean(0))
    phi.w_std.copy_(w_t.std(0).clamp_min(1e-6))
    phi.q_mean.copy_(q_t.mean(0))
    phi.q_std.copy_(q_t.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(phi.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(w_t), (min(batch, len(w_t)),), generator=gen)
        pred = render_torch(model, phi(w_t[idx]).double()).float()
        loss = (pred - x_t[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None and step % 100 == 0:
            log(step, float(loss.detach()))
    return phi.eval()


def landmark_loss(phi: Regressor, model: ShapeModel, w: np.ndarray, landmarks: np.ndarray) -> float:
    """L_L (Eq 16): mean squared distance of R(phi(w)) to the landmarks."""
    with torch.no_grad():
        pred = render_torch(model, phi(torch.as_tensor(np.asarray(w, dtype=np.float32))).double())
    return float(((pred.numpy() - np.asarray(landmarks)) ** 2).mean())


def linear_edit(phi: nn.Module, w0: np.ndarray, q_target: np.ndarray) -> np.ndarray:
    """w = w0 + J^+ (q_target - phi(w0)), J the Jacobian of phi at w0 (Eq 14)."""
    w0_t = torch.as_tensor(np.asarray(w0, dtype=np.float32))
    jac = torch.autograd.functional.jacobian(lambda w: phi(w[None])[0], w0_t)  # [q, w]
    with torch.no_grad():
        q0 = phi(w0_t[None])[0]
    step = torch.linalg.pinv(jac.double()) @ (torch.as_tensor(q_target, dtype=torch.float64) - q0.double())
    return (w0_t.double() + step).float().numpy()


def gradient_edit(phi: nn.Module, w0: np.ndarray, q_target: np.ndarray,
                  generator: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  strength: float = 0.01, steps: int = 200, lr: float = 0.01,
                  q_weights: np.ndarray | None = None) -> np.ndarray:
    """argmin_w |phi(w) - q_t|^2 + strength * D(G(w), G(w0)) by Adam from w0 (Eq 15).

    generator maps a batch of codes [1, ...] to images; distance compares two image batches
    (e.g. `inversion.FeatureDistance`). Without them the regulariser is off. q_weights
    optionally weights the q entries (the paper edits a few entries and keeps the others).
    """
    if (generator is None) != (distance is None):
        raise ValueError("gradient edit: give both a generator and a distance, or neither")
    w0_t = torch.as_tensor(np.asarray(w0, dtype=np.float32))[None]
    target = torch.as_tensor(np.asarray(q_target, dtype=np.float32))[None]
    weights = torch.ones_like(target) if q_weights is None else torch.as_tensor(q_weights, dtype=torch.float32)
    for p in phi.parameters():
        p.requires_grad_(False)
    reference = None
    if generator is not None:
        with torch.no_grad():
            reference = generator(w0_t)
    w = w0_t.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = (weights * (phi(w) - target) ** 2).sum()
        if reference is not None:
            loss = loss + strength * distance(generator(w), reference).sum()
        loss.backward()
        opt.step()
    return w.detach()[0].numpy()
