"""The generator an edit works on: a bundle's, or a researcher's StyleGAN2 checkpoint.

`open_generator(path)` gives the backend the editing commands use (`map`, `generate`,
`bundle` with the shapes): a bundle folder opens on ONNX Runtime; a checkpoint file
(rosinality `.pt`, stylegan2-ada `.pkl`, New Snow checkpoint; `training.editing.checkpoints`)
runs its torch generator. SeFa reads the style affine weights; inversion and the gradient
3D edit back-propagate through the synthesis network: `torch_generator(backend)` gives
the torch Generator of either (a bundle's from its `model.safetensors`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.editing.sefa import sefa

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorInfo:
    """What the editing code reads of a Bundle, for a generator that came from a checkpoint."""

    path: Path
    resolution: int
    channels: int
    num_ws: int
    w_dim: int
    z_dim: int
    w_avg: np.ndarray  # float32 [w_dim]


class TorchGenerator:
    """A torch Generator behind the backend interface (numpy float32 in and out, stored noise)."""

    def __init__(self, generator, path: Path):
        self.generator = generator.cpu().eval().requires_grad_(False)
        self.name = "torch/cpu"
        self.bundle = GeneratorInfo(Path(path), generator.resolution, generator.channels, generator.num_ws,
                                    generator.w_dim, generator.z_dim,
                                    generator.w_avg.detach().numpy().astype(np.float32))

    def map(self, z: np.ndarray) -> np.ndarray:
        """z [B, z_dim] -> w [B, w_dim] (untruncated)."""
        import torch

        with torch.no_grad():
            return self.generator.mapping(torch.as_tensor(np.asarray(z, np.float32)))[:, 0].numpy()

    def generate(self, wplus: np.ndarray) -> np.ndarray:
        """W+ [B, num_ws, w_dim] -> images [B, C, R, R] in [-1, 1]."""
        import torch

        with torch.no_grad():
            w = torch.as_tensor(np.asarray(wplus, np.float32))
            return self.generator.synthesis(w, noise_mode="const").clamp(-1, 1).numpy()


def open_generator(source=None, mapping_lr_multiplier: float | None = None):
    """Backend for a bundle folder (default: the demo model) or a StyleGAN2 checkpoint file
    (mapping_lr_multiplier: where the file does not record it, see `load_stylegan`)."""
    from inference.bundle import DEMO_BUNDLE, Bundle
    from inference.runtime import open_backend

    path = Path(source) if source is not None else DEMO_BUNDLE
    if path.is_dir():
        return open_backend(Bundle.load(path))
    from training.editing.checkpoints import load_stylegan

    loaded = load_stylegan(path, mapping_lr_multiplier)
    g = loaded.generator
    log.info("%s: %s generator, %d px x %d channels, %d W+ codes of %d, mapping lr multiplier %g; w_avg from %s",
             path, loaded.format, g.resolution, g.channels, g.num_ws, g.w_dim,
             g.init_kwargs["mapping_lr_multiplier"], loaded.w_avg_source)
    if loaded.format in ("psp", "e4e"):
        log.info("%s: its %s encoder is not used for editing; `newsnow import %s --out BUNDLE` puts the whole "
                 "sketch model on the table", path, loaded.format, path)
    return TorchGenerator(g, path)


def torch_generator(backend):
    """The torch Generator of a backend from `open_generator`."""
    return backend.generator if isinstance(backend, TorchGenerator) else load_generator(backend.bundle)


def load_generator(bundle):
    """inference.networks.Generator of a bundle (path or Bundle), eval mode, on the CPU."""
    from inference.runtime import open_backend

    backend = open_backend(bundle, kind="torch")
    return backend.generator.cpu().eval()


def affine_layers(generator) -> list[tuple[str, int, np.ndarray]]:
    """(name, W+ index, affine weight [channels, w_dim]) of every style affine, in order.

    The W+ index says which code of W+ feeds that affine: block b's conv0 and conv1 use
    consecutive codes and its toRGB shares its code with the next block's conv0.
    """
    weights = dict(generator.style_affine_weights())
    out, index = [], 0
    for b, block in enumerate(generator.synthesis.blocks):
        names = (["conv0"] if block.conv0 is not None else []) + ["conv1", "torgb"]
        for j, part in enumerate(names):
            name = f"synthesis.blocks.{b}.{part}"
            if name not in weights:
                raise ValueError(f"generator: no style affine named {name!r}; "
                                 f"has {sorted(weights)[:4]}...")
            out.append((name, index + j, weights[name].detach().cpu().numpy()))
        index += block.num_conv
    return out


def sefa_directions(generator, layers: np.ndarray, k: int = 10, include_torgb: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """SeFa on the affines that read the chosen W+ layers (toRGB affines left out by default)."""
    chosen = [weight for name, index, weight in affine_layers(generator)
              if index in set(int(i) for i in layers) and (include_torgb or not name.endswith("torgb"))]
    if not chosen:
        raise ValueError(f"sefa: no style affine reads W+ layers {list(layers)}; choose other layers")
    return sefa(chosen, k=k)
