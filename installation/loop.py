"""The live table: one frame's way from the camera to the projector.

Three threads, each taking the newest item from a one-slot mailbox (latest wins), so a
slow stage lowers its own rate and never adds latency to the others:

    capture thread   source.read() -> check the frame -> binarize -> sketch
                     -> changed since the last sketch sent on?  (no: skip it)
                     -> sketches mailbox
    inference thread sketch -> model -> drawing -> tone (-> stroke composite)
                     -> warp to projector pixels -> answers mailbox
                     (or a latent transition: W+ steps, each generated;
                      or idle mode: a slow wander through the latent space)
    display (caller) answer -> crossfade in projector pixels -> blit, at a steady
                     frame rate; stamps latency = t_display - t_capture

Everything per answer (tone, composite, warp) happens once in the inference thread; per
display frame there is at most one blend of two projector frames and the blit.

Faults (a bad frame, a camera that vanishes, an exception in the model) are counted in
the stats and the loop goes on with the last good drawing, or idle mode. Other parts of
the installation watch the table through `status()` (a frozen `TableStatus`) and two
hooks: `on_first_frame` (once, when the projector first shows a frame; systemd READY)
and `on_display_frame` (after every frame shown; the systemd watchdog).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from capture.binarize import sketch_difference
from capture.frames import Frame, Sketch
from inference.tensors import from_uint8
from installation.config import Config
from installation.idle import Wander
from installation.mailbox import Mailbox
from installation.stats import TableStats, TableStatus
from installation.throttle import ThrottledLog
from render.tone import apply_tone, composite_strokes, drawing_to_uint8
from render.transition import Crossfade, ease

log = logging.getLogger(__name__)

STALL_S = 1.0  # no frame from the camera this long counts as a camera fault
READ_TIMEOUT_S = 0.25  # how long one read waits for a frame, so that a stop is noticed soon


@dataclass(frozen=True)
class PendingSketch:
    """A changed sketch on its way to the model."""

    sketch: Sketch
    t_stroke: float  # capture time of the first frame showing the change not yet answered
    blank: bool  # nothing drawn on the sheet: idle mode, not the model


@dataclass(frozen=True)
class Answer:
    """A drawing ready for the projector, with the stamps of the sketch it answers."""

    picture: np.ndarray  # the toned drawing, R x R x 3 uint8 (for last.png)
    projector: np.ndarray  # the picture warped to projector pixels, H x W x 3 uint8
    fade_s: float  # crossfade into it over this long (0: cut)
    t_capture: float | None = None  # capture time of the sketch it answers (None: idle)
    t_stroke: float | None = None
    sequence: int | None = None  # frame sequence number of the sketch it answers


class BadModelOutput(ValueError):
    """The model answered with something that is not a drawing (NaN/inf, wrong shape)."""


def check_drawing(drawing, channels: int, resolution: int) -> np.ndarray:
    """The model's output as a [1, C, R, R] finite array, or BadModelOutput saying what is
    wrong: projected, NaN reads black, +inf white and a small output sits in a corner."""
    drawing = np.asarray(drawing)
    want = (1, channels, resolution, resolution)
    if drawing.shape != want:
        raise BadModelOutput(f"output of shape {list(drawing.shape)}, expected {list(want)}")
    if not np.isfinite(drawing).all():
        raise BadModelOutput(f"{int((~np.isfinite(drawing)).sum())} non-finite values in the output")
    return drawing


@dataclass
class LatentMove:
    """A latent transition in progress: W+ from the drawing on show towards a new sketch's."""

    w_from: np.ndarray
    w_to: np.ndarray
    t0: float  # when the sketch's W+ was known
    sketch: Sketch
    stamps: tuple  # latency stamps, carried by the first step only
    k: int = 1  # the next step, 1..latent_steps

    def due(self, step_s: float) -> float:
        """Step k goes out (k - 1) steps after t0: the first at once."""
        return self.t0 + (self.k - 1) * step_s


