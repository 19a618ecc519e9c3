"""How a TOML table becomes a frozen dataclass: by the field's type hints.

A field's type hint says what the file may hold (bool, int, float, str, Literal choices,
tuples, optional values, nested sections) and its metadata `bounded(lo, hi)` the range.
A class with its own `from_dict(d, path)` is built by it instead (its ValueError becomes a
ConfigError); one with a `check(path)` method is checked after it is built. Every error
names the key path (`display.mode: expected one of ...`).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import fields
from typing import Any, Literal


class ConfigError(ValueError):
    """The config file is missing or a key in it is unknown or has a bad value."""


def bounded(lo: float | None = None, hi: float | None = None) -> dict:
    """Field metadata: the loader refuses a number outside [lo, hi]."""
    return {"min": lo, "max": hi}


def section(data: Any, cls: type, path: str) -> Any:
    """The TOML table `data` at key `path` validated into the section class `cls`."""
    if hasattr(cls, "from_dict"):  # a section that validates itself
        try:
            return cls.from_dict(data, path)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table [{path}], got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{path}.{key}: unknown key; known keys: {', '.join(names)}")
    kwargs = {key: convert(value, hints[key], f"{path}.{key}", names[key].metadata) for key, value in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)
    return obj


def convert(value: Any, hint: Any, path: str, metadata: Any) -> Any:
    """`value` from TOML checked against the type hint (and metadata ranges) at key `path`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) or hasattr(hint, "from_dict"):
        return section(value, hint, path)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(value, inner[0], path, metadata)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not isinstance(value, int)):
            raise ConfigError(f"{path}: expected {'an integer' if hint is int else 'a number'}, got {value!r}")
        if not math.isfinite(value):  # NaN passes every range check, and a black projector follows
            raise ConfigError(f"{path}: {value} is not a finite number; give a number"
                              + (f" in [{metadata.get('min')}, {metadata.get('max')}]" if metadata.get("min") is not None
                                 or metadata.get("max") is not None else ""))
        lo, hi = metadata.get("min"), metadata.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{path}: {value} is out of range [{lo}, {hi}]")
        return hint(value)
    if hint is str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a camera index written as a number
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], f"{path}[{i}]", metadata) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(convert(v, a, f"{path}[{i}]", metadata) for i, (v, a) in enumerate(zip(value, args)))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return dict(value)
    raise TypeError(f"config field {path} has a type the loader does not know: {hint!r}")


