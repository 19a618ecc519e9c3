"""Optimisation-based inversion of an image into W or W+ (thesis Eq 2.20, L425-432).

    w* = argmin_w  D(G(w), I) + lambda |G(w) - I|^2

D is a perceptual distance of LPIPS form (thesis Eq 2.12):
    D(x, x0) = sum_l 1/(H_l W_l) sum_hw | c_l * (y_l - y0_l)_hw |^2,
y_l the channel-normalised features of layer l of some network and c_l per-channel weights.
Which network is pluggable (`FeatureDistance`):
- `lpips_vgg16(path)`: LPIPS-VGG from a LOCAL weights file (nothing is downloaded);
- `FeatureDistance(discriminator.features)`: the project's own discriminator's blocks, the
  fallback when no LPIPS weights exist (a trained discriminator's features are perceptual
  enough to align strokes);
- `pixel_distance()`: plain pixels, the last resort.
In W a single w is optimised and copied to every layer; in W+ each layer has its own code
(Abdal et al.: lower error, less editable). The pSp encoder is the fast alternative: pass
its W+ (e.g. `backend.encode(sketch)`) as `init` to start from it (Paper I: faster
convergence than starting from w_avg).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class FeatureDistance(nn.Module):
    """LPIPS-form distance over the feature maps `features(img) -> [f_l, ...]` returns."""

    def __init__(self, features: Callable[[torch.Tensor], Sequence[torch.Tensor]],
                 channel_weights: Sequence[torch.Tensor] | None = None, normalize: bool = True):
        super().__init__()
        self.features = features
        self.channel_weights = None if channel_weights is None else [torch.as_tensor(c) for c in channel_weights]
        self.normalize = normalize

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Distance per image [B] between image batches x and x0 in [-1, 1]."""
        fa, fb = self.features(x), self.features(x0)
        total = 0.0
        for i, (a, b) in enumerate(zip(fa, fb)):
            if self.normalize:  # unit length along channels at every position (LPIPS)
                a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            diff = (a - b).pow(2)
            if self.channel_weights is not None:
                diff = diff * self.channel_weights[i].reshape(1, -1, 1, 1).pow(2)
            total = total + diff.sum(1).mean(dim=(1, 2))
        return total


def pixel_distance() -> FeatureDistance:
    """Mean squared pixel difference, in the same form (one 'layer': the image itself)."""
    return FeatureDistance(lambda img: [img], normalize=False)


# ---- LPIPS-VGG16 from a local file -----------------------------------------------------------
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in `features`
_SHIFT = (-0.030, -0.088, -0.188)  # LPIPS's input scaling layer
_SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers, ch = [], 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU()]
            ch = v
    return nn.Sequential(*layers)


def lpips_vgg16(path: str | Path) -> FeatureDistance:
    """LPIPS with a VGG16 backbone from one local state-dict file (torch.save or safetensors).

    Keys: `features.<i>.weight|bias` (torchvision's VGG16 layout) and `lin<l>.model.1.weight`
    (the LPIPS package's linear layers, l = 0..4). Gray images are repeated to 3 channels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no LPIPS weights file; give a local VGG16+LPIPS state dict "
                                "or use the discriminator / pixel distance")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise several kinds for a bad file
        raise ValueError(f"{path}: not a readable state dict ({exc})") from exc
    vgg = _vgg16_features()
    try:
        vgg.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
        lins = [state[f"lin{i}.model.1.weight"].reshape(-1) for i in range(len(_TAPS))]
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a VGG16+LPIPS state dict ({str(exc)[:200]})") from exc
    vgg.eval().requires_grad_(False)
    shift = torch.tensor(_SHIFT).reshape(1, 3, 1, 1)
    scale = torch.tensor(_SCALE).reshape(1, 3, 1, 1)

    def features(img: torch.Tensor) -> list[torch.Tensor]:
        x = img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img
        x = (x - shift) / scale
        out = []
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out

    # LPIPS weighs squared normalised differences by lin weights (non-negative): c_l = sqrt(lin).
    return FeatureDistance(features, [lin.clamp_min(0).sqrt() for lin in lins])


# ---- the inversion ------------------------------------------------------------------------------
@dataclass
class Inversion:
    wplus: np.ndarray      # [num_ws, w_dim]
    losses: list[float]    # objective per step


def invert(synthesis: Callable[[torch.Tensor], torch.Tensor], target: np.ndarray, init: np.ndarray,
           num_ws: int, space: str = "w+", distance: FeatureDistance | None = None,
           l2_weight: float = 1.0, steps: int = 500, lr: float = 0.01) -> Inversion:
    """Minimise D(G(w), I) + l2_weight |G(w) - I|^2 (per pixel mean) over W or W+ by Adam.

    synthesis: W+ [1, num_ws, w_dim] -> image [1, C, R, R] (e.g. generator.synthesis with
    noise_mode="const"); target: image [C, R, R] in [-1, 1]; init: a W code [w_dim] (e.g.
    w_avg) or a W+ code [num_ws, w_dim] (e.g. the pSp encoder's; averaged over layers for W).
    distance: None uses only the L2 term.
    """
    if space not in ("w", "w+"):
        raise ValueError(f"inversion: space must be 'w' or 'w+', got {space!r}")
    init = np.asarray(init, dtype=np.float32)
    if init.ndim == 1:
        init = np.broadcast_to(init, (num_ws, init.shape[0]))
    if init.shape[0] != num_ws:
        raise ValueError(f"inversion: init has {init.shape[0]} layers, the generator {num_ws}")
    start = torch.as_tensor(init.mean(axis=0, keepdims=True) if space == "w" else init.copy())
    w = start.clone().requires_grad_(True)
    img = torch.as_tensor(np.asarray(target, dtype=np.float32))[None]
    opt = torch.optim.Adam([w], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        wplus = w.expand(num_ws, -1)[None]
        out = synthesis(wplus)
        loss = l2_weight * F.mse_loss(out, img)
        if distance is not None:
            loss = loss + distance(out, img).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return Inversion(wplus=w.detach().expand(num_ws, -1).numpy().copy(), losses=losses)
