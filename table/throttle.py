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
        now = self.clock()
        with self._lock:
            last = self._last.get(event)
            if last is not None and now - last < self.interval_s:
                self._held[event] = self._held.get(event, 0) + 1
                return
            self._last[event] = now
            held = self._held.pop(event, 0)
        more = f" repeated={held} in_s={self.interval_s:g}" if held else ""
        self.logger.warning(f"event={event} {fields}{more}".rstrip(), *args, **kwargs)
