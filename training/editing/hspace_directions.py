"""Editing directions in h-space (and x_T): find them, store them, apply them.

Three ways of finding directions from Paper V:
- PCA over many samples, per timestep (`pca_directions`, §4.1);
- the top right singular vectors of ∂ε/∂h_τ for one sample, optionally masked to a
  region (`jacobian_directions`, §4.2, Alg. 1/2, Eq 9);
- supervised: the mean difference of positive and negative examples (Eq 10), chosen by
  any classifier's scores (`split_by_score`), in h_{T:1} or in x_T; entangled directions
  are separated by projection (Eq 11, `disentangle`).

An edit is Δh_t = γ · scale · v_t, added at every sampling step. A `Direction` file keeps
v with the timesteps, the model folder and the scale it belongs to.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from inference import tensors
from training.editing.hspace import DiffusionModel, Trajectory, noise_given_h, sample
from training.editing.hspace_jacobian import jacobian_subspace_iteration, masked, sequential_jacobian_subspace_iteration

SPACES = ("h", "x_T")


class DirectionFileError(ValueError):
    """A direction file that cannot be read or does not fit the model or the sampling run."""


@dataclass
class Direction:
    """v_{T:1} for an edit Δh_t = strength · scale · v_t (or x_T + strength · scale · v).

    `vectors` is [S, ...] (one v_t per sampling step, in the order of `timesteps`) or
    [1, ...] (the same v at every step, as for Jacobian directions found at one step τ).
    """

    name: str
    vectors: torch.Tensor
    timesteps: list[int]
    space: str = "h"
    scale: float = 1.0
    model: str = ""
    method: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"direction {self.name!r}: space {self.space!r} is not one of {SPACES}")
        if self.vectors.shape[0] not in (1, len(self.timesteps)):
            raise ValueError(
                f"direction {self.name!r}: {self.vectors.shape[0]} vectors for {len(self.timesteps)} timesteps; "
                "give one per timestep or one for all"
            )

    def delta(self, timesteps: list[int], strength: float) -> torch.Tensor:
        """strength · scale · v, per step for `timesteps` ([S, ...] or [1, ...])."""
        if self.vectors.shape[0] > 1 and list(timesteps) != list(self.timesteps):
            raise DirectionFileError(
                f"direction {self.name!r} was found for timesteps {self.timesteps}, but the sampling run uses "
                f"{list(timesteps)}; sample with --steps {len(self.timesteps)} (or find the direction again)"
            )
        return float(strength) * self.scale * self.vectors

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format": "newsnow-hspace-direction",
            "name": self.name,
            "timesteps": self.timesteps,
            "space": self.space,
            "scale": self.scale,
            "model": self.model,
            "method": self.method,
            "meta": self.meta,
        }
        save_file({"vectors": self.vectors.detach().float().contiguous().cpu()}, str(path), {"newsnow": json.dumps(header)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DirectionFileError(f"{path}: no such direction file")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = json.loads((f.metadata() or {}).get("newsnow", "{}"))
                vectors = f.get_tensor("vectors")
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise DirectionFileError(f"{path}: not a readable safetensors direction file ({exc})") from exc
        if header.get("format") != "newsnow-hspace-direction":
            raise DirectionFileError(f"{path}: not a direction written by `newsnow hspace` (no newsnow header)")
        try:
            return cls(
                name=header["name"], vectors=vectors, timesteps=[int(t) for t in header["timesteps"]],
                space=header["space"], scale=float(header["scale"]), model=header.get("model", ""),
                method=header.get("method", ""), meta=header.get("meta", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DirectionFileError(f"{path}: bad direction header ({exc})") from exc


def edit(model: DiffusionModel, traj: Trajectory, direction: Direction, strength: float, asyrrp: bool = False) -> Trajectory:
    """Re-run `traj` (same x_T, z_{T:1} and clipping) with the direction applied at `strength`."""
    steps = len(traj.timesteps)
    clip = traj.clip_range is not None
    if direction.space == "x_T":
        x_T = traj.x_T + direction.delta(traj.timesteps, strength)[0]
        return sample(model, x_T, steps, traj.eta, noise=traj.noise, clip=clip)
    delta = direction.delta(traj.timesteps, strength)
    return sample(model, traj.x_T, steps, traj.eta, noise=traj.noise, delta_h=delta, asyrrp=asyrrp, clip=clip)


def pca_directions(
    h: torch.Tensor, timesteps: list[int], n_components: int, model: str = ""
) -> list[Direction]:
    """§4.1: PCA of h_t over n samples at each step; direction j joins the j-th components.

    `h` is [S, n, ...] (a Trajectory's `h`, or several concatenated along dim 1).
    v_{j,t} = (s_{j,t} / √(n-1)) u_{j,t}: the unit component scaled by the standard
    deviation along it, so strength 1 is one standard deviation at every step. Signs are
    aligned from step to step (<u_{j,t}, u_{j,t+1}> >= 0); PCA leaves them arbitrary.
    """
    S, n = h.shape[:2]
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples of h, got {n}")
    k = min(n_components, n - 1)
    if n_components < 1 or k < n_components:
        raise ValueError(f"n_components={n_components}: choose between 1 and n-1 = {n - 1}")
    comps = torch.zeros(k, S, *h.shape[2:])
    stds = torch.zeros(k, S)
    for s in range(S):
        X = h[s].reshape(n, -1).double()
        _, sv, Vt = torch.linalg.svd(X - X.mean(0), full_matrices=False)
        u = Vt[:k]
        if s > 0:  # align signs with the previous step
            prev = comps[:, s - 1].reshape(k, -1).double()
            u = u * torch.where((u * prev).sum(1) < 0, -1.0, 1.0)[:, None]
        comps[:, s] = u.reshape(k, *h.shape[2:]).float()
        stds[:, s] = (sv[:k] / math.sqrt(n - 1)).float()
    return [
        Direction(
            name=f"pca{j + 1}", vectors=comps[j] * stds[j].reshape(S, *[1] * (h.dim() - 2)), timesteps=list(timesteps),
            model=model, method="pca", meta={"std": stds[j].tolist(), "samples": n},
        )
        for j in range(k)
    ]


def jacobian_directions(
    model: DiffusionModel,
    traj: Trajectory,
    step_index: int,
    k: int = 3,
    sample_index: int = 0,
    mask: torch.Tensor | None = None,
    iters: int = 100,
    b: int | None = None,
    generator: torch.Generator | None = None,
    info: dict | None = None,
) -> list[Direction]:
    """§4.2: the k top right singular vectors of J_τ = ∂ε/∂h_τ for one sample.

    τ = traj.timesteps[step_index]. `mask` ([H, W] or broadcastable to ε, 1 inside the
    region) gives the region-specific directions of Eq 9. `b` switches to the sequential
    Alg. 2 with mini-batch b. Each direction is a unit vector applied at every step
    (the paper applies directions found at τ at all steps), with scale = ‖h_τ‖ so that
    strength 1 moves h by its own norm.
    """
    if not 0 <= step_index < len(traj.timesteps):
        raise ValueError(f"step_index={step_index}: the run has steps 0..{len(traj.timesteps) - 1}")
    t = traj.timesteps[step_index]
    x_t = traj.xs[step_index, sample_index : sample_index + 1]
    h = traj.h[step_index, sample_index : sample_index + 1]
    with noise_given_h(model, x_t, t) as f:
        if mask is not None:
            f = masked(f, mask.to(x_t))
        if b is None:
            U, S, V = jacobian_subspace_iteration(f, h, k, iters=iters, generator=generator, info=info)
        else:
            U, S, V = sequential_jacobian_subspace_iteration(f, h, k, b=b, iters=iters, generator=generator, info=info)
    norm = float(h.norm())
    return [
        Direction(
            name=f"jacobian_t{t}_{i + 1}", vectors=V[:, i].reshape(1, *h.shape[1:]), timesteps=list(traj.timesteps),
            scale=norm, model=model.source, method="jacobian-masked" if mask is not None else "jacobian",
            meta={"found_at": t, "singular_value": float(S[i]), "sample_index": sample_index},
        )
        for i in range(k)
    ]


def annotate(images: torch.Tensor, classifier: Callable[[torch.Tensor], torch.Tensor], batch: int = 64) -> torch.Tensor:
    """Scores of images ([N, C, H, W] in [-1, 1]) by any classifier returning one number each."""
    scores = []
    for i in range(0, images.shape[0], batch):
        chunk = images[i : i + batch]
        s = torch.as_tensor(classifier(chunk), dtype=torch.float32).reshape(-1)
        if s.shape[0] != chunk.shape[0]:
            raise ValueError(
                f"the classifier returned {s.shape[0]} scores for {chunk.shape[0]} images; it must return one score per image"
            )
        scores.append(s)
    return torch.cat(scores)


def ink_score(images: torch.Tensor) -> torch.Tensor:
    """A classifier for drawings that needs no weights: the fraction of ink pixels.

    Ink is what is clearly darker than the image's own paper (its 90th percentile, less a
    quarter of the [-1, 1] range), so grey paper does not count as ink and a black square
    has none; a fixed threshold ranked a briefly trained model's samples by paper tone.
    """
    flat = images.flatten(1)
    paper = torch.quantile(flat, 0.9, dim=1, keepdim=True)
    return (flat < paper - 0.5).float().mean(dim=1)


def split_by_score(scores: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the n highest-scored (positives) and n lowest-scored (negatives) samples."""
    if not 1 <= n <= scores.shape[0] // 2:
        raise ValueError(f"n={n}: need 1 <= n <= {scores.shape[0] // 2} (half the {scores.shape[0]} scored samples)")
    order = torch.argsort(scores, descending=True)
    return order[:n], order[-n:].flip(0)


