"""Tell systemd how the table is doing: sd_notify over $NOTIFY_SOCKET.

A `Type=notify` unit waits for READY=1 (sent once the first frame is on the
projector) and, with `WatchdogSec=`, kills and restarts the service when WATCHDOG=1
stops arriving. The protocol is one datagram of `KEY=value` lines to a unix socket,
so the standard library's socket module is all it takes. Outside systemd (no
$NOTIFY_SOCKET) every call does nothing, so the demo and the tests run unchanged.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; silent when not started by systemd.

    `watchdog()` is meant to be called from the display loop on every frame: it
    sends at most one WATCHDOG=1 per half watchdog interval, so calling it at 60 fps
    costs a clock read.
    """

    def __init__(self, environ: dict | None = None, clock: Callable[[], float] = time.monotonic):
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        self.watchdog_interval_s = _watchdog_interval(env)
        self._clock = clock
        self._last_ping = -float("inf")
        self._sock: socket.socket | None = None
        self.ready_sent = False
        self.pings = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Sends one notification (e.g. "READY=1", "STATUS=..."); False when it could not."""
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), address)
            return True
        except OSError as exc:
            # systemd went away or the socket is gone: the table must keep running.
            log.warning("event=notify_failed socket=%s error=%r", self.address, exc)
            return False

    def ready(self, status: str = "") -> None:
        """READY=1, once: systemd now considers the service started."""
        if self.ready_sent:
            return
        self.ready_sent = True
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        """A one-line status that `systemctl status newsnow` shows."""
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """WATCHDOG=1, rate-limited to twice per watchdog interval."""
        if self.watchdog_interval_s is None:
            return
        now = self._clock()
        if now - self._last_ping >= self.watchdog_interval_s / 2:
            self._last_ping = now
            if self.send("WATCHDOG=1"):
                self.pings += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env) -> float | None:
    """WatchdogSec as systemd passes it (WATCHDOG_USEC, for WATCHDOG_PID if set)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process (e.g. a wrapper script)
    try:
        value = int(usec)
    except ValueError:
        log.warning("event=bad_watchdog_usec value=%r", usec)
        return None
    return value / 1e6 if value > 0 else None
