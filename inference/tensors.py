"""The one conversion between images and the networks' range (docs/CONTRACTS.md, "Model
tensors"): uint8 0..255 <-> float [-1, 1], ink dark. For numpy arrays and torch tensors
alike, so the table, training and the research modules all convert the same way; no
torch import here (the runtime path has none)."""
from __future__ import annotations

import numpy as np


def from_uint8(images):
    """uint8 (a sketch: ink 0, paper 255; or a drawing) -> float32 in [-1, 1], same shape
    and kind (numpy array or torch tensor, on its device)."""
    if hasattr(images, "float") and not isinstance(images, np.ndarray):  # a torch tensor
        return images.float() / 127.5 - 1
    return np.asarray(images, dtype=np.float32) / 127.5 - 1


def to_uint8(images) -> np.ndarray:
    """float in [-1, 1] (numpy or torch, any device) -> uint8 numpy, clipped and rounded."""
    if not isinstance(images, np.ndarray):
        images = images.detach().float().cpu().numpy()
    return np.clip((images + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
