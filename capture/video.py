"""Replay of a recording of the table (any video OpenCV decodes), looping, as gray frames.

Used to rerun a visitor's session through the loop and to test a new binarization on
real footage; reading happens in the caller's thread, paced at the file's frame rate.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Callable

import cv2
import numpy as np

from capture.frames import Frame
from capture.health import SourceHealth
from capture.source import FrameSource, to_gray


class VideoFileSource(FrameSource):
    """A recording of the table, played in a loop.

    Pacing: `fps` frames per second (None: the file's own rate) times `speed`; speed 0
    hands out frames as fast as `read` is called.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None, loop: bool = True,
                 speed: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        path = os.fspath(path)
        super().__init__(f"replay:{path}", clock)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"replay {path}: no such file; record one or fix the path")
        if speed < 0:
            raise ValueError(f"replay {path}: speed must be >= 0 (0 = as fast as read), got {speed}")
        if fps is not None and not fps > 0:
            raise ValueError(f"replay {path}: fps must be positive or None (the file's rate), got {fps}")
        self.path, self.loop, self.speed = path, loop, speed
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise OSError(f"replay {path}: OpenCV cannot decode it; convert it to MJPEG .avi or H.264 .mp4")
        file_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps or (file_fps if file_fps and 0 < file_fps < 1000 else 30.0)
        self.loops = 0
        self._t0: float | None = None
        self._index = 0  # frames handed out
        self._ended = False
        self._lock = threading.Lock()

    def _next_image(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok and self.loop:
            self.loops += 1
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
            if not ok:  # some containers cannot seek: open again
                self._cap.release()
                self._cap = cv2.VideoCapture(self.path)
                ok, image = self._cap.read()
        if not ok:
            if self.loop:
                self._fault("failed_read")
            self._ended = True
            return None
        return to_gray(image)

    def read(self, timeout: float = 1.0) -> Frame | None:
        with self._lock:
            if self._closed or self._ended:
                return None
            if self.speed > 0:
                if self._t0 is None:
                    self._t0 = self._clock()
                wait = self._t0 + self._index / (self.fps * self.speed) - self._clock()
                if wait > timeout:
                    time.sleep(max(timeout, 0))
                    return None
                if wait > 0:
                    time.sleep(wait)
            image = self._next_image()
            if image is None:
                return None
            self._index += 1
            self._publish(image, self._clock())
            return super().read(0)

    def health(self) -> SourceHealth:
        h = self._health("ok")
        if self._ended and not self._closed:
            return dataclasses.replace(h, state="failed" if self.loop else "closed")
        return h

    def close(self) -> None:
        with self._lock:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._cap.release()