def mean_difference(q_pos: torch.Tensor, q_neg: torch.Tensor) -> torch.Tensor:
    """Eq 10: v = (1/n) Σ (q_i⁺ - q_i⁻) over paired latents (first axis: the pairs)."""
    if q_pos.shape != q_neg.shape:
        raise ValueError(f"positives {tuple(q_pos.shape)} and negatives {tuple(q_neg.shape)} must pair up")
    return (q_pos - q_neg).mean(0)


def supervised_direction(
    name: str, traj_h: torch.Tensor | None, x_T: torch.Tensor | None, pos: torch.Tensor, neg: torch.Tensor,
    timesteps: list[int], model: str = "", space: str = "h",
) -> Direction:
    """Eq 10 as a Direction, in h_{T:1} (`traj_h` [S, N, ...]) or in x_T (`x_T` [N, C, H, W])."""
    if space == "h":
        q = traj_h.transpose(0, 1)  # [N, S, ...]
        v = mean_difference(q[pos], q[neg])
    elif space == "x_T":
        v = mean_difference(x_T[pos], x_T[neg])[None]
    else:
        raise ValueError(f"space {space!r} is not one of {SPACES}")
    return Direction(name, v, list(timesteps), space=space, model=model, method="supervised", meta={"pairs": len(pos)})


