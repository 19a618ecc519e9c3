"""The operators' console: what the table sees while it runs, the settings that can
change live and the last hour's figures, on a page the health endpoint serves
(kiosk/console.html, plain HTML and a little JavaScript).

- `view_jpeg()`: camera | sketch | drawing | projector, as last.png, small enough to refresh
  a few times a second; encoded in the HTTP worker, never in the table's threads.
- `settings()`: the live sections (binarize, tone, idle, transition) with their current
  values and, per field, a label, a unit, the type and the range the validation enforces, so
  the page builds its form from them; and which buttons work here (or why not).
- `change(changes, save)`: the running config's live sections plus the changes, validated
  as a whole `Config` by the same loader as the file and SIGHUP, then `Kiosk.apply_config`.
  With `save`, written into the file (atomically, the old one kept as `.bak`). A change is
  either applied and listed as unsaved, or applied and saved: a save that fails leaves it
  applied and unsaved, and says why.
- `history()`: the kiosk's samples of the last hour (display fps, stroke latency, faults,
  camera age) for the page's small plots.
- `new_sheet()` and `reload_model()`: as the operator's button, and a fresh model.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
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

# What the operator reads beside each field: (label, unit). The ranges come from the
# validation itself (the config's field metadata; binarize's from BINARIZE_RANGES).
FIELD_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("binarize", "method"): ("Threshold method", ""),
    ("binarize", "window"): ("Neighbourhood size (odd)", "sketch px"),
    ("binarize", "offset"): ("Ink darker than the local mean by", "x paper"),
    ("binarize", "k"): ("Sauvola k", ""),
    ("binarize", "flat_field"): ("Paper-brightness scale (0: off)", "sketch px"),
    ("binarize", "min_contrast"): ("Least ink contrast", "x paper"),
    ("binarize", "min_depth"): ("Least ink depth", "grey levels"),
    ("binarize", "speck_area"): ("Dust: specks smaller than", "sketch px²"),
    ("binarize", "invert"): ("Bright ink on dark paper", ""),
    ("tone", "contrast"): ("Contrast", "x"),
    ("tone", "saturation"): ("Saturation", "x"),
    ("tone", "gamma"): ("Gamma (> 1 darker mid-tones)", ""),
    ("tone", "brightness"): ("Brightness", "of full range"),
    ("tone", "composite_strokes"): ("Show the visitor's strokes over the drawing", ""),
    ("tone", "stroke_opacity"): ("Darkness of the shown strokes", ""),
    ("idle", "after_s"): ("Idle after no drawing for", "s"),
    ("idle", "wander_speed"): ("Idle wander speed", "drawings/s"),
    ("idle", "psi"): ("Idle variety (truncation psi; 0: the average drawing)", ""),
    ("idle", "fps"): ("Idle frame rate", "frames/s"),
    ("transition", "duration_s"): ("Transition length", "s"),
    ("transition", "latent_steps"): ("Latent transition steps", ""),
}
SECTION_TEXT = {"binarize": "Reading the sheet (binarization)", "tone": "What the projector shows (tone)",
                "idle": "When nobody draws (idle)", "transition": "From one drawing to the next (transition)"}
SLIDER_SPAN = 256  # a number range at most this wide gets a slider; wider ones (seconds of idle) a box


def binarize_ranges(resolution: int) -> dict[str, tuple]:
    """The ranges `capture.binarize` enforces: (min, max, and which end is open)."""
    return {"window": (3, resolution - 1), "offset": (0.0, 1.0, "max"), "k": (0.0, 1.0, "min"),
            "flat_field": (0, resolution), "min_contrast": (0.0, 1.0, "max"), "min_depth": (0, 255),
            "speck_area": (0, resolution * resolution)}


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

    def history(self) -> dict:
        return self.kiosk.history.to_dict()

    # -- live settings

    def settings(self) -> dict:
        config = self.kiosk.config
        parts = self.kiosk.parts
        # what the sketcher binarizes with now (the bundle's with the overrides); without parts, the overrides
        binarize = parts.sketcher.params if parts is not None else config.binarize.apply(BinarizeParams())
        current = {"binarize": binarize, "tone": config.tone, "idle": config.idle, "transition": config.transition}
        sections = {name: _fields(name, record, binarize.resolution) for name, record in current.items()}
        actions = self.actions()
        return {"sections": sections, "titles": SECTION_TEXT, "config_file": self.config_path,
                "can_save": actions["save"]["enabled"], "unsaved": self._unsaved, "actions": actions}

    def actions(self) -> dict:
        """Each button: whether it works on this table, and if not, why (the page shows it)."""
        def action(enabled: bool, why: str) -> dict:
            return {"enabled": enabled, "why": "" if enabled else why}

        return {
            "save": action(self.config_path is not None,
                           "this table runs without a config file (the demo, or no --config): Apply changes the "
                           "running table only"),
            "new_sheet": action(self.kiosk.can_restart_tables,
                                "this table is not run by `newsnow run` (the demo runs a single table)"),
            "reload_model": action(self.kiosk.can_reload_model,
                                   "only `newsnow run` can load the model again (the demo keeps its model)"),
        }

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
            # From what runs, not from the file: nothing changed means nothing to apply (the
            # demo has no file; a file edited since is SIGHUP's business).
            running = self.kiosk.config
            live = {name: _section_values(running, name) for name in LIVE_SECTIONS}
            checked = Config.from_dict(_merge(live, changes), source=self.config_path or "console")
            new = dataclasses.replace(running, **{name: getattr(checked, name) for name in LIVE_SECTIONS})
            result = self.kiosk.apply_config(new)
            unsaved = _merge(self._unsaved, {s: v for s, v in changes.items() if s in result["applied"]})
            self._unsaved = unsaved
            if save and unsaved:
                try:
                    backup = save_changes(self.config_path, unsaved)
                except ConfigError as exc:  # applied, not saved: the console says both
                    log.error("event=config_save_failed file=%s error=%r unsaved=%s", self.config_path, str(exc),
                              ",".join(unsaved))
                    result["save_error"] = str(exc)
                else:
                    log.info("event=config_saved file=%s backup=%s sections=%s", self.config_path, backup,
                             ",".join(unsaved))
                    self._unsaved = {}
                    result["saved"] = str(self.config_path)
            result["unsaved"] = self._unsaved
        log.info("event=console_change changes=%s saved=%s", changes, "saved" in result)
        return result

    def forget_unsaved(self) -> None:
        """The file was read again (SIGHUP): what runs is the file's now."""
        with self._lock:
            self._unsaved = {}

    # -- actions

    def new_sheet(self) -> dict:
        """As the operator's button; where nothing would start the next table (the demo), nothing."""
        return {"new_sheet": self.kiosk.can_restart_tables and self.kiosk.new_sheet("console")}

    def reload_model(self) -> dict:
        return {"reload_model": self.kiosk.request_model_reload()}


