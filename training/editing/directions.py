"""The linear latent edit and the file that carries directions between tools.

Edit (thesis Eq 2.26 / Paper I Eq 12): w' = w + alpha n, applied only to the chosen W+
layers (GANSpace's layer ranges; all layers is the plain W edit). Directions found in W
(w_dim long) are added to each chosen layer; a W+ direction (num_ws x w_dim) is added as
a whole.

File: `.npz` with `directions` (k x w_dim, unit rows), `method` (str), `layers` (the W+
layer indices they apply to), optionally `std` (spread of the generator's W along each
direction, so strengths can be given in standard deviations) and `names` (one label per
direction, e.g. 'smile', shown on the grid; default '<method> <i>') and `unit` (what a
strength of 1 means: 'sd', one standard deviation, by default; '' when `std` holds each
direction's own length, so a strength is the paper's parameter, e.g. Paper II's q4).
numpy only: the grid runs on ONNX Runtime without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np


class DirectionsError(ValueError):
    """A directions file or argument that cannot be used; the message says which and why."""


def layer_indices(layers: Iterable[int] | slice | range | str | None, num_ws: int) -> np.ndarray:
    """Normalise a layer choice to sorted indices in [0, num_ws).

    Accepts None (all layers), a slice/range, an iterable of ints, or a string
    "a:b" (python-style half-open range, either end optional) or "0,3,5".
    """
    if layers is None:
        return np.arange(num_ws)
    if isinstance(layers, str):
        text = layers.strip()
        if ":" in text:
            start, _, stop = text.partition(":")
            layers = slice(int(start) if start else None, int(stop) if stop else None)
        else:
            layers = [int(part) for part in text.split(",") if part.strip()]
    if isinstance(layers, slice):
        idx = np.arange(num_ws)[layers]
    else:
        idx = np.asarray(sorted(set(int(i) for i in layers)), dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= num_ws:
        raise DirectionsError(f"layers {layers!r}: need at least one layer index in 0..{num_ws - 1}")
    return idx


def edit(wplus: np.ndarray, direction: np.ndarray, alpha, layers=None) -> np.ndarray:
    """w' = w + alpha n on the chosen layers of W+ codes.

    wplus: [B, num_ws, w_dim] or [num_ws, w_dim]; direction: [w_dim] or [num_ws, w_dim];
    alpha: a scalar or one strength per code [B]. Returns a new float32 array.
    """
    w = np.array(wplus, dtype=np.float32, copy=True)
    single = w.ndim == 2
    if single:
        w = w[None]
    if w.ndim != 3:
        raise DirectionsError(f"edit: W+ codes must be [B, num_ws, w_dim], got shape {np.shape(wplus)}")
    _, num_ws, w_dim = w.shape
    n = np.asarray(direction, dtype=np.float32)
    if n.shape == (w_dim,):
        n = np.broadcast_to(n, (num_ws, w_dim))
    elif n.shape != (num_ws, w_dim):
        raise DirectionsError(f"edit: direction shape {n.shape} fits neither W ({w_dim},) "
                              f"nor W+ ({num_ws}, {w_dim})")
    idx = layer_indices(layers, num_ws)
    a = np.asarray(alpha, dtype=np.float32).reshape(-1, 1, 1)
    if a.shape[0] not in (1, w.shape[0]):
        raise DirectionsError(f"edit: {a.shape[0]} strengths for {w.shape[0]} codes")
    w[:, idx] += a * n[idx][None]
    return w[0] if single else w


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise DirectionsError("a direction has zero length and cannot be made a unit vector")
    return v / norms


@dataclass
class Directions:
    """k unit directions in W (or W+ flattened), the method that found them, their layers."""

    directions: np.ndarray        # [k, latent size], unit rows
    method: str
    layers: np.ndarray            # W+ layer indices the directions apply to
    std: np.ndarray | None = None  # [k] spread of sampled W along each direction
    names: list[str] | None = None  # [k] labels; None: '<method> <i>'
    unit: str = "sd"               # what strength 1 is: 'sd' of W, or '' (the direction's own length)

    def labels(self) -> list[str]:
        return list(self.names) if self.names is not None else [f"{self.method} {i}" for i in range(len(self.directions))]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            raise DirectionsError(f"{path}: directions are saved as .npz; give a name ending in .npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = dict(directions=unit_rows(self.directions).astype(np.float32),
                      method=np.array(self.method), layers=np.asarray(self.layers, dtype=np.int64),
                      unit=np.array(self.unit))
        if self.std is not None:
            fields["std"] = np.asarray(self.std, dtype=np.float32)
        if self.names is not None:
            if len(self.names) != len(fields["directions"]):
                raise DirectionsError(f"{path}: {len(self.names)} names for {len(fields['directions'])} directions")
            fields["names"] = np.array([str(n) for n in self.names])
        np.savez(path, **fields)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Directions":
        path = Path(path)
        if not path.is_file():
            raise DirectionsError(f"{path}: no such directions file; make one with `newsnow edit directions`")
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DirectionsError(f"{path}: not a readable .npz directions file ({exc})") from exc
        for field in ("directions", "method", "layers"):
            if field not in data.files:
                raise DirectionsError(f"{path}: field '{field}' is missing; "
                                      "write the file with `newsnow edit directions`")
        d = np.asarray(data["directions"], dtype=np.float64)
        if d.ndim != 2 or d.shape[0] == 0:
            raise DirectionsError(f"{path}: field 'directions' must be k x latent size, got {d.shape}")
        if not np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-3):
            raise DirectionsError(f"{path}: field 'directions' must have unit rows")
        std = np.asarray(data["std"], dtype=np.float64) if "std" in data.files else None
        if std is not None and std.shape != (d.shape[0],):
            raise DirectionsError(f"{path}: field 'std' must hold one value per direction")
        names = [str(n) for n in data["names"]] if "names" in data.files else None
        if names is not None and len(names) != d.shape[0]:
            raise DirectionsError(f"{path}: field 'names' must hold one label per direction")
        return cls(directions=d, method=str(data["method"]), layers=np.asarray(data["layers"], dtype=np.int64),
                   std=std, names=names, unit=str(data["unit"]) if "unit" in data.files else "sd")