def disentangle(v0: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
    """Eq 11: v = [I - V (VᵀV)^-1 Vᵀ] v0, removing the directions in `others` from v0."""
    if not others:
        return v0.clone()
    V = torch.stack([o.reshape(-1) for o in others], 1).double()
    x = v0.reshape(-1).double()
    coeff = torch.linalg.lstsq(V, x[:, None]).solution  # (VᵀV)^-1 Vᵀ v0 without forming the inverse
    return (x - (V @ coeff)[:, 0]).reshape(v0.shape).to(v0.dtype)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [-1, 1] -> uint8 [H, W, C] (the project's drawing tensor convention)."""
    return tensors.to_uint8(x).transpose(1, 2, 0)


def edit_grid(
    model: DiffusionModel, traj: Trajectory, directions: list[Direction], strengths: list[float], asyrrp: bool = False,
) -> np.ndarray:
    """Rows: each direction on each sample of `traj`; columns: the strengths. uint8 [H', W', C]."""
    rows = []
    for direction in directions:
        cols = [edit(model, traj, direction, s, asyrrp).x0 for s in strengths]
        for b in range(traj.x0.shape[0]):
            rows.append(np.concatenate([to_uint8(c[b]) for c in cols], axis=1))
    return np.concatenate(rows, axis=0)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"{path}: could not write the PNG (check the folder and the file name ending in .png)")
    return path