def _section_values(config: Config, name: str) -> dict:
    """A live section of the running config as the file would hold it."""
    record = getattr(config, name)
    if name == "binarize":
        return dict(record.values)
    return dataclasses.asdict(record)


def _merge(base: dict, changes: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in changes.items():
        out.setdefault(section, {}).update(values)
    return out


def _fields(section: str, record, resolution: int) -> dict:
    """{key: {value, type, min, max, step, slider, label, unit, choices}} of a section's
    dataclass, for the page's form."""
    hints = typing.get_type_hints(type(record))
    ranges = binarize_ranges(resolution) if section == "binarize" else {}
    out = {}
    for f in dataclasses.fields(record):
        if (section, f.name) in FIXED:
            continue
        hint = hints[f.name]
        lo, hi, *open_end = ranges.get(f.name, (f.metadata.get("min"), f.metadata.get("max")))
        label, unit = FIELD_TEXT.get((section, f.name), (f.name, ""))
        entry = {"value": getattr(record, f.name), "min": lo, "max": hi, "label": label, "unit": unit}
        if open_end:  # [0, 1): the end itself is refused
            entry[f"{open_end[0]}_open"] = True
        if typing.get_origin(hint) is Literal:
            entry.update(type="choice", choices=list(typing.get_args(hint)))
        elif section == "binarize" and f.name == "method":
            entry.update(type="choice", choices=list(METHODS))
        elif hint in (bool, int, float, str):
            entry["type"] = hint.__name__
        else:
            continue  # tuples and tables are edited in the file
        if entry["type"] in ("int", "float") and lo is not None and hi is not None:
            entry["slider"] = hi - lo <= SLIDER_SPAN
            if entry["type"] == "int":
                entry["step"] = 2 if (section, f.name) == ("binarize", "window") else 1
            else:  # about a thousand steps over the range, on a round number
                entry["step"] = 10.0 ** math.floor(math.log10((hi - lo) / 1000.0))
        out[f.name] = entry
    return out
