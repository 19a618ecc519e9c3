"""table.recorder: recording never waits on the encoder, and works without imageio-ffmpeg."""
from __future__ import annotations

import sys
import threading
import time

import cv2
import numpy as np

from table.recorder import Recorder


def frames(n, size=(96, 64)):
    for i in range(n):
        yield np.full((size[1], size[0], 3), (i * 20) % 256, np.uint8)


def test_offer_never_waits_for_a_stalled_encoder(tmp_path, monkeypatch):
    """With the encoder stuck, 200 offers return at once; the surplus is dropped and counted."""
    recorder = Recorder(tmp_path, fps=10, width=48)
    gate = threading.Event()
    real_open = recorder._open

    def slow_open(size):
        gate.wait(5.0)  # the writer thread hangs on its first frame
        return real_open(size)

    monkeypatch.setattr(recorder, "_open", slow_open)
    t0 = time.perf_counter()
    for frame in frames(200):
        recorder.offer(frame)
    assert time.perf_counter() - t0 < 1.0
    assert recorder.dropped >= 150
    gate.set()
    assert recorder.close() is not None and recorder.written == 200 - recorder.dropped


def test_opencv_writes_the_video_when_imageio_ffmpeg_is_missing(tmp_path, monkeypatch):
    """No imageio-ffmpeg (a kiosk's `pip install .`): OpenCV's FFmpeg writes a playable demo.mp4."""
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes `import imageio_ffmpeg` fail
    recorder = Recorder(tmp_path, fps=10, width=48)
    for frame in frames(12):
        recorder.offer(frame)
        time.sleep(0.005)
    path = recorder.close()
    assert path == tmp_path / "demo.mp4"
    video = cv2.VideoCapture(str(path))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == recorder.written == 12


def test_a_full_disk_stops_the_recording_not_the_table(tmp_path, monkeypatch):
    """The encoder failing with ENOSPC: offers keep returning at once (counted as dropped),
    close() returns within its timeout, and the error is kept once for the summary."""
    recorder = Recorder(tmp_path, fps=10, width=48)

    class FullDisk:
        def __call__(self, rgb):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    monkeypatch.setattr(recorder, "_open", lambda size: FullDisk())
    recorder.offer(next(frames(1)))
    deadline = time.monotonic() + 5
    while recorder.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "No space left on device" in recorder.error
    t0 = time.perf_counter()
    for frame in frames(100):
        recorder.offer(frame)
    recorder.close(timeout=1.0)
    assert time.perf_counter() - t0 < 2.0 and recorder.dropped >= 99 and recorder.written == 0
