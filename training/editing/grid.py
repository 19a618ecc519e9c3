"""The editing grid: what each direction does to the table's own generator (no torch).

Rows are directions, columns strengths; the middle column (strength 0) is the unedited
drawing. Strengths are in standard deviations of the generator's W along each direction
(the file's `std`, or measured here from sampled codes), so one scale suits every method;
SeFa and InterFaceGAN directions carry no natural scale of their own. W+ directions
(num_ws * w_dim long, e.g. Paper II's expression directions saved with `Directions` and
layers = all) are added layer by layer on the file's layers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from inference.tensors import to_uint8
from training.editing.directions import Directions, DirectionsError, edit
from training.editing.ganspace import sample_w

DEFAULT_STRENGTHS = (-3.0, -1.5, 0.0, 1.5, 3.0)


def direction_std(backend, directions: np.ndarray, samples: int = 2000, seed: int = 1) -> np.ndarray:
    """Standard deviation of sampled codes projected on each direction [k, w_dim or num_ws * w_dim].

    A W+ direction is measured on the sampled w copied to every layer, i.e. against the
    sum of its layers.
    """
    bundle = backend.bundle
    w = sample_w(backend.map, n=samples, z_dim=bundle.z_dim, seed=seed)
    d = np.asarray(directions, dtype=np.float64)
    if d.shape[1] == bundle.num_ws * bundle.w_dim:
        d = d.reshape(len(d), bundle.num_ws, bundle.w_dim).sum(axis=1)
    return (w @ d.T).std(axis=0)


def editing_grid(backend, directions: Directions, strengths: Sequence[float] = DEFAULT_STRENGTHS,
                 seed: int = 0, truncation: float = 0.7, rows: int | None = None,
                 batch: int = 8) -> np.ndarray:
    """uint8 image [rows * R, len(strengths) * R(, 3)] of one sampled drawing edited along each direction.

    backend: an `inference.runtime` backend (map, generate, bundle). The drawing is
    w = w_avg + truncation (map(z) - w_avg) for z from `seed`, in W+ on every layer.
    """
    bundle = backend.bundle
    d = directions.directions[:rows] if rows else directions.directions
    if d.shape[1] not in (bundle.w_dim, bundle.num_ws * bundle.w_dim):
        raise DirectionsError(f"directions have {d.shape[1]} entries; the bundle needs W ({bundle.w_dim}) or "
                              f"W+ ({bundle.num_ws} x {bundle.w_dim}) directions ({bundle.path})")
    std = directions.std[:len(d)] if directions.std is not None else direction_std(backend, d)
    if d.shape[1] != bundle.w_dim:  # W+ directions (e.g. Paper II's) are added whole
        d = d.reshape(len(d), bundle.num_ws, bundle.w_dim)
    z = np.random.default_rng(seed).standard_normal((1, bundle.z_dim)).astype(np.float32)
    w = bundle.w_avg + truncation * (backend.map(z)[0] - bundle.w_avg)
    wplus = np.broadcast_to(w, (bundle.num_ws, bundle.w_dim))
    codes = np.stack([edit(wplus, d[i], s * std[i], directions.layers)
                      for i in range(len(d)) for s in strengths]).astype(np.float32)
    return tile_images(generate_batched(backend, codes, batch), len(d), len(strengths))


def generate_batched(backend, codes: np.ndarray, batch: int = 8) -> np.ndarray:
    """backend.generate over W+ codes [N, num_ws, w_dim] in batches: images [N, C, R, R] in [-1, 1]."""
    codes = np.asarray(codes, dtype=np.float32)
    return np.concatenate([backend.generate(codes[i:i + batch]) for i in range(0, len(codes), batch)])


def tile_images(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """uint8 grid [rows * R, cols * R(, 3)] of images [rows * cols, C, R, R] in [-1, 1], row by row."""
    u8 = to_uint8(images)
    _, c, r, _ = u8.shape
    grid = u8.reshape(rows, cols, c, r, r).transpose(0, 3, 1, 4, 2).reshape(rows * r, cols * r, c)
    return grid[..., 0] if c == 1 else grid


def strength_labels(strengths: Sequence[float], unit: str = "sd") -> list[str]:
    return ["0" if s == 0 else f"{s:+g} {unit}".strip() for s in strengths]


def label_grid(grid: np.ndarray, tile: int | tuple[int, int], rows: Sequence[str],
               columns: Sequence[str]) -> np.ndarray:
    """The grid on a white margin with each row's name on its left and each column's above it.

    grid: [rows * tile_h, columns * tile_w(, C)] uint8; tile: its side, or (height, width).
    Text is black, sized to the tiles (readable from 32 px tiles up).
    """
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    if grid.shape[0] != len(rows) * tile_h or grid.shape[1] != len(columns) * tile_w:
        raise ValueError(f"grid {grid.shape[:2]} is not {len(rows)} x {len(columns)} tiles of {tile_h}x{tile_w} px")
    if grid.ndim == 3 and grid.shape[2] == 1:  # one-channel images as [H, W, 1]
        return label_grid(grid[..., 0], tile, rows, columns)[..., None]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, min(tile_h, tile_w) / 160)
    thickness = max(1, min(tile_h, tile_w) // 128)
    size = lambda text: cv2.getTextSize(text, font, scale, thickness)[0]  # noqa: E731  (w, h)
    text_h = max(size(t)[1] for t in [*rows, *columns])
    pad = max(3, text_h // 2)
    left = max(size(t)[0] for t in rows) + 2 * pad
    top = text_h + 2 * pad
    canvas = np.full((top + grid.shape[0], left + grid.shape[1]) + grid.shape[2:], 255, np.uint8)
    canvas[top:, left:] = grid
    black = (0, 0, 0) if grid.ndim == 3 else 0
    for i, text in enumerate(rows):
        cv2.putText(canvas, text, (pad, top + i * tile_h + (tile_h + text_h) // 2), font, scale, black, thickness,
                    cv2.LINE_AA)
    for j, text in enumerate(columns):
        x = left + j * tile_w + max(0, (tile_w - size(text)[0]) // 2)
        cv2.putText(canvas, text, (x, pad + text_h), font, scale, black, thickness, cv2.LINE_AA)
    return canvas


def write_grid(path: str | Path, grid: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = grid if grid.ndim == 2 else cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write the grid image (use a .png name in a writable folder)")
    return path


def write_direction_grid(backend, directions, strengths, out, seed: int = 0, truncation: float = 0.7,
                         rows: int | None = None, labels: bool = True):
    """The editing grid of `directions` on a backend (`generator.open_generator`), labelled, as a PNG:
    (path, rows)."""
    grid = editing_grid(backend, directions, strengths, seed=seed, truncation=truncation, rows=rows)
    tile = backend.bundle.resolution
    count = grid.shape[0] // tile
    if labels:
        grid = label_grid(grid, tile, directions.labels()[:count], strength_labels(strengths, directions.unit))
    return write_grid(out, grid), count
