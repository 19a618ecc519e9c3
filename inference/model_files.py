"""What a model file is, told by its content (never its suffix), and one line when it is wrong.

Every command that takes a researcher's or a curator's file (`newsnow import`, `export`,
`edit --generator`, `train encoder --generator`) reads it through here, so a wrong file
gets one line naming the file, what it is, and what to do: never torch's own error text
(which is long, version-specific and advises loading unsafely), never an unsafe load.

Kinds by the first bytes:
- `torch`: a zip archive as `torch.save` writes it (read with torch's weights-only loader);
- `torch-legacy`: torch's pre-1.6 format (a pickle that starts with torch's magic number);
- `pickle`: any other pickle (NVlabs' network snapshots; read by a restricted unpickler);
- `safetensors`, `onnx`, `empty`, `folder` / `bundle`, `unknown`.
"""
from __future__ import annotations

import os
import pickle
import re
import struct
import zipfile
from pathlib import Path


class ModelFileError(ValueError):
    """A model file is missing, incomplete, of another kind than asked, or holds code."""


PICKLE_PROTOCOL = b"\x80"
ZIP_MAGIC = b"PK\x03\x04"
# torch's legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c
TORCH_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def sniff(path: str | os.PathLike) -> str:
    """The kind of a file or folder from its content (see the module's list)."""
    path = Path(path)
    if path.is_dir():
        return "bundle" if (path / "bundle.json").is_file() else "folder"
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "empty"
    if head.startswith(ZIP_MAGIC):
        return "torch"
    if head.startswith(PICKLE_PROTOCOL):
        return "torch-legacy" if head[2:2 + len(TORCH_LEGACY_MAGIC)] == TORCH_LEGACY_MAGIC else "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        (length,) = struct.unpack("<Q", head[:8])
        if 0 < length < 100_000_000:
            return "safetensors"
    if head[:1] == b"\x08" and (b"onnx" in head or b"pytorch" in head):
        return "onnx"
    return "unknown"


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size} bytes"


# what `sniff` found, where it is not a checkpoint at all
_NOT_A_CHECKPOINT = {
    "bundle": "a model bundle folder (what the table loads), not a checkpoint",
    "folder": "a folder, not a file",
    "safetensors": "a safetensors file (bare tensors without the network's description)",
    "onnx": "an ONNX graph (an exported model, not a checkpoint)",
    "unknown": "not a checkpoint (neither a torch file nor a pickle: its first bytes are not either's)",
}


def check_file(path: str | os.PathLike, wanted: str) -> tuple[Path, str]:
    """(path, kind) of a file that may hold a checkpoint; else ModelFileError.

    wanted: what the command takes, for the advice (e.g. "a pSp or e4e checkpoint (.pt)").
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; pass {wanted}")
    kind = sniff(path)
    if kind == "empty":
        raise ModelFileError(f"{path}: an empty file (0 bytes): the copy failed; copy the checkpoint again")
    if kind in _NOT_A_CHECKPOINT:
        raise ModelFileError(f"{path}: {_NOT_A_CHECKPOINT[kind]}; pass {wanted}")
    if kind == "torch" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: an incomplete torch file ({_size(path)}; the archive's directory, which "
                             f"torch writes last, is missing): the download or copy was cut short; copy it again")
    if kind == "torch" and not _has_torch_pickle(path):
        raise ModelFileError(f"{path}: a zip archive but not a torch file (no data.pkl in it: a data set?); "
                             f"pass {wanted}")
    return path, kind


def _has_torch_pickle(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_torch(path: Path, wanted: str):
    """torch.load with weights_only (tensors and plain values; no code runs), argparse
    Namespaces allowed (rosinality's and pSp's training options); errors as one line."""
    import argparse

    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:
            raise ModelFileError(
                f"{path}: a torch file whose pickle refers to {found.group(1)} (code, not tensors); New Snow reads "
                f"only tensors and plain values and never runs a file's code: save the network's state_dict() "
                f"with torch.save, or pass {wanted}") from None
        raise ModelFileError(f"{path}: a damaged torch file (its pickle does not read); copy it again") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) and exc.errno is not None:
            raise ModelFileError(f"{path}: cannot read ({exc.strerror.lower()})") from None
        raise ModelFileError(f"{path}: an incomplete or damaged torch file ({_size(path)}; a tensor's data is "
                             f"missing or cut short): copy it again") from None


def describe(record) -> str:
    """A short phrase for what a loaded file holds, for 'is not ...' messages."""
    if isinstance(record, dict):
        keys = sorted(map(str, record))
        shown = ", ".join(repr(k) for k in keys[:6]) + (", ..." if len(keys) > 6 else "")
        return f"a dict with {shown}" if keys else "an empty dict"
    name = getattr(record, "class_name", None) or type(record).__name__
    return f"a {name}"
