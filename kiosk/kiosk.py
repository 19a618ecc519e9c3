"""Kiosk operations around the running table: systemd, watchdog, opening hours, the
table controller and the health endpoint.

`newsnow run` hands its prepared parts to `kiosk.run.run_kiosk`, which, with a `Kiosk`,

- starts the health endpoint (/status, /metrics) and the serial table controller;
- inside opening hours runs the table (`table.loop.Table`): READY=1 to systemd
  when the first frame is on the projector, WATCHDOG=1 from the display loop as long
  as no model call hangs, projector and IR light switched on over serial;
- outside them stops the table, blanks the display, switches projector and IR light
  off and sleeps, still answering the watchdog and the health endpoint, until the
  hours start again;
- turns the operator's "new sheet" button into a fresh start of the table.

The `Kiosk` watches the table only through `Table.status()` and the table's hooks; its config
sections are `[serial]`, `[hours]`, `[health]` and `[watchdog]` (config/kiosk.py).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from config import changed_sections
from inference.bundle import fit_for_table
from kiosk.console import Console
from kiosk.controller import Event, TableController
from kiosk.health import HealthServer
from kiosk.history import History
from kiosk.notify import Notifier
from kiosk.schedule import Schedule
from table.loop import Pulse
from table.stats import FAULT_KINDS

KIOSK_FAULT_KINDS = ("display_stall", "model_reload")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("newsnow")
    except PackageNotFoundError:
        return "unknown"


VERSION = _version()

log = logging.getLogger(__name__)


def model_info(parts) -> dict:
    """What the status shows about the model and the runtime: the providers the model's
    session really runs on (not every one the installed ONNX Runtime knows)."""
    backend = parts.backend
    sessions = getattr(backend, "sessions", None) or {}
    first = next(iter(sessions.values()), None)
    bundle = parts.bundle
    return {"bundle": str(getattr(bundle, "path", "")),
            "resolution": getattr(bundle, "resolution", None),
            "precision": getattr(bundle, "precision", None),
            "backend": getattr(backend, "name", "unknown"),
            "providers": list(first.get_providers()) if first is not None else [],
            "version": VERSION,
            # the bundle's model report: shown, never a reason to refuse the model
            "fit_for_table": fit_for_table(bundle),
            "warning": getattr(parts, "model_warning", None),
            "transition_reason": getattr(parts, "transition_reason", "")}


# Presses of the new-sheet button closer than this to the last one are one press.
BUTTON_DEBOUNCE_S = 1.0


class Kiosk:
    """Watches a table and runs the operations around it; one per process."""

    def __init__(self, config, *, notifier: Notifier | None = None, controller: TableController | None = None,
                 schedule: Schedule | None = None, clock: Callable[[], float] = time.monotonic,
                 serve_health: bool = True, any_port_if_busy: bool = False):
        self.config = config
        self.watchdog = config.watchdog
        self.notifier = notifier or Notifier()
        self.schedule = schedule or Schedule(config.hours)
        self._clock = clock
        self.t_start = clock()
        serial_cfg = config.serial
        if controller is None and serial_cfg.port:
            controller = TableController(serial_cfg, on_event=self._on_event)
        self.controller = controller
        if controller is not None:
            controller.on_event = self._on_event
        self._simulator = None
        health = config.health
        self.health: HealthServer | None = None
        self._health_cfg = health if serve_health and health.enabled else None
        self._any_port_if_busy = any_port_if_busy  # the demo: a busy port is no reason to stop
        self.table = None
        self.source = None
        self.model: dict = {}
        self.sleeping = False
        self.open: bool | None = None
        self.button_presses = 0
        self.button_ignored = 0  # presses within BUTTON_DEBOUNCE_S, or before the new table showed a frame
        self._last_press: float | None = None
        self._table_shown = False
        self._faults: dict[str, int] = {}  # the kiosk's own, plus those of finished table runs
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._last_display: float | None = None
        self.max_display_gap_s = 0.0
        self.display_frames = 0
        self.started = False  # the first frame reached the projector
        self.t_first_frame = 0.0
        self._hung_logged = False
        self.parts = None  # the prepared parts each new table is built from (run_kiosk, demo_kiosk)
        self.can_restart_tables = False  # run_kiosk builds a new table when one stops; the demo does not
        self.can_reload_model = False
        self.reprepare: Callable | None = None  # parts -> fresh parts (the bundle loaded again); run_kiosk's
        self._reloading = threading.Lock()  # one reload at a time
        self._config_lock = threading.Lock()
        self.console: Console | None = None
        self.history = History(self.snapshot)  # the console's plots of the last hour

    # -- life cycle

    def start(self) -> "Kiosk":
        if self._health_cfg is not None:
            cfg = self._health_cfg
            console = Console(self, self.config.path if Path(self.config.path or "-").is_file() else None) \
                if cfg.console else None
            self.console = console
            try:
                self.health = HealthServer(self.snapshot, cfg.host, cfg.port, console=console, token=cfg.token,
                                           allowed_hosts=cfg.allowed_hosts)
            except OSError as exc:
                if not self._any_port_if_busy:
                    raise
                log.warning("event=health_port_busy port=%d error=%r action=any_free_port", cfg.port, str(exc))
                self.health = HealthServer(self.snapshot, cfg.host, 0, console=console, token=cfg.token,
                                           allowed_hosts=cfg.allowed_hosts)
            self.health.start()
            self.history.start()
        if self.controller is not None and self.controller.config.port == "simulated":
            self._start_simulator()
        if self.controller is not None:
            self.controller.start()
        self.tick()
        return self

    def stop(self) -> None:
        self.notifier.stopping()
        self.history.stop()
        if self.health is not None:
            self.health.stop()
        if self.controller is not None:
            self.controller.close()
        if self._simulator is not None:
            self._simulator.close()
        self.notifier.close()

    def _start_simulator(self) -> None:
        """`serial.port = "simulated"`: the demo's table controller, on a pty."""
        from kiosk.controller_sim import TableSimulator

        self._simulator = TableSimulator().start()
        cfg = replace(self.controller.config, port=self._simulator.path)
        self.controller = TableController(cfg, on_event=self._on_event)

    # -- the table

    def attach(self, table, source=None, model: dict | None = None, parts=None) -> None:
        """Hook into a `Table` (its first-frame and per-frame hooks) before it runs; a table
        built from `parts` that a model reload replaced meanwhile gets the new model."""
        with self._config_lock:
            self.table = table
            if parts is not None and self.parts is not None and self.parts is not parts:
                table.swap_model(self.parts)
        self.source = source
        if model is not None:
            self.model = model
        table.on_first_frame.append(self.on_first_frame)
        table.on_display_frame.append(self.on_display_frame)
        self._last_display = None
        self._table_shown = False

    def detach(self) -> None:
        """The table finished: keep its fault counts for the totals."""
        table, self.table = self.table, None
        if table is not None:
            with self._lock:
                for kind, n in table.status().faults.items():
                    self._faults[kind] = self._faults.get(kind, 0) + n

    def on_first_frame(self) -> None:
        if not self.started:
            self.started = True
            self.t_first_frame = self._clock()
            log.info("event=first_frame_displayed after_s=%.2f", self.t_first_frame - self.t_start)
        self.notifier.ready(status="showing drawings")

    def on_display_frame(self, pulse: Pulse) -> None:
        """Every display frame: the watchdog, and stall accounting. Keep it cheap."""
        now = self._clock()
        last, self._last_display = self._last_display, now
        self.display_frames += 1
        self._table_shown = True
        if last is not None:
            gap = now - last
            if gap > self.max_display_gap_s:
                self.max_display_gap_s = gap
            if gap > self.watchdog.display_stall_s:
                self.count_fault("display_stall")
        hung = None
        if pulse.model_busy_s > self.watchdog.model_hang_s:
            hung = f"event=model_hung busy_s={pulse.model_busy_s:.1f}"
        elif self.watchdog.camera_restart_s and self.started:
            if pulse.camera_age_s > self.watchdog.camera_restart_s:
                hung = f"event=camera_lost no_frame_for_s={pulse.camera_age_s:.0f}"
        if hung is not None:
            if not self._hung_logged:  # no WATCHDOG=1 from now on: systemd restarts us
                self._hung_logged = True
                log.error("%s action=stop_watchdog", hung)
            return
        self._hung_logged = False
        self.notifier.watchdog()

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + 1

    def _on_event(self, event: Event) -> None:
        if event.name == "BUTTON" and ("NEW_SHEET" in event.args or "RESET" in event.args):
            self.new_sheet(f"button {','.join(event.args)}")

    def new_sheet(self, source: str) -> bool:
        """A fresh table (clean sheet, no stale drawing); False when the press is ignored."""
        now = self._clock()
        table = self.table
        # One new table at a time: a bouncing contact or an impatient visitor must not
        # restart the table again before the new one shows a drawing.
        if (table is None or not self._table_shown
                or (self._last_press is not None and now - self._last_press < BUTTON_DEBOUNCE_S)):
            self.button_ignored += 1
            return False
        self._last_press = now
        self.button_presses += 1
        log.info("event=new_sheet from=%s action=new_table", source)
        table.stop()  # run_kiosk starts the next table
        return True

    def request_model_reload(self) -> bool:
        """Load the bundle again (a retrained model copied over the old one) beside the running
        table, then swap it in between two frames; True when a reload started or is under way,
        False where nothing can reload (the demo)."""
        if not self.can_reload_model or self.reprepare is None:
            return False
        if not self._reloading.acquire(blocking=False):
            return True  # the one under way will show the bundle as it is on disk
        log.info("event=model_reload_requested")
        threading.Thread(target=self._reload_model, name="model-reload", daemon=True).start()
        return True

    @property
    def reloading(self) -> bool:
        return self._reloading.locked()

    def _reload_model(self) -> None:
        """In its own thread, while the table goes on with the old model: prepare fresh parts,
        then hand them to the running table (and to every table after it). A bundle that no
        longer loads keeps the running model."""
        try:
            old = self.parts
            try:
                fresh = self.reprepare(old)
                with self._config_lock:  # a change applied during the load holds for the new model too
                    fresh.config = self.config
                    sketcher = getattr(fresh, "sketcher", None)
                    if hasattr(sketcher, "set_overrides"):  # a bundle of another grid may refuse them
                        sketcher.set_overrides(self.config.binarize, self.config.path or "config")
            except Exception as exc:  # ValueError/OSError name the file; anything else is counted the same
                self.count_fault("model_reload")
                log.error("event=model_reload_failed error=%r action=kept_the_running_model", str(exc))
                return
            with self._config_lock:
                self.parts = fresh
                self.model = model_info(fresh)
                table = self.table
                if table is not None:
                    table.swap_model(fresh)
            log.info("event=model_reloaded bundle=%s backend=%s", self.model.get("bundle"), self.model.get("backend"))
        finally:
            self._reloading.release()

    # -- live configuration

    def apply_config(self, new) -> dict:
        """Take a new, validated config: its live sections go to the running table and to
        every table after it; the others are named as needing a restart. Used by SIGHUP
        (`systemctl reload newsnow`) and the console."""
        with self._config_lock:
            table = self.table
            if table is not None:
                live, restart = table.reconfigure(new)  # a bad binarize override raises, changing nothing
            else:
                live, restart = changed_sections(self.config, new)
            merged = replace(self.config, **{name: getattr(new, name) for name in live})
            self.config = merged
            if self.parts is not None:
                self.parts.config = merged
                if table is None and "binarize" in live and hasattr(self.parts.sketcher, "set_overrides"):
                    self.parts.sketcher.set_overrides(new.binarize, new.path or "config")  # the table shares it
        if live:
            log.info("event=config_applied sections=%s", ",".join(live))
        if restart:
            log.warning("event=config_needs_restart sections=%s action='systemctl restart newsnow'",
                        ",".join(restart))
        return {"applied": live, "needs_restart": restart}

    def reload(self) -> dict:
        """Re-read the config file (SIGHUP); a file that does not load changes nothing."""
        from config import Config, ConfigError

        try:
            result = self.apply_config(Config.load(self.config.path))
        except ConfigError as exc:
            log.error("event=reload_refused error=%r action=fix_the_file_then_reload", str(exc))
            return {"applied": [], "needs_restart": [], "error": str(exc)}
        if self.console is not None:  # the console's unsaved changes gave way to the file's values
            self.console.forget_unsaved()
        return result

    # -- opening hours

    def tick(self) -> bool:
        """Checks the hours (and switches the projector when they change); True while open."""
        with self._tick_lock:  # the hours thread and the run loop may both ask
            return self._tick()

    def _tick(self) -> bool:
        is_open = self.schedule.is_open()
        if is_open != self.open:
            self.open = is_open
            nxt = self.schedule.next_change()
            log.info("event=%s next_change=%s", "opening" if is_open else "closing",
                     nxt.isoformat(timespec="minutes") if nxt else "never")
            if self.controller is not None:
                serial_cfg = self.controller.config
                self.controller.set_led(serial_cfg.led_level if is_open else 0)
                self.controller.set_projector(is_open)
            self.notifier.status("open: showing drawings" if is_open else
                                 f"closed until {nxt:%a %H:%M}" if nxt else "closed")
        return is_open

    def sleep_until_open(self, stop: threading.Event, blank: Callable[[], None] | None = None) -> None:
        """Outside opening hours: blank the picture and wait, answering the watchdog. A table
        started while closed is up all the same: READY=1 now (else systemd, waiting for it,
        would restart the table all night), STATUS says why the screen is dark."""
        self.sleeping = True
        nxt = self.schedule.next_change()
        self.notifier.ready(status=f"closed until {nxt:%a %H:%M}" if nxt else "closed")
        try:
            while not stop.is_set() and not self.tick():
                self.notifier.watchdog()
                if blank is not None:
                    try:
                        blank()  # also keeps the window's events pumped
                    except Exception as exc:  # a display gone at night is counted, not fatal
                        self.count_fault("display")
                        log.debug("event=blank_failed error=%r", exc)
                stop.wait(min(self.watchdog.tick_s, (self.notifier.watchdog_interval_s or 2.0) / 4))
        finally:
            self.sleeping = False

    # -- status

    def problems(self, table_status: dict | None, camera: dict | None) -> list[str]:
        found = list((table_status or {}).get("problems", []))  # what the table itself finds
        if table_status is not None and not self.sleeping:
            age = table_status.get("last_frame_age_s")
            if age is None and self.started:  # no frame yet: give this table's camera as long as a stale one
                age = table_status.get("uptime_s")
            if age is not None and age > self.watchdog.camera_stale_s:
                found.append("camera: no frames")
        if camera and camera.get("state") not in ("ok", None) and not self.sleeping:
            found.append(f"camera: {camera['state']}")
        if self.controller is not None:
            status = self.controller.status()
            if not status["connected"]:
                found.append("serial: disconnected")
            if status["overheated"]:
                found.append("table: too hot")
        if table_status is not None and table_status.get("model_busy_s", 0.0) > self.watchdog.model_hang_s:
            found.append(f"model: hung (one call running for {table_status['model_busy_s']:.0f} s)")
        return found

    def _calibration(self) -> dict:
        calibration = getattr(self.parts, "calibration", None)
        if calibration is None or not getattr(calibration, "calibrated", False):
            return {"calibrated": False, "age_s": None}
        return {"calibrated": True, "age_s": round(calibration.age_days() * 86400.0)}

    def snapshot(self) -> dict:
        """Everything the health endpoint serves; safe from any thread."""
        table = self.table
        table_status = table.status().to_dict() if table is not None else None
        camera = None
        source = self.source
        if source is not None and hasattr(source, "health"):
            try:
                camera = source.health().to_dict()
            except Exception as exc:
                camera = {"state": "failed", "error": repr(exc)}
        problems = self.problems(table_status, camera)
        if self.sleeping or self.open is False:
            state = "sleeping"
        elif not self.started or table_status is None or table_status.get("state") == "starting":
            state = "starting"
        elif problems:
            state = "degraded"
        elif table_status.get("idle"):
            state = "idle"
        else:
            state = "running"
        with self._lock:
            faults = {kind: 0 for kind in FAULT_KINDS + KIOSK_FAULT_KINDS} | self._faults
        for kind, n in (table_status or {}).get("faults", {}).items():
            faults[kind] = faults.get(kind, 0) + n
        serial = self.controller.status() if self.controller is not None else {"configured": False}
        # Only the table controller switches (and confirms) the projector's power.
        power = (serial.get("projector") or "unknown") if self.controller is not None else "not controlled"
        nxt = self.schedule.next_change()
        ts = table_status or {}
        return {
            "state": state,
            "problems": problems,
            "uptime_s": round(self._clock() - self.t_start, 1),
            # the source's own view (state, fps), the age as the table saw frames arrive
            "camera": {"state": (camera or {}).get("state", "unknown"), "fps": (camera or {}).get("fps"),
                       "source": (camera or {}).get("source", ""), "last_frame_age_s": ts.get("last_frame_age_s"),
                       "frames": ts.get("frames_captured", (camera or {}).get("frames", 0))},
            "projector": {"power": power, "display_frames": self.display_frames,
                          "max_display_gap_s": round(self.max_display_gap_s, 3)},
            "button_presses": self.button_presses,
            "button_ignored": self.button_ignored,
            "serial": serial,
            # not problems (they would read as degraded): the table runs, but someone should know
            "warnings": ts.get("warnings") or [w for w in (self.model.get("warning"),) if w],
            "model": {**self.model, "backend": ts.get("backend") or self.model.get("backend"),
                      "transition": ts.get("transition"),
                      "transition_reason": ts.get("transition_reason") or self.model.get("transition_reason"),
                      "reloading": self.reloading},
            "calibration": self._calibration(),
            "fps": {"display": ts.get("display_fps_recent"), "inference": ts.get("inference_fps")},
            "latency_ms": ts.get("latency_ms") or {},
            "stroke_latency_ms": ts.get("stroke_latency_ms") or {},
            "faults": faults,
            "counts": {k: ts.get(k) for k in ("frames_displayed", "inferences", "generations",
                                               "skipped_unchanged", "dropped_stale")},
            "schedule": {"open": bool(self.open), "next_change": nxt.isoformat(timespec="minutes") if nxt else None},
            "watchdog": {"enabled": self.notifier.watchdog_interval_s is not None,
                         "interval_s": self.notifier.watchdog_interval_s, "pings": self.notifier.pings},
        }
