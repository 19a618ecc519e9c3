"""The IR camera under the table, through OpenCV (V4L2 on Linux).

USB cameras fail in known ways, and a museum table must live through all of them:
- after an unplug, `VideoCapture.read()` can block forever: so reads run in their own
  thread, and a watchdog abandons a read that takes longer than `read_timeout` and opens a
  new capture (a thread stuck inside a driver call cannot be killed; it is left behind and
  releases its capture if the call ever returns);
- a stream may hand out the same buffer again and again while `isOpened()` stays true:
  identical frames for `freeze_after` seconds count as frozen and the camera is reopened;
- a single failed read is normal; `max_failed_reads` in a row mean the device is gone;
- reopening is retried with exponential back-off until the camera comes back.

Name the camera by a stable path (/dev/v4l/by-id/...): after a replug the kernel may give
it another /dev/videoN while the old one is still held by an abandoned read.
"""
from __future__ import annotations

import dataclasses
import math
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import cv2
import numpy as np

from capture.health import FreezeDetector, SourceHealth
from capture.source import FrameSource, to_gray

log = logging.getLogger(__name__)


class CameraError(OSError):
    """The camera cannot be opened or configured; the message names the device."""


class VideoCaptureLike(Protocol):
    """What the camera source needs of `cv2.VideoCapture` (tests substitute a fake)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class CameraSettings:
    """The IR camera: which device, its mode, and how patient to be with it."""

    device: int | str = 0  # index, or a path such as /dev/v4l/by-id/...-video-index0
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    exposure: float | None = None  # driver units (V4L2: 100 us); None leaves auto exposure
    gain: float | None = None  # None leaves the driver's gain
    read_timeout: float = 1.0  # a read longer than this: the camera is gone
    open_timeout: float = 5.0  # opening longer than this: try again later
    stale_after: float = 0.5  # no new frame for this long: health says "stale"
    freeze_after: float = 2.0  # identical frames for this long: "frozen", reopen
    max_failed_reads: int = 5  # failed reads in a row before reopening
    backoff: float = 0.5  # first wait before reopening, doubled each failure...
    backoff_max: float = 8.0  # ...up to this
    give_up_after: int = 0  # failed opens in a row before "failed"; 0: never give up

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"camera.{name}: {why} (got {getattr(self, name)!r})")

        if isinstance(self.device, bool) or not isinstance(self.device, (int, str)) or self.device == "":
            raise bad("device", "must be a device index or a device path")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 16 <= v <= 8192:
                raise bad(name, "must be an integer from 16 to 8192")
        for name in ("fps", "read_timeout", "open_timeout", "stale_after", "freeze_after",
                     "backoff", "backoff_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise bad(name, "must be a positive number")
        for name in ("exposure", "gain"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise bad(name, "must be a number or absent")
        for name in ("max_failed_reads", "give_up_after"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "max_failed_reads" else 0):
                raise bad(name, "must be a whole number" + (" of at least 1" if name == "max_failed_reads" else " >= 0"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CameraSettings":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"camera.{unknown[0]}: unknown setting; known are {', '.join(names)}")
        return cls(**d)


def camera_index(device: int | str) -> tuple[int | str, int]:
    """(what to give cv2.VideoCapture, which backend) for a device index or path.

    OpenCV's V4L2 backend opens devices by index only, so a path such as
    /dev/v4l/by-id/usb-...-video-index0 (stable across replugs) is resolved to its
    /dev/videoN and opened as N. Other strings (a GStreamer pipeline, a URL) go to any
    backend that takes them.
    """
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    linux = sys.platform.startswith("linux")
    if isinstance(device, int):
        return device, cv2.CAP_V4L2 if linux else cv2.CAP_ANY
    m = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(device))
    if linux and m:
        return int(m.group(1)), cv2.CAP_V4L2
    return device, cv2.CAP_ANY


def open_opencv_camera(settings: CameraSettings) -> cv2.VideoCapture:
    """Open and configure the camera through OpenCV (V4L2 on Linux)."""
    device, api = camera_index(settings.device)
    cap = cv2.VideoCapture(device, api)
    if not cap.isOpened():
        cap.release()
        raise CameraError(
            f"camera {settings.device!r}: cannot open it; check that it is plugged in, that"
            " the device exists (ls /dev/v4l/by-id) and that no other program uses it"
        )
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, settings.width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.height)
    cap.set(cv2.CAP_PROP_FPS, settings.fps)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued a while ago
    if settings.exposure is not None:
        cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2: 1 = manual exposure
        cap.set(cv2.CAP_PROP_EXPOSURE, settings.exposure)
    if settings.gain is not None:
        cap.set(cv2.CAP_PROP_GAIN, settings.gain)
    got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    if got != (settings.width, settings.height):
        # The driver picks the nearest mode it has; the calibration belongs to one mode.
        log.warning("camera %r: asked for %dx%d, the driver gives %dx%d; set camera.resolution to a mode"
                    " it has (v4l2-ctl --list-formats-ext) and calibrate in that mode",
                    settings.device, settings.width, settings.height, *got)
    return cap


class _Reader:
    """One capture's reading thread and what the watchdog needs to know about it."""

    def __init__(self) -> None:
        self.read_started: float | None = None  # set while a read is under way
        self.frames = 0
        self.reason: str | None = None  # why the reader gave up its capture
        self.abandoned = threading.Event()


