"""table.mailbox: the latest-wins hand-off never blocks either side."""
from __future__ import annotations

import threading
import time

from table.mailbox import Mailbox


def test_latest_wins_and_overwrites_are_counted():
    """Only the newest item is delivered; the ones it replaced are counted as dropped."""
    box: Mailbox[int] = Mailbox()
    assert box.post(1) is False
    assert box.post(2) is True and box.post(3) is True
    assert box.take_nowait() == 3 and box.take_nowait() is None
    assert box.posted == 3 and box.overwritten == 2


def test_stalled_consumer_never_blocks_the_producer():
    """With nobody taking, 100k posts finish at once (no queue fills, no wait)."""
    box: Mailbox[int] = Mailbox()
    t0 = time.perf_counter()
    for i in range(100_000):
        box.post(i)
    assert time.perf_counter() - t0 < 2.0
    assert box.take_nowait() == 99_999 and box.overwritten == 99_999


def test_stalled_producer_never_blocks_the_display():
    """take_nowait on an empty box returns None at once; take(timeout) returns after the timeout."""
    box: Mailbox[int] = Mailbox()
    t0 = time.perf_counter()
    for _ in range(10_000):
        assert box.take_nowait() is None
    assert time.perf_counter() - t0 < 1.0
    t0 = time.perf_counter()
    assert box.take(0.05) is None
    assert 0.04 < time.perf_counter() - t0 < 1.0


def test_take_wakes_when_an_item_arrives():
    """A consumer waiting in take() gets a posted item without waiting for its timeout."""
    box: Mailbox[str] = Mailbox()
    threading.Timer(0.05, box.post, args=("sketch",)).start()
    t0 = time.perf_counter()
    assert box.take(5.0) == "sketch"
    assert time.perf_counter() - t0 < 2.0