_NEAR = np.ones((3, 3), np.uint8)  # "near a line": within one sketch pixel of its ink


def new_ink_pixels(last: np.ndarray, sketch: np.ndarray) -> int:
    """Ink pixels that appeared or vanished more than a pixel away from the other sketch's ink.

    A still sheet's binarization flickers only along the edges of its lines; a new stroke
    (or a new sheet) puts ink where there was none. Counting only changes away from the
    lines tells them apart at once, where the plain share of differing pixels needs a
    threshold above the flicker (measured on the simulated pen, 4 seeds x 30 s: at 256 px
    the still sheet then triggers 0.03 times/s instead of 7, at 64 px 5 instead of 17).
    """
    ink_last = (last == 0).astype(np.uint8)
    ink_now = (sketch == 0).astype(np.uint8)
    appeared = np.count_nonzero(ink_now > cv2.dilate(ink_last, _NEAR))
    vanished = np.count_nonzero(ink_last > cv2.dilate(ink_now, _NEAR))
    return int(appeared + vanished)


# A frame stamped further back than this (or in the future) is on another clock.
MAX_FRAME_AGE_S = 2.0


def frame_problem(frame: object, size: tuple[int, int] | None) -> str | None:
    """Why a frame cannot be used (wrong type or size, all black or white), or None."""
    image = getattr(frame, "image", None)
    if not isinstance(image, np.ndarray):
        return f"not an image ({type(frame).__name__})"
    if image.dtype != np.uint8 or image.ndim != 2:
        return f"expected uint8 gray H x W, got {image.dtype} {image.shape}"
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        return f"frame is {image.shape[1]}x{image.shape[0]}, camera.resolution is {size[0]}x{size[1]}"
    lo, hi = int(image.min()), int(image.max())
    if hi < 8:
        return "all black (IR light off or lens covered?)"
    if lo > 247:
        return "all white (overexposed?)"
    return None


