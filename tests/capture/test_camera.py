"""capture.camera.CameraSource: the reader thread and watchdog survive a failing USB camera.

A scripted fake stands in for cv2.VideoCapture; the real reader, watchdog, freeze detector
and back-off run against it, with short timeouts so the whole file takes a few seconds.
"""
import threading
import time

import numpy as np
import pytest

from capture.camera import CameraError, CameraSettings, CameraSource, open_opencv_camera
from tests.waiting import wait_for

FAST = dict(read_timeout=0.6, open_timeout=1.0, stale_after=0.15, freeze_after=0.3,
            max_failed_reads=3, backoff=0.05, backoff_max=0.4)


class ScriptedCapture:
    """A fake VideoCapture that plays a script: 'frame' (a new picture), 'same' (the last
    picture again), 'fail' (read returns False), 'block' (read never returns until the test
    ends), 'end' (fail from now on, like an unplugged device); the last step repeats."""

    def __init__(self, script, release_all: threading.Event, fps: float = 200.0):
        self.script, self.i, self.n = list(script), 0, 0
        self.release_all, self.period = release_all, 1.0 / fps
        self.released = False
        self.last = None

    def read(self):
        step = self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        time.sleep(self.period)
        if step == "block":
            self.release_all.wait()
            return False, None
        if step in ("fail", "end"):
            return False, None
        if step == "same" and self.last is not None:
            return True, self.last
        self.n += 1
        img = np.full((48, 64, 3), 100, np.uint8)
        img[0, : self.n % 64] = 200  # every picture differs, like a real sensor's
        img[1, 0] = self.n // 64
        self.last = img
        return True, img

    def release(self):
        self.released = True


