"""What every frame source shares: the latest-wins hand-off of frames to `read`.

A source has `read(timeout) -> Frame | None` (the newest frame not yet returned; None when
none arrives in time), `health() -> SourceHealth`, `close()`, and works as a context
manager. The camera, the video replay and the simulated pen camera all keep to it, so
the loop's capture stage does not care which one it reads.
"""
from __future__ import annotations

import threading
from typing import Callable

import cv2
import numpy as np

from capture.frames import Frame
from capture.health import RateMeter, SourceHealth


def to_gray(image: np.ndarray) -> np.ndarray:
    """Camera pictures come as BGR (or BGRA) unless the driver gives gray."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    return image


class FrameSource:
    """The part every source shares: latest-wins hand-off of frames to `read`."""

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self.name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._returned = -1  # sequence of the last frame `read` gave out
        self._closed = False
        self._meter = RateMeter()
        self._faults: dict[str, int] = {}

    def _fault(self, kind: str) -> None:
        with self._cond:
            self._faults[kind] = self._faults.get(kind, 0) + 1

    def _publish(self, image: np.ndarray, t: float) -> None:
        with self._cond:
            seq = 0 if self._latest is None else self._latest.sequence + 1
            self._latest = Frame(image, t, seq, self.name)
            self._meter.tick(t)
            self._cond.notify_all()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not returned before; None if none arrives within `timeout` s."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed
                or (self._latest is not None and self._latest.sequence > self._returned),
                timeout,
            )
            if self._closed or self._latest is None or self._latest.sequence <= self._returned:
                return None
            self._returned = self._latest.sequence
            return self._latest

    def _health(self, state: str) -> SourceHealth:
        now = self._clock()
        with self._cond:
            latest = self._latest
            return SourceHealth(
                state="closed" if self._closed else state,
                fps=self._meter.rate(now),
                faults=dict(self._faults),
                last_frame_age=None if latest is None else now - latest.t_capture,
                frames=0 if latest is None else latest.sequence + 1,
                source=self.name,
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
