"""The kiosk's run: a table under the kiosk until stopped, a fresh table after each night,
each press of the "new sheet" button and each model reload; the signals that stop it or
reload its config; and the demo's kiosk.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Callable

from config.hours import OpeningHours
from kiosk.controller import TableController
from kiosk.kiosk import Kiosk, model_info  # noqa: F401 (model_info: kiosk.run has always offered it)
from kiosk.notify import Notifier
from kiosk.schedule import Schedule

log = logging.getLogger(__name__)


def run_kiosk(parts, open_table: Callable, *, kiosk: Kiosk | None = None, display=None,
              stop: threading.Event | None = None, seconds: float | None = None,
              handle_signals: bool = False, reprepare: Callable | None = None) -> Kiosk:
    """Runs the table under the kiosk until `stop` is set (or `seconds` pass, for tests).

    `parts` comes from `table.assemble.prepare` (everything checked before the
    display opens), `open_table(parts, display=...)` builds a `Table`; a new one is
    built after each night and each press of the "new sheet" button, from `kiosk.parts`.
    `reprepare(parts)` gives fresh parts (the bundle loaded again) when the console asks for a
    model reload; the kiosk prepares them beside the running table and swaps them in.
    """
    from render.display import Display

    config = parts.config
    kiosk = kiosk or Kiosk(config)
    kiosk.parts = parts
    kiosk.can_restart_tables = True
    kiosk.can_reload_model = reprepare is not None
    kiosk.reprepare = reprepare
    stop = stop or threading.Event()
    kiosk.model = model_info(parts)
    own_display = display is None
    if own_display:
        display = Display(config.display.mode, config.display.size, config.display.index)
    t_end = None if seconds is None else time.monotonic() + seconds
    if handle_signals:
        _handle_signals(kiosk, stop)

    def remaining() -> float | None:
        return None if t_end is None else max(0.0, t_end - time.monotonic())

    def blank() -> None:
        import numpy as np

        w, h = config.display.size
        display.show(np.zeros((h, w, 3), np.uint8))

    kiosk.start()
    try:
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            if not kiosk.tick():
                waker = _timer(stop, remaining())
                kiosk.sleep_until_open(waker, blank)
                continue
            parts = kiosk.parts  # a reloaded model's, once one was
            table = open_table(parts, display=display)
            kiosk.attach(table, source=parts.source, parts=parts)
            done = threading.Event()
            ticker = threading.Thread(target=_watch_hours, args=(kiosk, table, stop, done), name="kiosk-hours",
                                      daemon=True)
            ticker.start()
            try:
                table.run(remaining())
            finally:
                done.set()
                kiosk.detach()
            if display.quit_requested():
                break
    finally:
        kiosk.stop()
        if own_display:
            display.close()
    snap = kiosk.snapshot()
    log.info("event=stopped uptime_s=%s display_frames=%d max_display_gap_ms=%.0f faults=%s",
             snap["uptime_s"], kiosk.display_frames, kiosk.max_display_gap_s * 1000,
             ",".join(f"{k}:{v}" for k, v in sorted(snap["faults"].items())) or "none")
    return kiosk


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM (systemctl stop) and SIGINT call `stop`, which ends the run cleanly."""
    import signal

    def handler(signum, frame):
        log.info("event=stopping signal=%s", signal.Signals(signum).name)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _handle_signals(kiosk: Kiosk, stop: threading.Event) -> None:
    """Stop: the table, then the kiosk. SIGHUP (systemctl reload): re-read the config, off
    the signal handler's thread (the handler interrupts the display loop)."""
    import signal

    def stop_all():
        stop.set()
        table = kiosk.table
        if table is not None:
            table.stop()

    def reload(signum, frame):
        threading.Thread(target=kiosk.reload, name="config-reload", daemon=True).start()

    stop_on_signals(stop_all)
    signal.signal(signal.SIGHUP, reload)


def demo_kiosk(parts, table) -> Kiosk:
    """The kiosk for `newsnow demo`: the health endpoint (any free port if the configured one
    is busy) and, unless the config names a real one, the simulated table controller. The
    demo is always open: it ignores [hours]."""
    config = parts.config
    serial_cfg = config.serial
    if not serial_cfg.port:
        serial_cfg = replace(serial_cfg, port="simulated")
    kiosk = Kiosk(config, controller=TableController(serial_cfg), notifier=Notifier({}),
                  schedule=Schedule(OpeningHours()), any_port_if_busy=True)
    kiosk.model = model_info(parts)
    kiosk.parts = parts
    kiosk.attach(table, source=parts.source)
    return kiosk.start()


def _watch_hours(kiosk: Kiosk, table, stop: threading.Event, done: threading.Event) -> None:
    """While a table runs (until `done`): stop it at closing time or when asked to."""
    while not done.is_set():
        if stop.is_set() or not kiosk.tick():
            table.stop()
            return
        done.wait(kiosk.watchdog.tick_s)


def _timer(stop: threading.Event, seconds: float | None) -> threading.Event:
    """An event that is set with `stop`, or after `seconds` (None: never on its own)."""
    if seconds is None:
        return stop
    done = threading.Event()

    def wait():
        stop.wait(seconds)
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    return done