class Opener:
    """Hands out the scripted outcomes of successive opens: a script (list) or an exception."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.times, self.captures = [], []
        self.release_all = threading.Event()

    def __call__(self, settings):
        self.times.append(time.monotonic())
        outcome = self.outcomes[min(len(self.times) - 1, len(self.outcomes) - 1)]
        if isinstance(outcome, Exception):
            raise outcome
        cap = ScriptedCapture(outcome, self.release_all)
        self.captures.append(cap)
        return cap


@pytest.fixture
def run_camera():
    made = []

    def make(opener, **overrides):
        cam = CameraSource(CameraSettings(**{**FAST, **overrides}), open_capture=opener)
        made.append((cam, opener))
        return cam

    yield make
    for cam, opener in made:
        cam.close()
        opener.release_all.set()



def read_frames(cam, n, timeout=5.0):
    frames, end = [], time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < end:
        f = cam.read(timeout=0.5)
        if f is not None:
            frames.append(f)
    return frames


def test_frames_are_gray_stamped_and_numbered(run_camera):
    """Frames arrive as gray uint8 with monotonic capture times and rising sequence numbers,
    read returns only frames not seen before, and health says ok with a frame rate."""
    cam = run_camera(Opener(["frame"]))
    frames = read_frames(cam, 10)
    assert len(frames) == 10
    assert all(f.image.ndim == 2 and f.image.dtype == np.uint8 for f in frames)
    seqs = [f.sequence for f in frames]
    assert seqs == sorted(set(seqs))
    assert all(a.t_capture <= b.t_capture for a, b in zip(frames, frames[1:]))
    h = cam.health()
    assert h.state == "ok" and h.fps > 0 and h.faults == {}


def test_a_blocking_read_is_abandoned_and_the_camera_reopened(run_camera):
    """A read that never returns (an unplugged USB camera) turns the health stale, then the
    watchdog abandons it after read_timeout, opens a new capture, and frames flow again."""
    opener = Opener(["frame"] * 5 + ["block"], ["frame"])
    cam = run_camera(opener)
    assert len(read_frames(cam, 5)) == 5
    assert wait_for(lambda: cam.health().state == "stale", 2)
    assert wait_for(lambda: cam.health().faults.get("timeout") == 1, 3)
    after = read_frames(cam, 5)
    assert len(after) == 5 and len(opener.times) == 2
    assert cam.health().state == "ok"
    assert not opener.captures[0].released  # its thread is still stuck in read()


def test_a_frozen_stream_is_detected_and_reopened(run_camera):
    """The same picture again and again while the capture stays open counts as frozen after
    freeze_after; the camera is reopened and new pictures arrive."""
    opener = Opener(["frame"] * 3 + ["same"], ["frame"])
    cam = run_camera(opener, backoff=0.3)
    assert wait_for(lambda: cam.health().faults.get("frozen") == 1, 3)
    assert cam.health().state in ("frozen", "reconnecting", "ok")
    assert wait_for(lambda: len(opener.times) == 2 and cam.health().state == "ok", 3)
    assert opener.captures[0].released
    images = [f.image for f in read_frames(cam, 3)]
    assert len(images) == 3 and not np.array_equal(images[0], images[-1])


def test_one_failed_read_is_tolerated(run_camera):
    """A read that fails once and then succeeds is counted but does not reopen the camera."""
    opener = Opener(["frame"] * 5 + ["fail"] + ["frame"])
    cam = run_camera(opener)
    assert len(read_frames(cam, 12)) == 12
    h = cam.health()
    assert h.faults == {"failed_read": 1} and h.state == "ok" and len(opener.times) == 1


def test_unplug_and_return_with_backoff(run_camera):
    """The camera vanishes (reads fail, opening raises) and comes back: the health says
    reconnecting meanwhile, reopen attempts back off exponentially, and frames resume."""
    gone = CameraError("camera 0: cannot open it")
    opener = Opener(["frame"] * 5 + ["end"], gone, gone, gone, ["frame"])
    cam = run_camera(opener, backoff=0.1, backoff_max=1.0)
    assert len(read_frames(cam, 5)) == 5
    assert wait_for(lambda: cam.health().state == "reconnecting", 2)
    assert wait_for(lambda: len(opener.times) == 5, 6)
    assert len(read_frames(cam, 3)) == 3 and cam.health().state == "ok"
    gaps = np.diff(opener.times[1:])  # between the failed opens and the return
    assert gaps[1] > 1.5 * gaps[0] and gaps[2] > 1.5 * gaps[1]
    f = cam.health().faults
    assert f["failed_reads"] == 1 and f["open_failed"] == 3


def test_gives_up_when_told(run_camera):
    """With give_up_after set, a camera that never opens ends in the 'failed' state and
    read returns None instead of hanging."""
    cam = run_camera(Opener(CameraError("camera 0: cannot open it")), give_up_after=2)
    assert wait_for(lambda: cam.health().state == "failed", 3)
    assert cam.read(timeout=0.1) is None


def test_close_stops_reading(run_camera):
    """After close, health says closed and read returns None at once."""
    cam = run_camera(Opener(["frame"]))
    assert read_frames(cam, 2)
    cam.close()
    assert cam.health().state == "closed"
    t = time.monotonic()
    assert cam.read(timeout=2) is None and time.monotonic() - t < 0.5


def test_real_opener_names_a_missing_device():
    """OpenCV's opener refuses a device that does not exist with a CameraError naming it."""
    with pytest.raises(CameraError, match="/dev/video-newsnow-missing"):
        open_opencv_camera(CameraSettings(device="/dev/video-newsnow-missing"))


@pytest.mark.parametrize("field,value", [("device", ""), ("width", 0), ("read_timeout", -1),
                                         ("max_failed_reads", 0), ("gain", "high")])
def test_settings_refuse_a_bad_field(field, value):
    """CameraSettings names the bad field in its ValueError."""
    with pytest.raises(ValueError, match=f"camera.{field}"):
        CameraSettings.from_dict({field: value})


def test_settings_round_trip():
    """to_dict / from_dict keep every setting; an unknown one is refused by name."""
    s = CameraSettings(device="/dev/video2", exposure=50, gain=2.0, give_up_after=3)
    assert CameraSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="camera.shutter"):
        CameraSettings.from_dict({"shutter": 1})
