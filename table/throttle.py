"""Warnings that cannot flood the journal: the first line of a burst, then at most one
line per interval for each event, carrying how many were held back. The counts of the
faults themselves live in the table's stats (the health endpoint), not in the log."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.logger, self.interval_s, self.clock = logger, interval_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, event: str, fields: str = "", *args, **kwargs) -> None:
        """`event=EVENT FIELDS` at warning level, unless one went out less than interval_s ago."""
        self.log(logging.WARNING, event, fields, *args, **kwargs)

    def info(self, event: str, fields: str = "", *args, **kwargs) -> None:
        self.log(logging.INFO, event, fields, *args, **kwargs)

    def log(self, level: int, event: str, fields: str = "", *args, key: str | None = None, **kwargs) -> None:
        """Held back per `key` (default: the event), so that kinds of one event throttle apart."""
        key = key or event
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return
            self._last[key] = now
            held = self._held.pop(key, 0)
        more = f" repeated={held} in_s={self.interval_s:g}" if held else ""
        self.logger.log(level, f"event={event} {fields}{more}".rstrip(), *args, **kwargs)
