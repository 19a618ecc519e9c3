"""The latest-wins hand-off between the table's threads.

A one-slot mailbox: `post` overwrites whatever is waiting (the reader only ever wants the
newest frame, sketch or drawing), so a fast producer never queues up stale work and a slow
consumer never holds the producer back. Neither side waits on the other: `post` takes a
lock for a pointer swap, `take_nowait` the same; only `take` with a timeout may sleep, and
only the consumer calls it.
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: T | None = None
        self._full = False
        self.posted = 0
        self.overwritten = 0  # items replaced before anyone took them (dropped as stale)

    def post(self, item: T) -> bool:
        """Leave `item` for the reader; True if it replaced an unread item."""
        with self._cond:
            replaced = self._full
            self._item, self._full = item, True
            self.posted += 1
            self.overwritten += replaced
            self._cond.notify()
        return replaced

    def take_nowait(self) -> T | None:
        """The waiting item (and empty the slot), or None at once."""
        with self._cond:
            item, self._item, self._full = self._item, None, False
            return item

    def take(self, timeout: float | None = None) -> T | None:
        """Wait up to `timeout` seconds for an item; None if none came."""
        with self._cond:
            if not self._full:
                self._cond.wait(timeout)
            item, self._item, self._full = self._item, None, False
            return item

    def pending(self) -> bool:
        return self._full
