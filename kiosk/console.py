"""The operators' console: what the table sees while it runs, and the settings that can
change live, on a page the health endpoint serves (kiosk/console.html, plain HTML and a
little JavaScript).

- `view_jpeg()`: camera | sketch | drawing | projector, as last.png, small enough to refresh
  a few times a second; encoded in the HTTP thread, never in the table's.
- `settings()`: the live sections (binarize, tone, idle, transition) with their current
  values and the type and range of each field, so the page builds its form from them.
- `change(changes, save)`: applied through the same validated path as SIGHUP (the config
  file's content plus the changes, validated as a whole `Config`, then
  `Kiosk.apply_config`); with `save`, written into the file (atomically, old one kept
  as `.bak`). Changes not saved stay until the table restarts.
- `new_sheet()` and `reload_model()`: as the operator's button, and a fresh model.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import tomllib
import typing
from pathlib import Path
from typing import Literal

import cv2

from capture.binarize import METHODS, BinarizeParams
from config import LIVE_SECTIONS, Config, ConfigError
from config.edit import save_changes
from table.report import composite

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("console.html")
VIEW_PANEL = 160  # px height of each panel of the live view
# Fields the console does not offer: the grid is the model's, the kind is chosen at start.
FIXED = {("binarize", "resolution"), ("transition", "kind")}


class Console:
    def __init__(self, kiosk, config_path: str | None):
        self.kiosk = kiosk
        self.config_path = config_path or None
        self._unsaved: dict[str, dict] = {}  # applied live, not yet in the file
        self._lock = threading.Lock()

    def page(self) -> str:
        return PAGE.read_text(encoding="utf-8")

    # -- what the table sees

    def view_jpeg(self, quality: int = 80) -> bytes:
        table = self.kiosk.table
        row = composite(table, VIEW_PANEL)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(row, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise OSError("console: could not encode the live view")
        return data.tobytes()

    # -- live settings

    def settings(self) -> dict:
        config = self.kiosk.config
        parts = self.kiosk.parts
        # what the sketcher binarizes with now (the bundle's with the overrides); without parts, the overrides
        binarize = parts.sketcher.params if parts is not None else config.binarize.apply(BinarizeParams())
        current = {"binarize": binarize, "tone": config.tone, "idle": config.idle, "transition": config.transition}
        sections = {name: _fields(name, record) for name, record in current.items()}
        return {"sections": sections, "config_file": self.config_path, "can_save": self.config_path is not None,
                "unsaved": self._unsaved, "actions": {"new_sheet": self.kiosk.can_restart_tables,
                                                      "reload_model": self.kiosk.can_reload_model}}

    def change(self, changes: dict, save: bool = False) -> dict:
        """Apply (and with `save`, write) `{section: {key: value}}` of the live sections."""
        if not isinstance(changes, dict) or not all(isinstance(v, dict) for v in changes.values()):
            raise ConfigError("console: changes must be {section: {key: value}}")
        for section, values in changes.items():
            if section not in LIVE_SECTIONS:
                raise ConfigError(f"console: [{section}] cannot change while the table runs; edit the config file "
                                  f"and restart the table")
            for key in values:
                if (section, key) in FIXED:
                    raise ConfigError(f"console: {section}.{key} cannot change while the table runs; edit the "
                                      f"config file and restart the table")
        if save and self.config_path is None:
            raise ConfigError("console: this table runs without a config file, so there is nothing to save into")
        with self._lock:
            unsaved = _merge(self._unsaved, changes)
            new = Config.from_dict(_merge(self._file(), unsaved), source=self.config_path or "console")
            result = self.kiosk.apply_config(new)
            if save:
                backup = save_changes(self.config_path, unsaved)
                log.info("event=config_saved file=%s backup=%s sections=%s", self.config_path, backup,
                         ",".join(unsaved))
                unsaved = {}
                result["saved"] = str(self.config_path)
            self._unsaved = unsaved
        log.info("event=console_change changes=%s saved=%s", changes, bool(save))
        return result

    def _file(self) -> dict:
        if self.config_path is None:
            return {}
        try:
            return tomllib.loads(Path(self.config_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{self.config_path}: cannot read the config file to apply the change ({exc})") from None

    # -- actions

    def new_sheet(self) -> dict:
        """As the operator's button; where nothing would start the next table (the demo), nothing."""
        return {"new_sheet": self.kiosk.can_restart_tables and self.kiosk.new_sheet("console")}

    def reload_model(self) -> dict:
        return {"reload_model": self.kiosk.request_model_reload()}


def _merge(base: dict, changes: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in changes.items():
        out.setdefault(section, {}).update(values)
    return out


def _fields(section: str, record) -> dict:
    """{key: {value, type, min, max, choices}} of a section's dataclass, for the page's form."""
    hints = typing.get_type_hints(type(record))
    out = {}
    for f in dataclasses.fields(record):
        if (section, f.name) in FIXED:
            continue
        hint = hints[f.name]
        entry = {"value": getattr(record, f.name), "min": f.metadata.get("min"), "max": f.metadata.get("max")}
        if typing.get_origin(hint) is Literal:
            entry.update(type="choice", choices=list(typing.get_args(hint)))
        elif section == "binarize" and f.name == "method":
            entry.update(type="choice", choices=list(METHODS))
        elif hint in (bool, int, float, str):
            entry["type"] = hint.__name__
        else:
            continue  # tuples and tables are edited in the file
        out[f.name] = entry
    return out
