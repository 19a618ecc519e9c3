"""The opening hours against the clock: is the table open now, and when does that change.

The hours themselves are the `[hours]` config section (config/hours.py).
"""
from __future__ import annotations

import datetime as dt
from typing import Callable

from config.hours import OpeningHours


class Schedule:
    """Opening hours plus the clock: `is_open()` now, with the wall clock injectable."""

    def __init__(self, hours: OpeningHours, now: Callable[[], dt.datetime] | None = None):
        self.hours = hours
        self._now = now or (lambda: dt.datetime.now().astimezone())

    def now(self) -> dt.datetime:
        return self._now()

    def is_open(self) -> bool:
        return self.hours.is_open(self._now())

    def next_change(self) -> dt.datetime | None:
        return self.hours.next_change(self._now())
