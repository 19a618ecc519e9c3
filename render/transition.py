"""The pixel blend of the original table: the projected image blends from the current
drawing to the new one (Paper IV, sec. 4).

Which drawing comes next, and how long each blend lasts, is the table's motion
(table/motion.py); this is the display's cheap half, which any backend can afford.
"""
from __future__ import annotations

import time

import cv2
import numpy as np


def ease(t: float) -> float:
    """Cubic ease-out: the new drawing shows at once and settles gently.

    The visitor sees an answer on the first frame of the fade (a fifth of it after one
    frame of a 0.5 s fade at 30 fps) rather than after a slow start.
    """
    t = min(max(t, 0.0), 1.0)
    return 1.0 - (1.0 - t) ** 3


class Blend:
    """Blends from the image on show to a new one over `duration` seconds.

    `start(new)` begins a fade from whatever is on show at that moment (so a fade that is
    interrupted by an even newer drawing continues from the half-blended picture);
    `frame(now)` gives the picture to show now.
    """

    def __init__(self, duration: float):
        self.duration = max(0.0, float(duration))
        self._from: np.ndarray | None = None
        self._to: np.ndarray | None = None
        self._current: np.ndarray | None = None
        self._t0 = 0.0
        self._fade = self.duration

    @property
    def current(self) -> np.ndarray | None:
        return self._current

    @property
    def fading(self) -> bool:
        return self._from is not None

    def cut(self, image: np.ndarray) -> None:
        """Show `image` at once, with no blend (latent steps and idle wander are smooth already)."""
        self._from = None
        self._to = image
        self._current = image

    def start(self, image: np.ndarray, now: float | None = None, duration: float | None = None) -> None:
        """Fade to `image` over `duration` seconds (the default duration if None)."""
        self._fade = self.duration if duration is None else max(0.0, float(duration))
        if self._current is None or self._fade == 0.0 or self._current.shape != image.shape:
            self.cut(image)
            return
        self._from = self._current
        self._to = image
        self._t0 = time.monotonic() if now is None else now

    def frame(self, now: float | None = None) -> np.ndarray | None:
        if self._from is None:
            return self._current
        now = time.monotonic() if now is None else now
        t = ease((now - self._t0) / self._fade)
        if t >= 1.0:
            self.cut(self._to)
            return self._current
        self._current = cv2.addWeighted(self._from, 1.0 - t, self._to, t, 0.0)
        return self._current
