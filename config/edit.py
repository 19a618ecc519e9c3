"""Saving a change an operator made live back into the config file, keeping the file's
comments and layout: each `key = value` line is replaced in its `[section]` (or added to
it, or the section added at the end). The result is read back and must say exactly what
was asked, else nothing is written (a file that uses inline tables or dotted keys for
those sections is refused with a message, not rewritten in a way nobody wrote).

`save_changes` writes the new file atomically and keeps the previous one as `<file>.bak`.
"""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from config.schema import ConfigError
from storage import atomic_write


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for what the config holds
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to a config file")


def set_values(text: str, changes: dict[str, dict], where: str = "config") -> str:
    """`text` with every `changes[section][key]` set; checked by reading it back."""
    lines = text.splitlines()
    for section, values in changes.items():
        header = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\]\s*(#.*)?$")
        start = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if start is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines.append(f"[{section}]")
            start = len(lines) - 1
        for key, value in values.items():
            end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines))
            assignment = re.compile(rf"^\s*{re.escape(key)}\s*=")
            found = next((i for i in range(start + 1, end) if assignment.match(lines[i])), None)
            line = f"{key} = {toml_value(value)}"
            if found is not None:
                lines[found] = line
            else:
                last = max([i for i in range(start, end) if lines[i].strip()] or [start])
                lines.insert(last + 1, line)
    new = "\n".join(lines) + "\n"
    try:
        data = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: the edited file would not be valid TOML ({exc}); edit it by hand") from None
    for section, values in changes.items():
        for key, value in values.items():
            got = data.get(section, {}).get(key)
            if got != (list(value) if isinstance(value, tuple) else value):
                raise ConfigError(f"{where}: {section}.{key} is written in a form this editor does not change "
                                  f"(an inline table or a dotted key); edit the file by hand")
    return new


def save_changes(path: str | Path, changes: dict[str, dict]) -> Path:
    """Write `changes` into the config file at `path` (the old file kept as `<path>.bak`)."""
    path = Path(path)
    try:
        old = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file to save into it ({exc.strerror})") from None
    new = set_values(old, changes, str(path))
    backup = path.with_name(path.name + ".bak")
    mode = path.stat().st_mode & 0o777  # a config holding the console's token stays as private as it was
    try:
        atomic_write(backup, lambda f: f.write(old), binary=False, mode=mode)
        atomic_write(path, lambda f: f.write(new), binary=False, mode=mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot save the config ({exc.strerror}); the running table keeps the "
                          f"change until it restarts") from None
    return backup
