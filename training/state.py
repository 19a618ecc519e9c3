"""A run's training state on disk: RUN/state.pt (the newest) and RUN/state.prev.pt (the
one before it), so that a file damaged by a full disk, a dead machine or a copy cut short
costs one snapshot, not the run. Each is written atomically; reading falls back to the
previous file and says so."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from inference.checkpoint import CheckpointError
from storage import atomic_write, output_folder

log = logging.getLogger(__name__)


def previous_of(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_state(record: dict, path: Path) -> None:
    """Write `record` to `path`; what was there becomes the previous checkpoint."""
    path = Path(path)
    if path.is_file():
        # A kill between the two lines leaves only the previous file, which load_state reads.
        os.replace(path, previous_of(path))
    atomic_write(path, lambda f: torch.save(record, f))


def _read(path: Path, map_location) -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0][:120] if text else type(exc).__name__
        raise CheckpointError(f"{path}: damaged, not a whole checkpoint ({reason})") from exc


def load_state(path: Path, map_location="cpu") -> tuple[dict, Path]:
    """(the record, the file it came from): `path`, or its previous checkpoint when `path`
    is missing or damaged. A damaged newest file is renamed *.damaged, so that the next
    save does not push it over the good previous one."""
    path = Path(path)
    previous = previous_of(path)
    if not path.is_file() and not previous.is_file():
        raise FileNotFoundError(f"{path}: nothing to resume; run without --resume")
    try:
        return _read(path, map_location), path
    except (CheckpointError, FileNotFoundError) as exc:
        problem = str(exc) if path.is_file() else f"{path}: missing"
    if not previous.is_file():
        raise CheckpointError(f"{problem}, and there is no previous checkpoint {previous.name} to fall back to; "
                              f"start the run again with --force")
    try:
        record = _read(previous, map_location)
    except CheckpointError as exc:
        raise CheckpointError(f"{problem}; the previous checkpoint too: {exc}; start the run again "
                              f"with --force") from exc
    if path.is_file():
        os.replace(path, path.with_name(path.name + ".damaged"))
    log.warning("%s; resuming from the previous checkpoint %s (step %s)", problem, previous, record.get("step"))
    return record, previous


def prepare_run_folder(out: Path, state: Path, resume: bool, force: bool, what: str) -> None:
    """Refuse an `--out` that is a file, or that already holds a run (its `state`) when
    neither --resume nor --force is given; --force removes the old run's checkpoints."""
    output_folder(out)
    held = [p for p in (state, previous_of(state)) if p.is_file()]
    if held and not resume:
        if not force:
            raise FileExistsError(f"{out}: already holds a {what} run ({state.name}); continue it with --resume, "
                                  f"or start it again from scratch with --force")
        for p in held + [state.with_name(state.name + ".damaged")]:
            p.unlink(missing_ok=True)
        log.info("--force: %s starts again from scratch", out)


def load_same_widths(net: torch.nn.Module, weights: dict, what: str) -> None:
    """A new run starting from trained weights (`--init-generator`, `--init-encoder`): load
    `weights` into `net`, refusing any of other names or shapes before changing anything."""
    for name, tensor in net.state_dict().items():
        if name not in weights or weights[name].shape != tensor.shape:
            found = tuple(weights[name].shape) if name in weights else "missing"
            raise ValueError(f"{what}: {name} is {found}, this run's is {tuple(tensor.shape)}; give the "
                             f"settings (or preset) it was trained with")
    net.load_state_dict({name: weights[name] for name in net.state_dict()})
