"""The bundle's torch generator, for the editing methods that need weights or gradients.

SeFa reads the style affine weights; inversion and the gradient 3D edit back-propagate
through the synthesis network. Both come from the bundle's `model.safetensors` through
the torch backend (a bundle exported without weights cannot be used for them).
"""
from __future__ import annotations

import numpy as np

from training.editing.sefa import sefa


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
