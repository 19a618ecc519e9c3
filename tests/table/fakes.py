"""Small stand-ins for the loop's parts, so loop tests control timing and faults exactly.

The fake backend is a deterministic numpy "model" with the backend interface of
docs/CONTRACTS.md; the scripted source plays a function of time as camera frames.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from capture.frames import Frame

R = 32
CAMERA = (160, 120)


@dataclass
class FakeBundle:
    resolution: int = R
    channels: int = 1
    num_ws: int = 4
    w_dim: int = 8
    z_dim: int = 8
    w_avg: np.ndarray = field(default_factory=lambda: np.zeros(8, np.float32))
    verdict: dict | None = None  # bundle.json's model report verdict (None: never evaluated)


class FakeBackend:
    """sketch -> inverted sketch; encode/generate through a mean-ink W+; counts every call."""

    name = "fake/numpy"

    def __init__(self, delay_s: float = 0.0, fail: bool = False):
        self.bundle = FakeBundle()
        self.delay_s = delay_s
        self.fail = fail
        self.calls: dict[str, int] = {"sketch_to_drawing": 0, "encode": 0, "generate": 0, "map": 0}
        self._lock = threading.Lock()

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("fake model failure")

    def sketch_to_drawing(self, x):
        self._call("sketch_to_drawing")
        return -np.asarray(x, np.float32)

    def encode(self, x):
        self._call("encode")
        ink = float((np.asarray(x) < 0).mean())
        return np.full((1, self.bundle.num_ws, self.bundle.w_dim), ink, np.float32)

    def generate(self, wplus):
        self._call("generate")
        level = float(np.tanh(np.asarray(wplus).mean()))
        return np.full((1, 1, R, R), level, np.float32)

    def map(self, z):
        self._call("map")
        return np.asarray(z, np.float32)[:, : self.bundle.w_dim]


def paper(ink_boxes=()) -> np.ndarray:
    """A camera frame of lit paper (grey 200) with dark boxes (x0, y0, x1, y1) of ink."""
    w, h = CAMERA
    image = np.full((h, w), 200, np.uint8)
    image[::7, ::5] = 190  # some texture, so the frame is never flat
    for x0, y0, x1, y1 in ink_boxes:
        image[y0:y1, x0:x1] = 30
    return image


def threshold_sketcher(image: np.ndarray) -> np.ndarray:
    """Binarizer stand-in: the centred square, resized to R x R, ink below 128."""
    h, w = image.shape
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    small = cv2.resize(image[y0:y0 + side, x0:x0 + side], (R, R), interpolation=cv2.INTER_AREA)
    return np.where(small < 128, 0, 255).astype(np.uint8)


class ScriptedSource:
    """Frames from `script(t)` at `fps`; the script may return None (no frame) or raise."""

    def __init__(self, script, fps: float = 60.0):
        self.script = script
        self.fps = fps
        self.t0 = time.monotonic()
        self.sequence = 0
        self.closed = False

    def read(self, timeout: float = 1.0):
        time.sleep(1.0 / self.fps)
        now = time.monotonic()
        image = self.script(now - self.t0)
        if image is None:
            return None
        self.sequence += 1
        return Frame(image, now, self.sequence, "scripted")

    def close(self):
        self.closed = True


class NullDisplay:
    """A display that only counts frames (for tests of the loop, not of pygame)."""

    def __init__(self, size=(96, 64)):
        self.size = size
        self.shown = 0
        self.last = None

    def show(self, rgb):
        self.shown += 1
        self.last = rgb

    def quit_requested(self):
        return False