class Table:
    """The running table. `run()` drives the display from the calling thread."""

    def __init__(self, config: Config, source, sketcher: Callable[[np.ndarray], np.ndarray], backend,
                 display, warp, *, transition: str = "crossfade", step_ms: float | None = None,
                 recorder=None, seed: int | None = None):
        self.config = config
        self.source = source  # .read(timeout) -> Frame | None (None: no frame yet); may raise OSError
        self.sketcher = sketcher  # camera image -> sketch image (uint8 R x R, ink 0)
        self.backend = backend
        self.display = display  # .show(rgb), .quit_requested()
        self.warp = warp  # drawing picture -> projector frame (a new array each call)
        self.transition = transition  # "crossfade" or "latent" (auto is decided before)
        self.recorder = recorder  # .offer(frame) at recorder.fps, off the hot path (.fps, .offer)
        self.seed = seed
        self.resolution = int(backend.bundle.resolution)
        self.channels = int(backend.bundle.channels)
        self.stats = TableStats(window=config.stats.window, backend=getattr(backend, "name", "?"),
                                transition=transition, step_ms=step_ms)
        self.on_first_frame: list[Callable[[], None]] = []
        self.on_display_frame: list[Callable[[], None]] = []
        self._sketches: Mailbox[PendingSketch] = Mailbox()
        self._answers: Mailbox[Answer] = Mailbox()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The newest frame and sketch, and what is on show: for last.png, the idle composite and
        # watchers (references, swapped whole, so reading them from another thread is safe).
        self.latest_frame: Frame | None = None
        self.latest_sketch: Sketch | None = None
        self.latest_picture: np.ndarray | None = None
        self.latest_projector: np.ndarray | None = None
        # (frame sequence, t_capture, t_display) of each answer when first shown, for benchmarks
        self.answers_shown: deque[tuple[int, float, float]] = deque(maxlen=10_000)
        self._foreign_clock_seen = False
        self._warn = ThrottledLog(log)  # faults are counted in the stats; the log gets a line per burst

    # ---- the watchers' side -------------------------------------------------------------
    def status(self) -> TableStatus:
        """A snapshot of the running statistics; safe from any thread."""
        return self.stats.snapshot()

    def stop(self) -> None:
        """Ask the loop to finish (from a signal handler, another thread or a hook)."""
        self._stop.set()

    # ---- capture thread -----------------------------------------------------------------
    def _stamped(self, frame, now: float):
        """The frame with a capture time on this process's monotonic clock: a stamp from
        another clock (an hour old, or in the future) would hide a dead camera or starve the
        watchdog, so it is replaced by the arrival time and counted once."""
        t = getattr(frame, "t_capture", None)
        if isinstance(t, (int, float)) and now - MAX_FRAME_AGE_S <= t <= now + 0.05:
            return frame
        if not self._foreign_clock_seen:
            self._foreign_clock_seen = True
            self.stats.count_fault("frame_clock")
            log.warning("event=frame_clock_foreign t_capture=%r now=%.3f action=use_arrival_time", t, now)
        return dataclasses.replace(frame, t_capture=now) if dataclasses.is_dataclass(frame) else frame

    def _capture_forever(self) -> None:
        change = self.config.change
        size = self.config.camera.resolution
        last_sent: np.ndarray | None = None  # the sketch last handed to the model
        backoff = 0.05
        t_last_frame = time.monotonic()
        stalled = False
        last_sequence = None
        while not self._stop.is_set():
            try:
                frame = self.source.read(READ_TIMEOUT_S)
            except Exception as exc:  # a vanished camera: OSError; anything else is a fault too
                self.stats.count_fault("camera")
                self._warn.warning("camera_fault", "error=%r retry_in_s=%.2f", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            now = time.monotonic()
            sequence = getattr(frame, "sequence", None)
            if frame is not None and sequence is not None and sequence == last_sequence:
                frame = None  # the source gave the frame it gave last time: not a new one
            last_sequence = sequence if frame is not None else last_sequence
            if frame is None:  # no new frame yet (the source times out, or repeats itself)
                if not stalled and now - t_last_frame > STALL_S:
                    stalled = True
                    self.stats.count_fault("camera_stalled")
                    log.warning("event=camera_stalled for_s=%.1f", now - t_last_frame)
                self._stop.wait(0.005)
                continue
            backoff, t_last_frame, stalled = 0.05, now, False
            frame = self._stamped(frame, now)
            problem = frame_problem(frame, size)
            self.stats.count_frame(now if problem else frame.t_capture, problem)
            if problem:
                log.debug("event=bad_frame sequence=%s problem=%s", getattr(frame, "sequence", "?"), problem)
                continue
            try:
                image = self.sketcher(frame.image)
            except Exception as exc:
                self.stats.count_fault("binarize")
                self._warn.warning("binarize_fault", "error=%r", exc)
                continue
            ink = np.count_nonzero(image == 0) / image.size
            if last_sent is None or last_sent.shape != image.shape:
                changed = True
            else:  # new ink away from the lines, or a change of more than the flicker
                changed = (new_ink_pixels(last_sent, image) >= change.new_ink_px
                           or sketch_difference(last_sent, image) > change.threshold)
            sketch = Sketch(image=image, t_capture=frame.t_capture, sequence=frame.sequence, ink_fraction=ink)
            self.latest_frame, self.latest_sketch = frame, sketch
            if not changed:
                self.stats.count_skipped()  # a frozen sheet is not inferred again
                continue
            # Latest wins: a sketch the model has not taken yet is replaced by this one, which
            # inherits its stroke time (the answer will answer both).
            waiting = self._sketches.take_nowait()
            if waiting is not None:
                self.stats.count_dropped()
            t_stroke = waiting.t_stroke if waiting is not None else frame.t_capture
            self._sketches.post(PendingSketch(sketch, t_stroke, blank=ink < change.blank_ink))
            last_sent = image

    # ---- inference thread ---------------------------------------------------------------
    def _post(self, drawing: np.ndarray, fade_s: float, stamps: tuple, sketch: Sketch | None) -> None:
        """Model output [1, C, R, R] in [-1, 1] -> toned, composited, warped -> the display."""
        tone = self.config.tone
        drawing = check_drawing(drawing, self.channels, self.resolution)
        self.stats.count_good_output()
        picture = apply_tone(drawing_to_uint8(drawing[0]), tone)
        if tone.composite_strokes and sketch is not None:
            picture = composite_strokes(picture, sketch.image, tone.stroke_opacity)
        if self._answers.post(Answer(picture, self.warp(picture), fade_s, *stamps)):
            self.stats.count_dropped()

    def _infer_forever(self) -> None:
        cfg = self.config
        latent = self.transition == "latent"
        step_s = cfg.transition.duration_s / cfg.transition.latent_steps
        idle_period = 1.0 / cfg.idle.fps
        last_change = time.monotonic()
        idle = False
        wander: Wander | None = None
        w_shown: np.ndarray | None = None  # W+ of the drawing on show, when known
        move: LatentMove | None = None
        next_idle = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            step_due = None if move is None else move.due(step_s)
            if step_due is not None and now >= step_due:
                pending = None  # a due step goes out before the next sketch, so drawing never starves it
            else:
                if step_due is not None:
                    wait = step_due - now
                elif idle:
                    wait = max(0.0, next_idle - now)
                else:
                    wait = max(0.0, min(0.1, last_change + cfg.idle.after_s - now))
                pending = self._sketches.take(wait) if wait > 0 else self._sketches.take_nowait()
                now = time.monotonic()
            try:
                if pending is not None:
                    if pending.blank:
                        move = None
                        if not idle:  # an empty sheet shows the idle wander, never an error
                            idle, wander, next_idle = True, None, now
                            self.stats.set_idle(True)
                        continue
                    idle, wander, last_change = False, None, now
                    self.stats.set_idle(False)
                    x = from_uint8(pending.sketch.image).reshape(1, 1, self.resolution, self.resolution)
                    stamps = (pending.sketch.t_capture, pending.t_stroke, pending.sketch.sequence)
                    if latent:
                        w_new = np.asarray(self.backend.encode(x), dtype=np.float32)
                        self.stats.count_inference(now)
                        if w_shown is None:  # nothing to move from: show it at once
                            w_shown = w_new
                            self._post(self.backend.generate(w_new), cfg.transition.duration_s, stamps,
                                       pending.sketch)
                        else:
                            move = LatentMove(w_shown, w_new, now, pending.sketch, stamps)
                    else:
                        drawing = self.backend.sketch_to_drawing(x)
                        self.stats.count_inference(now)
                        self._post(drawing, cfg.transition.duration_s, stamps, pending.sketch)
                        w_shown = None  # the fused graph gives no W+: idle starts afresh
                elif move is not None and now >= step_due:
                    w_shown = move.w_from + ease(move.k / cfg.transition.latent_steps) * (move.w_to - move.w_from)
                    self._post(self.backend.generate(w_shown), step_s, move.stamps if move.k == 1 else (), move.sketch)
                    self.stats.count_generation()
                    move.k += 1
                    if move.k > cfg.transition.latent_steps:
                        move = None
                elif not idle and now - last_change >= cfg.idle.after_s:
                    idle, wander, next_idle = True, None, now
                    self.stats.set_idle(True)
                elif idle and now >= next_idle:
                    fade_s = idle_period
                    if wander is None:
                        wander = Wander(self.backend, cfg.idle.psi, cfg.idle.wander_speed, now,
                                        start=w_shown, seed=self.seed)
                        # From a drawing with no known W+ the first step is a jump: fade it in.
                        fade_s = idle_period if w_shown is not None else max(idle_period, cfg.transition.duration_s)
                    w_shown = wander.at(now)
                    latest = self.latest_sketch
                    sketch = latest if latest is not None and latest.ink_fraction >= cfg.change.blank_ink else None
                    self._post(self.backend.generate(w_shown), fade_s, (), sketch)
                    self.stats.count_generation()
                    next_idle = max(next_idle + idle_period, now)
            except Exception as exc:  # the model failed on this one: keep the last good drawing
                self.stats.count_fault("inference")
                if isinstance(exc, BadModelOutput):
                    self.stats.count_bad_output(str(exc))
                self._warn.warning("inference_fault", "error=%r", exc, exc_info=log.isEnabledFor(logging.DEBUG))
                move = None
                next_idle = now + max(idle_period, 1.0)  # a broken idle graph is retried slowly
                self._stop.wait(0.05)

    # ---- display (the caller's thread) --------------------------------------------------
    def run(self, seconds: float | None = None) -> TableStatus:
        """Run until `seconds` pass, `stop()` is called or the display is closed."""
        self._threads = [
            threading.Thread(target=self._capture_forever, name="capture", daemon=True),
            threading.Thread(target=self._infer_forever, name="inference", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            self._display_forever(seconds)
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=5.0)
            self.stats.set_stopped()
        return self.status()

    def _display_forever(self, seconds: float | None) -> None:
        cfg = self.config
        period = 1.0 / cfg.display.fps
        fade = Crossfade(cfg.transition.duration_s)
        log_every = cfg.stats.log_every_s
        t_end = None if seconds is None else time.monotonic() + seconds
        stamps: tuple | None = None  # latency stamps of an answer not yet shown
        black = None  # what the projector shows before the first drawing
        frame_no = 0
        next_t = t_log = next_record = time.monotonic()
        early: Answer | None = None  # an answer that arrived between frames, shown at once
        while not self._stop.is_set() and (t_end is None or time.monotonic() < t_end):
            answer = early if early is not None else self._answers.take_nowait()
            early = None
            now = time.monotonic()
            if answer is not None:
                # The fade is started one frame back, so the first frame that shows it already
                # holds part of the new drawing (the latency stamp is honest).
                fade.start(answer.projector, now - period, answer.fade_s)
                self.latest_picture = answer.picture
                if answer.t_capture is not None:
                    stamps = (answer.t_capture, answer.t_stroke, answer.sequence)
            projector = fade.frame(now)
            if projector is None:
                if black is None:
                    black = np.zeros((cfg.display.size[1], cfg.display.size[0], 3), np.uint8)
                projector = black
            try:
                self.display.show(projector)
            except Exception as exc:
                self.stats.count_fault("display")
                self._warn.warning("display_fault", "error=%r", exc)
                self._stop.wait(period)
                continue
            t_display = time.monotonic()
            if stamps is not None:
                self.stats.record_display(t_display, t_display - stamps[0], t_display - stamps[1])
                self.answers_shown.append((stamps[2], stamps[0], t_display))
                stamps = None
            else:
                self.stats.record_display(t_display)
            self.latest_projector = projector
            if frame_no == 0:
                for hook in self.on_first_frame:
                    hook()
            for hook in self.on_display_frame:
                hook()
            if self.recorder is not None and t_display >= next_record:
                self.recorder.offer(projector)  # a copy into the recorder's queue; it encodes elsewhere
                next_record = max(next_record + 1.0 / self.recorder.fps, t_display - 1.0 / self.recorder.fps)
            frame_no += 1
            if log_every and t_display - t_log >= log_every:
                t_log = t_display
                s = self.status()
                log.info("event=table_stats state=%s display_fps=%.1f inferences=%d latency_p95_ms=%s faults=%s",
                         s.state, s.display_fps_recent, s.inferences, s.stroke_latency_ms["p95"], s.faults)
            if self.display.quit_requested():
                break
            # A fixed schedule keeps the average rate exact; a frame that ran late is caught up
            # at once, but after a long stall the schedule restarts instead of bursting.
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                # Sleep until the next frame, unless an answer comes first: it is shown at once
                # (a visitor's answer is not held back for the frame clock) and the clock
                # restarts from there.
                early = self._answers.take(delay)
                if early is not None:
                    next_t = time.monotonic()
            elif delay < -period:
                next_t = time.monotonic()
