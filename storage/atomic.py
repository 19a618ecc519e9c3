"""Atomic file writes: a temporary file beside the target, flushed and fsynced, made
readable (mkstemp makes it private, and a kiosk user must read bundles and
calibrations), then os.replace'd over the target and the folder fsynced. A crash or an
error at any moment leaves the old file whole and no temporary file behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, IO


class DiskFull(OSError):
    """The disk filled up while writing `path`: says where, how much was free and roughly
    how much the file needs (what had been written when it failed, a lower bound)."""

    def __init__(self, path: Path, written: int | None = None):
        folder = next((p for p in (path, *path.parents) if p.exists()), Path("."))
        free = shutil.disk_usage(folder).free
        needs = f", the file needs more than {max(written, 1) / 1e6:.1f} MB" if written is not None else ""
        super().__init__(errno.ENOSPC, f"{path}: the disk is full ({free / 1e6:.0f} MB free{needs}); free some "
                                       f"space on it and run the command again")
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = True,
                 mode: int = 0o644) -> Path:
    """Call `write(f)` on a temporary file and put it in place of `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DiskFull(path, written) from exc
        raise
    try:  # the rename itself survives a power cut only once the folder is on disk
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        pass  # some file systems cannot fsync a folder; the file is in place regardless
    return path


def atomic_write_json(path: str | os.PathLike, record, indent: int = 1) -> Path:
    """`record` as JSON (UTF-8, a final newline), atomically."""
    text = json.dumps(record, indent=indent) + "\n"
    return atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_png(path: str | os.PathLike, image) -> Path:
    """A uint8 image as PNG, atomically; a failure raises (cv2.imwrite only returns False)."""
    import cv2
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: the image ({getattr(image, 'shape', '?')}) cannot be encoded as PNG")
    return atomic_write(path, lambda f: f.write(data.tobytes()))


def output_folder(path: str | os.PathLike) -> Path:
    """`path` as a folder to write into, made if missing; a file there is refused in words
    (mkdir's own error would name a sub-folder and an errno)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: is a file, not a folder; give --out a folder (new or a run's)")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"{parent}: is a file, so {path} cannot be made; give --out a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path
