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

from inference.networks import Generator, PSPEncoder
from storage import atomic_write

CHECKPOINT_FORMAT = "newsnow-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a New Snow checkpoint."""


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
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (pass the .pt file training wrote)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a New Snow checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if record.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {record.get('format_version')!r} is not "
                              f"{CHECKPOINT_VERSION}; export it with the New Snow version that wrote it")
    generator = _build(Generator, record["generator"], "generator", path)
    encoder = _build(PSPEncoder, record["encoder"], "encoder", path) if record.get("encoder") else None
    return generator, encoder, dict(record.get("meta") or {})
