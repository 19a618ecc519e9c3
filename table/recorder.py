"""Record what the projector showed, off the display loop's hot path.

The display offers every k-th projector frame; a copy goes into a short queue and a
separate thread scales and encodes it. When the encoder falls behind, frames are dropped
(and counted), never waited for. MP4 through imageio-ffmpeg (H.264) when it is installed,
else through OpenCV's own FFmpeg (MPEG-4 Part 2), else an animated GIF through imageio.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, out_dir: Path, fps: float = 10.0, width: int = 640):
        self.out_dir = Path(out_dir)
        self.fps = float(fps)
        self.width = int(width)
        self.path: Path | None = None
        self.offered = 0
        self.written = 0
        self.dropped = 0
        self.error: str | None = None  # why the recording stopped early (a full disk...), once
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._write_forever, name="recorder", daemon=True)
        self._thread.start()

    def offer(self, rgb: np.ndarray) -> None:
        """Queue a copy of one frame; drop it at once if the writer is behind."""
        self.offered += 1
        if self.error is not None:  # the writer has stopped: nothing will take the frame
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(rgb.copy())
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 30.0) -> Path | None:
        """Finish the file within `timeout`; returns its path (None if nothing was
        recorded). Never blocks on a writer that died: the end mark waits at most as long."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass  # the writer is gone or stuck; join below is bounded too
        self._thread.join(timeout)
        return self.path

    def _write_forever(self) -> None:
        writer = None
        try:
            while True:
                rgb = self._queue.get()
                if rgb is None:
                    break
                h, w = rgb.shape[:2]
                size = (self.width, int(round(h * self.width / w / 2)) * 2)  # even sizes for H.264
                small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                if writer is None:
                    writer = self._open(size)
                writer(small)
                self.written += 1
        except Exception as exc:  # the recording is a by-product: never take the table down with it
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("event=recorder_failed error=%r path=%s", self.error, self.path)
            while True:  # let offer() and close() go on without waiting on a dead writer
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            if writer is not None:
                writer.close()

    def _open(self, size: tuple[int, int]):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401  (the H.264 encoder)

            self.path = self.out_dir / "demo.mp4"
            return _ImageioWriter(imageio.get_writer(self.path, fps=self.fps, codec="libx264", quality=7,
                                                     macro_block_size=2, ffmpeg_log_level="error"))
        except ImportError:
            pass
        self.path = self.out_dir / "demo.mp4"
        cv_writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
        if cv_writer.isOpened():
            return _OpenCVWriter(cv_writer)
        import imageio.v2 as imageio  # no FFmpeg at all: fall back to a GIF

        self.path = self.out_dir / "demo.gif"
        return _ImageioWriter(imageio.get_writer(self.path, mode="I", duration=1.0 / self.fps))


class _ImageioWriter:
    def __init__(self, writer):
        self._w = writer

    def __call__(self, rgb):
        self._w.append_data(rgb)

    def close(self):
        self._w.close()


class _OpenCVWriter:
    def __init__(self, writer):
        self._w = writer

    def __call__(self, rgb):
        self._w.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self):
        self._w.release()