class CameraSource(FrameSource):
    """The IR camera, read in its own thread, watched, and reopened when it fails.

    `open_capture(settings)` makes the capture (default: `open_opencv_camera`); tests pass
    a function that hands out scripted fakes.
    """

    def __init__(self, settings: CameraSettings | None = None,
                 open_capture: Callable[[CameraSettings], VideoCaptureLike] = open_opencv_camera,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or CameraSettings()
        super().__init__(f"camera:{self.settings.device}", clock)
        self._open_capture = open_capture
        self._state = "reconnecting"
        self._stop = threading.Event()
        self.opens = 0  # captures opened so far
        self._supervisor = threading.Thread(target=self._supervise, name=f"{self.name} watchdog",
                                            daemon=True)
        self._supervisor.start()

    # the watchdog ------------------------------------------------------------------------

    def _supervise(self) -> None:
        s = self.settings
        backoff, failed_opens = s.backoff, 0
        while not self._stop.is_set():
            self._state = "reconnecting"
            cap = self._open()
            if cap is None:
                failed_opens += 1
                if s.give_up_after and failed_opens >= s.give_up_after:
                    log.error("%s: gave up after %d failed opens", self.name, failed_opens)
                    self._state = "failed"
                    return
                self._stop.wait(backoff)
                backoff = min(2 * backoff, s.backoff_max)
                continue
            failed_opens = 0
            self.opens += 1
            reader = _Reader()
            threading.Thread(target=self._read_loop, args=(cap, reader),
                             name=f"{self.name} reader {self.opens}", daemon=True).start()
            reason = self._watch(reader)
            with self._cond:  # no frame of the dropped capture gets through after this
                reader.abandoned.set()  # the reader releases its capture when it sees this
                self._state = "frozen" if reason == "frozen" else "reconnecting"
            if reason == "stopped":
                return
            self._fault(reason)
            log.warning("%s: %s; reopening", self.name, reason)
            if reader.frames:
                backoff = s.backoff  # it worked for a while: start the back-off afresh
            self._stop.wait(backoff)
            backoff = min(2 * backoff, s.backoff_max)

    def _open(self) -> VideoCaptureLike | None:
        """Open a capture in a helper thread, so that a hanging open cannot stall the watchdog."""
        box: dict[str, Any] = {}
        late = threading.Event()

        def attempt() -> None:
            try:
                cap = self._open_capture(self.settings)
            except Exception as exc:  # noqa: BLE001 - any failure to open is retried
                box["error"] = exc
                return
            if late.is_set():
                cap.release()  # we stopped waiting for it
            else:
                box["cap"] = cap

        helper = threading.Thread(target=attempt, name=f"{self.name} open", daemon=True)
        helper.start()
        helper.join(self.settings.open_timeout)
        if helper.is_alive():
            late.set()
            self._fault("open_timeout")
            return None
        if "error" in box:
            self._fault("open_failed")
            log.warning("%s: %s", self.name, box["error"])
            return None
        return box["cap"]

    def _watch(self, reader: _Reader) -> str:
        """Watch one capture until it must be dropped; returns why."""
        s = self.settings
        poll = min(0.05, s.read_timeout / 4)
        while not self._stop.wait(poll):
            if reader.reason:
                return reader.reason
            started = reader.read_started
            if started is not None and self._clock() - started > s.read_timeout:
                return "timeout"
        return "stopped"

    def _read_loop(self, cap: VideoCaptureLike, reader: _Reader) -> None:
        s = self.settings
        freeze = FreezeDetector(s.freeze_after)
        failures = 0
        try:
            while not reader.abandoned.is_set():
                reader.read_started = self._clock()
                try:
                    ok, image = cap.read()
                except Exception as exc:  # noqa: BLE001 - a driver error is a failed read
                    log.debug("%s: read raised %s", self.name, exc)
                    ok, image = False, None
                reader.read_started = None
                if reader.abandoned.is_set():
                    break  # the watchdog has moved on to a new capture
                t = self._clock()
                if not ok or image is None or image.size == 0:
                    failures += 1
                    self._fault("failed_read")
                    if failures >= s.max_failed_reads:
                        reader.reason = "failed_reads"
                        break
                    reader.abandoned.wait(0.01)
                    continue
                failures = 0
                gray = to_gray(image)
                if freeze.update(gray, t):
                    reader.reason = "frozen"
                    break
                with self._cond:  # (a reentrant lock) not after the watchdog dropped us
                    if reader.abandoned.is_set():
                        break
                    reader.frames += 1
                    self._state = "ok"
                    self._publish(gray, t)
        finally:
            try:
                cap.release()
            except Exception:  # noqa: BLE001 - a dead device may fail to release; nothing to do
                pass

    # the source interface ------------------------------------------------------------------

    def health(self) -> SourceHealth:
        state = self._state
        h = self._health(state)
        if state == "ok" and (h.last_frame_age is None or h.last_frame_age > self.settings.stale_after):
            return dataclasses.replace(h, state="stale")
        return h

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._supervisor.join(timeout=1.0)
