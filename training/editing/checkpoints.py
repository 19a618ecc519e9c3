"""A researcher's StyleGAN2 as the project's generator, the object every editing module takes.

`load_stylegan(path)` reads, from a local file (nothing is downloaded):

- a rosinality/stylegan2-pytorch `.pt` with a `g_ema` state dict, or a pSp/e4e `.pt` with
  the generator under `state_dict` as `decoder.*` (`training.editing.rosinality`);
- an NVlabs stylegan2-ada-pytorch network `.pkl`, read without NVlabs' code
  (`training.editing.stylegan2_ada`);
- a New Snow training checkpoint (`inference.checkpoint`).

The published networks become `inference.networks.Generator(resample='fir')`
(`training.editing.stylegan_state`), which upsamples as they do, so the loaded generator
draws the images the original draws (with its stored noise: noise_mode='const'). A file that is not one of these, or lacks a tensor
the network needs, is refused with a `CheckpointFormatError` naming what is missing.
"""
from __future__ import annotations

import os
from pathlib import Path

from training.editing.stylegan_state import CheckpointFormatError, LoadedGenerator

__all__ = ["CheckpointFormatError", "LoadedGenerator", "load_stylegan"]


def load_stylegan(path: str | os.PathLike, mapping_lr_multiplier: float | None = None) -> LoadedGenerator:
    """The generator of a rosinality `.pt`, a stylegan2-ada `.pkl` or a New Snow checkpoint.

    mapping_lr_multiplier: rosinality files do not store it (their lr_mlp, default 0.01);
    give it if the network was trained with another.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: no such file (pass a rosinality .pt, a stylegan2-ada .pkl "
                                    f"or a New Snow checkpoint)")
    if path.suffix == ".pkl":
        from training.editing.stylegan2_ada import load_stylegan2_ada

        return load_stylegan2_ada(path)
    from training.editing.rosinality import load_rosinality, read_torch_file

    record = read_torch_file(path)
    if isinstance(record, dict) and record.get("format") == "newsnow-checkpoint":
        from inference.checkpoint import load_model_checkpoint

        generator, _, _ = load_model_checkpoint(path)
        return LoadedGenerator(generator, path, "newsnow", "the checkpoint's tracked w_avg")
    return load_rosinality(path, record, mapping_lr_multiplier=mapping_lr_multiplier)
