"""How a frame source is doing: its state, frame rate and faults, for the kiosk's health page.

Shared by every source so that the loop and the operators read one kind of report.
"""
from __future__ import annotations

import collections
import zlib
from dataclasses import dataclass, field

import numpy as np

# ok: frames arrive; stale: none for a while; frozen: the same picture again and again;
# reconnecting: the device is being reopened; failed: gave up (or was closed).
STATES = ("ok", "stale", "frozen", "reconnecting", "failed", "closed")

# What the simulated camera can be told to do, and what a real one does wrong.
FAULT_KINDS = ("vanish", "freeze", "wrong_size", "wrong_dtype", "black", "white")


@dataclass(frozen=True)
class SourceHealth:
    state: str  # one of STATES
    fps: float  # frames per second over the last couple of seconds
    faults: dict[str, int] = field(default_factory=dict)  # fault kind -> times seen
    last_frame_age: float | None = None  # seconds since the newest frame; None: none yet
    frames: int = 0  # frames produced since the source opened
    source: str = ""

    def to_dict(self) -> dict:
        return {
            "state": self.state, "fps": round(self.fps, 2), "faults": dict(self.faults),
            "last_frame_age": None if self.last_frame_age is None else round(self.last_frame_age, 3),
            "frames": self.frames, "source": self.source,
        }


class RateMeter:
    """Frames per second over a sliding window of timestamps."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def tick(self, t: float) -> None:
        self._times.append(t)
        while self._times and self._times[0] < t - self.window_s:
            self._times.popleft()

    def rate(self, now: float) -> float:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0


def signature(image: np.ndarray) -> int:
    """A cheap fingerprint of a frame: CRC of every 4th pixel of every 4th row.

    Real sensors never repeat a frame bit for bit (their noise alone differs), so equal
    fingerprints mean the driver is handing out the same buffer again.
    """
    return zlib.crc32(np.ascontiguousarray(image[::4, ::4]).data)


class FreezeDetector:
    """Says a stream is frozen when its frames stay identical for `freeze_after` seconds."""

    def __init__(self, freeze_after: float = 1.0) -> None:
        self.freeze_after = freeze_after
        self._sig: int | None = None
        self._since: float | None = None  # when the current run of identical frames began
        self.frozen = False

    def update(self, image: np.ndarray, t: float) -> bool:
        """Feed a frame; returns True while the stream counts as frozen."""
        sig = signature(image)
        if sig != self._sig:
            self._sig, self._since, self.frozen = sig, t, False
        elif t - self._since >= self.freeze_after:
            self.frozen = True
        return self.frozen

    def reset(self) -> None:
        self._sig, self._since, self.frozen = None, None, False
