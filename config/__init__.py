"""The installation's one configuration: a TOML file validated once, at load, into frozen
dataclasses, before anything opens a camera or a display.

Each `[section]` of the file is a typed field of `Config`: the table's sections
(config/table.py), the kiosk's (config/kiosk.py) and the opening hours (config/hours.py).
Unknown keys and bad values are refused with the key path and the file
(`/etc/newsnow/table.toml: display.mode: expected one of ...`); see config/schema.py.
"""
from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from config.hours import OpeningHours
from config.kiosk import HealthConfig, SerialConfig, WatchdogConfig
from config.schema import ConfigError, convert
from config.table import (BinarizeOverrides, CalibrationConfig, CameraConfig, ChangeConfig, DisplayConfig,
                          IdleConfig, ModelConfig, StatsConfig, TransitionConfig)
from render.tone import Tone

__all__ = ["Config", "ConfigError", "LIVE_SECTIONS", "changed_sections"]

# What an operator may change while the table runs (SIGHUP, the console): how the sheet is
# read and what the visitor sees. The rest (camera, model, display, calibration, the kiosk's
# sections, and transition.kind) takes a restart.
LIVE_SECTIONS = ("binarize", "tone", "idle", "transition")


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = CameraConfig()
    binarize: BinarizeOverrides = BinarizeOverrides()
    model: ModelConfig = ModelConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    display: DisplayConfig = DisplayConfig()
    tone: Tone = Tone()
    transition: TransitionConfig = TransitionConfig()
    idle: IdleConfig = IdleConfig()
    change: ChangeConfig = ChangeConfig()
    stats: StatsConfig = StatsConfig()
    serial: SerialConfig = SerialConfig()
    hours: OpeningHours = OpeningHours()
    health: HealthConfig = HealthConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    path: str = ""  # the file it came from, for messages

    @classmethod
    def sections(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "path"]

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>") -> "Config":
        known = cls.sections()
        for key in data:
            if key not in known:
                raise ConfigError(f"{source}: {key}: unknown section; known sections: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        try:
            kwargs: dict[str, Any] = {name: convert(data[name], hints[name], name, {}) for name in known if name in data}
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cls(**kwargs, path=source)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found; pass --config with the table's TOML file") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, not a config file; pass the table's TOML file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))


def changed_sections(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """(sections that differ and may change live, those that differ and need a restart)."""
    changed = [name for name in Config.sections() if getattr(old, name) != getattr(new, name)]
    live = [name for name in changed if name in LIVE_SECTIONS
            and not (name == "transition" and old.transition.kind != new.transition.kind)]
    return live, [name for name in changed if name not in live]
