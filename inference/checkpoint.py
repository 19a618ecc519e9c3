"""Self-describing model checkpoints: what training writes and `newsnow export` reads.

A checkpoint is one torch file holding, for the generator and (optionally) the pSp
encoder, the construction arguments (`init_kwargs`) and the `state_dict`, plus a `meta`
dict (binarize params, provenance: dataset, licence, steps/kimg, date, command, ...).
Only tensors, numbers, strings, lists and dicts go in, so it loads with weights_only=True.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from inference.model_files import ModelFileError, check_file, read_torch
from inference.networks import Generator, PSPEncoder
from storage import atomic_write

CHECKPOINT_FORMAT = "newsnow-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ModelFileError):
    """A checkpoint file is missing, unreadable or not a New Snow checkpoint."""


WANTED = "the model.pt that `newsnow train encoder` wrote (or a run's generator.pt)"
IMPORT_HINT = "make a bundle of it with `newsnow import {path} --out BUNDLE`"


def foreign_kind(record) -> str | None:
    """What a torch file that is not New Snow's holds, told by its keys, with what to do."""
    if not isinstance(record, dict):
        return None
    state = record.get("state_dict")
    if isinstance(state, dict) and any(str(k).startswith("encoder.") for k in state):
        return "a pSp or e4e checkpoint (encoder and decoder); " + IMPORT_HINT
    if "g_ema" in record or ("input.input" in record and "style.1.weight" in record):
        return ("a rosinality StyleGAN2 generator without an encoder; train one for it with `newsnow train "
                "encoder PAIRS --generator {path}` (docs/models.md)")
    return None


def _net_record(net: torch.nn.Module) -> dict:
    return {"init_kwargs": dict(net.init_kwargs),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}


def save_model_checkpoint(path: str | os.PathLike, generator: Generator, encoder: PSPEncoder | None = None,
                          meta: dict | None = None) -> Path:
    """Write generator (+ encoder) + meta atomically (temp file, then os.replace): a crash
    mid-save never leaves a truncated checkpoint where the last good one was."""
    record = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "generator": _net_record(generator),
        "encoder": _net_record(encoder) if encoder is not None else None,
        "meta": dict(meta or {}),
    }
    return atomic_write(path, lambda f: torch.save(record, f))


def _build(cls, rec: dict, what: str, path: Path):
    try:
        net = cls(**rec["init_kwargs"])
        net.load_state_dict(rec["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the {what} record does not rebuild ({exc})") from exc
    return net.eval()


def load_model_checkpoint(path: str | os.PathLike) -> tuple[Generator, PSPEncoder | None, dict]:
    """Rebuild (generator, encoder or None, meta) from a checkpoint, networks in eval mode."""
    try:
        path, kind = check_file(path, WANTED)
        if kind == "pickle":  # told by content: NVlabs' snapshots are plain pickles, torch files are not
            raise CheckpointError(f"{path}: a pickle (an NVlabs network snapshot?), not a New Snow checkpoint; "
                                  f"train an encoder for its generator with `newsnow train encoder PAIRS "
                                  f"--generator {path}` (docs/models.md)")
        record = read_torch(path, WANTED)
    except CheckpointError:
        raise
    except ModelFileError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        foreign = foreign_kind(record)
        if foreign:
            raise CheckpointError(f"{path}: {foreign.format(path=path)}")
        raise CheckpointError(f"{path}: a torch file, but not a New Snow checkpoint (no format "
                              f"{CHECKPOINT_FORMAT!r}); pass {WANTED}")
    if record.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {record.get('format_version')!r} is not "
                              f"{CHECKPOINT_VERSION}; export it with the New Snow version that wrote it")
    generator = _build(Generator, record["generator"], "generator", path)
    encoder = _build(PSPEncoder, record["encoder"], "encoder", path) if record.get("encoder") else None
    return generator, encoder, dict(record.get("meta") or {})
