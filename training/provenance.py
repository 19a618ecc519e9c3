"""Where a model came from, as the model card and bundle.json record it: the date, the
New Snow version and git commit that trained it, and the command as it was typed."""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[1]


def git_commit(tree: Path = SOURCE_TREE) -> str:
    """HEAD of the checkout the code runs from, '+changes' when files differ from it;
    'unknown' outside a git checkout (an installed wheel)."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def version() -> str:
    try:
        return metadata.version("newsnow")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def software() -> dict:
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "newsnow_version": version(),
            "git_commit": git_commit()}


def command_line(argv: list[str] | None = None) -> str:
    """The command as run (`newsnow ...`, however the process was started)."""
    return shlex.join(["newsnow", *(sys.argv[1:] if argv is None else argv)])


def resume_command(argv: list[str] | None = None) -> str:
    """The command that continues this run: the same, without --force, with --resume."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--force"]
    return command_line(args if "--resume" in args else args + ["--resume"])
