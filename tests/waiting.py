"""Waiting in tests for something another thread or process does."""
from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """True as soon as `predicate()` is, False after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False
