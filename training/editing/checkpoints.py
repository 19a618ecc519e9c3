"""A researcher's StyleGAN2 as the project's generator, the object every editing module takes.

`load_stylegan(path)` reads, from a local file (nothing is downloaded):

- a rosinality/stylegan2-pytorch `.pt` with a `g_ema` state dict (or a bare g_ema state
  dict), or a pSp/e4e `.pt` with the generator under `state_dict` as `decoder.*`
  (`training.editing.rosinality`; `newsnow import` takes its encoder too);
- an NVlabs stylegan2-ada-pytorch network pickle (or a bare pickled G_ema), read without
  NVlabs' code (`training.editing.stylegan2_ada`);
- a New Snow training checkpoint (`inference.checkpoint`).

The published networks become `inference.networks.Generator(resample='fir')`
(`training.editing.stylegan_state`), which upsamples as they do, so the loaded generator
draws the images the original draws (with its stored noise: noise_mode='const'). Formats
are told apart by content, not suffix (`inference.model_files`). A file that is not one
of these, or lacks a tensor the network needs, is refused with a `CheckpointFormatError`:
one line naming the file, what it is and what to pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from training.editing.rosinality import WANTED, is_generator_state
from training.editing.stylegan_state import CheckpointFormatError, LoadedGenerator

__all__ = ["Checkpoint", "CheckpointFormatError", "LoadedGenerator", "load_stylegan", "open_checkpoint"]


@dataclass
class Checkpoint:
    """A model file told apart by its content: `format` is 'newsnow', 'psp', 'e4e',
    'rosinality' (a training snapshot or convert_weight.py's file, or a bare g_ema state
    dict) or 'stylegan2-ada' (a network pickle or a bare pickled G_ema); `record` what it holds."""

    path: Path
    format: str
    record: object


def open_checkpoint(path: str | os.PathLike, wanted: str = WANTED) -> Checkpoint:
    """Read a model file safely (no code runs) and say which format it is; anything else is
    refused with one line naming the file, what it is and what to pass (`wanted`)."""
    from inference.model_files import check_file, describe, read_torch

    path, kind = check_file(path, wanted)
    if kind == "pickle":
        from training.editing.stylegan2_ada import read_network_pickle

        return Checkpoint(path, "stylegan2-ada", read_network_pickle(path))
    record = read_torch(path, wanted)
    if isinstance(record, dict) and record.get("format") == "newsnow-checkpoint":
        return Checkpoint(path, "newsnow", record)
    state = record.get("state_dict") if isinstance(record, dict) else None
    parts = {str(k).split(".", 1)[0] for k in state} if isinstance(state, dict) else set()
    if {"encoder", "decoder"} <= parts:  # pSp's and e4e's net.state_dict()
        return Checkpoint(path, psp_flavour(record), record)
    if isinstance(record, dict) and ("g_ema" in record or is_generator_state(record) or "decoder" in parts):
        return Checkpoint(path, "rosinality", record)
    raise CheckpointFormatError(f"{path}: a torch file holding {describe(record)}, not a checkpoint of a "
                                f"StyleGAN2 generator or a sketch encoder; pass {wanted}")


def psp_flavour(record: dict) -> str:
    """'e4e' or 'psp': by the training options' encoder_type (e4e's files name Encoder4Editing)."""
    opts = record.get("opts")
    encoder_type = opts.get("encoder_type") if isinstance(opts, dict) else getattr(opts, "encoder_type", None)
    return "e4e" if encoder_type == "Encoder4Editing" else "psp"


def load_stylegan(path: str | os.PathLike, mapping_lr_multiplier: float | None = None) -> LoadedGenerator:
    """The generator of a rosinality `.pt`, a pSp/e4e `.pt` (its decoder), a stylegan2-ada
    `.pkl` or a New Snow checkpoint, told apart by content (any suffix).

    mapping_lr_multiplier: the mapping's lr multiplier where the file does not record it
    (rosinality's `args.lr_mlp`, NVlabs' pickled gain); default 0.01, rosinality's.
    """
    return generator_of(open_checkpoint(path), mapping_lr_multiplier)


def generator_of(checkpoint: Checkpoint, mapping_lr_multiplier: float | None = None) -> LoadedGenerator:
    path = checkpoint.path
    if checkpoint.format == "stylegan2-ada":
        from training.editing.stylegan2_ada import load_stylegan2_ada

        return load_stylegan2_ada(path, checkpoint.record)
    if checkpoint.format == "newsnow":
        from inference.checkpoint import load_model_checkpoint

        generator, _, _ = load_model_checkpoint(path)
        return LoadedGenerator(generator, path, "newsnow", "the checkpoint's tracked w_avg")
    from training.editing.rosinality import load_rosinality

    return load_rosinality(path, checkpoint.record, mapping_lr_multiplier=mapping_lr_multiplier,
                           file_format=checkpoint.format)
