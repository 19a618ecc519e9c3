"""The live table: one frame's way from the camera to the projector.

Three threads, each taking the newest item from a one-slot mailbox (latest wins), so a
slow stage lowers its own rate and never adds latency to the others:

    capture thread   source.read() -> check the frame -> binarize -> sketch
                     -> changed since the last sketch sent on?  (no: skip it)
                     -> sketches mailbox
    inference thread take a sketch -> choose a motion (table/motion.py: a crossfade
                     to the model's answer, a latent move, the idle wander) -> its due
                     step -> model -> tone (-> stroke composite) -> warp to projector
                     pixels -> answers mailbox
    display (caller) answer -> crossfade in projector pixels -> blit, at a steady
                     frame rate; stamps latency = t_display - t_capture

Everything per answer (tone, composite, warp) happens once in the inference thread; per
display frame there is at most one blend of two projector frames and the blit.

Faults (a bad frame, a camera that vanishes, an exception in the model) are counted in
the stats and the loop goes on with the last good drawing, or idle mode. Other parts of
the installation watch the table through `status()` (a frozen `TableStatus`) and two
hooks: `on_first_frame` (once, when the projector first shows a frame; systemd READY)
and `on_display_frame(pulse)` (after every frame shown, with the camera's and the
model's vital signs in a `Pulse`; the systemd watchdog).
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
from config import Config, changed_sections
from inference.bundle import fit_for_table, fitness_warning
from inference.tensors import from_uint8
from table.mailbox import Mailbox
from table.motion import Crossfade, LatentMove, Motion, Step, Wander
from table.stats import TableStats, TableStatus
from table.throttle import ThrottledLog
from render.tone import apply_tone, composite_strokes, drawing_to_uint8
from render.transition import Blend

log = logging.getLogger(__name__)

STALL_S = 1.0  # no frame from the camera this long counts as a camera fault
READ_TIMEOUT_S = 0.25  # how long one read waits for a frame, so that a stop is noticed soon
STOP_S = 0.9  # run() returns this soon after a stop, even if a read or a model call hangs

# One reader per source: a table started while the last one's read still hangs waits for it.
_readers: dict[int, threading.Lock] = {}
_readers_lock = threading.Lock()


def _reader_of(source) -> threading.Lock:
    with _readers_lock:
        return _readers.setdefault(id(source), threading.Lock())


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


@dataclass(frozen=True)
class Pulse:
    """What the display loop tells its per-frame hooks: the table's vital signs, cheaply."""

    t: float  # when the frame was shown (monotonic)
    camera_age_s: float  # since the camera last gave a frame (or, before the first, since the table started)
    model_busy_s: float  # how long the model call in progress has run (0: none is running)


class TimedBackend:
    """The model backend with a stopwatch: `busy_s()` says how long the call in progress
    has been running, so a hung GPU or model call shows. (The table calls the model from its
    one inference thread, so one stopwatch is enough.)"""

    CALLS = ("sketch_to_drawing", "encode", "generate", "map")

    def __init__(self, backend, clock: Callable[[], float] = time.monotonic):
        self._backend = backend
        self._clock = clock
        self._since: float | None = None

    def __getattr__(self, name):
        attr = getattr(self._backend, name)
        if name not in self.CALLS:
            return attr

        def timed(*args, **kwargs):
            self._since = self._clock()
            try:
                return attr(*args, **kwargs)
            finally:
                self._since = None

        return timed

    def busy_s(self) -> float:
        since = self._since
        return 0.0 if since is None else self._clock() - since


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
                 transition_reason: str = "", recorder=None, seed: int | None = None):
        self.config = config
        self.source = source  # .read(timeout) -> Frame | None (None: no frame yet); may raise OSError
        self.sketcher = sketcher  # camera image -> sketch image (uint8 R x R, ink 0)
        self.backend = backend if isinstance(backend, TimedBackend) else TimedBackend(backend)
        self.display = display  # .show(rgb), .quit_requested()
        self.warp = warp  # drawing picture -> projector frame (a new array each call)
        self.transition = transition  # "crossfade" or "latent" (auto is decided before)
        self.recorder = recorder  # .offer(frame) at recorder.fps, off the hot path (.fps, .offer)
        self.seed = seed
        self.resolution = int(backend.bundle.resolution)
        self.channels = int(backend.bundle.channels)
        self.stats = TableStats(window=config.stats.window, backend=getattr(backend, "name", "?"),
                                transition=transition, step_ms=step_ms, transition_reason=transition_reason,
                                model_fit=fit_for_table(backend.bundle),
                                warnings=[w for w in (fitness_warning(backend.bundle),) if w])
        self.on_first_frame: list[Callable[[], None]] = []
        self.on_display_frame: list[Callable[[Pulse], None]] = []
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
        self._t_new_frame = time.monotonic()  # when the source last gave a new frame (a stall is counted after STALL_S)
        self._stalled = False
        self._can_wander = True  # until the bundle shows it cannot (no mapping or generator graph)
        self._next_model = None  # parts prepared beside the table, taken by the inference thread (swap_model)
        self._resend = threading.Event()  # the capture thread sends the sheet again (to a new model)
        self.models_swapped = 0
        self._warn = ThrottledLog(log)  # faults are counted in the stats; the log gets a line per burst

    # ---- the watchers' side -------------------------------------------------------------
    def status(self) -> TableStatus:
        """A snapshot of the running statistics; safe from any thread."""
        return self.stats.snapshot(model_busy_s=self.backend.busy_s())

    def pulse(self, now: float) -> Pulse:
        t_last = self.stats.t_last_frame
        return Pulse(now, now - (t_last if t_last is not None else self.stats.t_start), self.backend.busy_s())

    def stop(self) -> None:
        """Ask the loop to finish (from a signal handler, another thread or a hook)."""
        self._stop.set()

    def swap_model(self, parts) -> None:
        """Run on the model of `parts` (a bundle loaded again, prepared beside this table by
        another thread): the inference thread changes over between two of its steps, the
        display never waits for it, and the drawing on show stays until the new model's answer
        to the sheet fades in. `parts` needs a backend; its sketcher, warp and transition are
        taken where it has them (a bundle of another resolution binarizes to its own grid)."""
        self._next_model = parts

    def _change_model(self) -> None:
        parts, self._next_model = self._next_model, None
        backend = parts.backend
        sketcher = getattr(parts, "sketcher", None)
        if sketcher is None or sketcher is self.sketcher:
            self._resend.set()  # the same binarizer: the capture thread sends the sheet again all the same
        else:
            self.sketcher = sketcher  # the capture thread sees a new one and sends the sheet through it
        self.warp = getattr(parts, "warp", None) or self.warp
        self.transition = getattr(parts, "transition", None) or self.transition
        self.resolution, self.channels = int(backend.bundle.resolution), int(backend.bundle.channels)
        self.backend = backend if isinstance(backend, TimedBackend) else TimedBackend(backend)
        self._can_wander = True
        self.stats.set_model(getattr(backend, "name", "?"), self.transition, getattr(parts, "step_ms", None))
        self.models_swapped += 1
        log.info("event=model_swapped backend=%s transition=%s", getattr(backend, "name", "?"), self.transition)

    def reconfigure(self, new: Config) -> tuple[list[str], list[str]]:
        """Take the live sections of `new` (binarize, tone, idle, transition but its kind) at
        once; returns (sections applied, sections that differ but need a restart). A bad
        binarize override raises ConfigError and changes nothing."""
        live, restart = changed_sections(self.config, new)
        if "binarize" in live and hasattr(self.sketcher, "set_overrides"):
            self.sketcher.set_overrides(new.binarize, new.path or "config")
        # One swap of the frozen config: each thread reads self.config afresh per step.
        self.config = dataclasses.replace(self.config, **{name: getattr(new, name) for name in live})
        return live, restart

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

    def _watch_camera(self, now: float) -> None:
        """No new frame for STALL_S is a camera stall, counted once per stall, whether the
        source's read returns empty or hangs (this runs in the display loop, not the reader)."""
        t = self._t_new_frame
        if not self._stalled and now - t > STALL_S:
            self._stalled = True
            self.stats.count_fault("camera_stalled")
            log.warning("event=camera_stalled for_s=%.1f", now - t)

    def _capture_forever(self) -> None:
        reader = _reader_of(self.source)
        while not reader.acquire(timeout=0.1):  # a previous table's read still hangs in the source
            if self._stop.is_set():
                return
        try:
            self._read_forever()
        finally:
            reader.release()

    def _read_forever(self) -> None:
        change = self.config.change
        size = self.config.camera.resolution
        last_sent: np.ndarray | None = None  # the sketch last handed to the model
        used_sketcher = self.sketcher
        backoff = 0.05
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
                self._stop.wait(0.005)
                continue
            backoff, self._t_new_frame, self._stalled = 0.05, now, False
            frame = self._stamped(frame, now)
            problem = frame_problem(frame, size)
            self.stats.count_frame(now if problem else frame.t_capture, problem, now=now)
            if problem:
                log.debug("event=bad_frame sequence=%s problem=%s", getattr(frame, "sequence", "?"), problem)
                continue
            sketcher = self.sketcher
            if sketcher is not used_sketcher or self._resend.is_set():  # a new model: the sheet goes to it
                self._resend.clear()
                used_sketcher, last_sent = sketcher, None
            try:
                image = sketcher(frame.image)
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
    def _post(self, step: Step) -> None:
        """A motion's step -> the model's drawing [1, C, R, R] in [-1, 1] -> toned,
        composited, warped -> the display."""
        tone = self.config.tone
        drawing = step.drawing if step.drawing is not None else self.backend.generate(step.w)
        drawing = check_drawing(drawing, self.channels, self.resolution)
        self.stats.count_good_output()
        picture = apply_tone(drawing_to_uint8(drawing[0]), tone)
        if tone.composite_strokes and step.sketch is not None:
            picture = composite_strokes(picture, step.sketch.image, tone.stroke_opacity)
        if self._answers.post(Answer(picture, self.warp(picture), step.fade_s, *step.stamps)):
            self.stats.count_dropped()

    def _answer(self, pending: PendingSketch, shown: Motion | None, now: float) -> Motion:
        """The motion that answers a sketch: the idle wander for a blank sheet (never an
        error), else the model's drawing, crossfaded in or reached by a latent move."""
        cfg = self.config
        w_shown = shown.w_shown if shown is not None else None
        if pending.blank:
            return shown if isinstance(shown, Wander) else self._wander(w_shown, now)
        x = from_uint8(pending.sketch.image).reshape(1, 1, self.resolution, self.resolution)
        stamps = (pending.sketch.t_capture, pending.t_stroke, pending.sketch.sequence)
        fade_s = cfg.transition.duration_s
        if self.transition != "latent":
            drawing = self.backend.sketch_to_drawing(x)
            self.stats.count_inference(now)
            return Crossfade(now, fade_s, drawing=drawing, stamps=stamps, sketch=pending.sketch)
        w_new = np.asarray(self.backend.encode(x), dtype=np.float32)
        self.stats.count_inference(now)
        if w_shown is None:  # nothing to move from: show it at once
            return Crossfade(now, fade_s, w=w_new, stamps=stamps, sketch=pending.sketch)
        steps = cfg.transition.latent_steps
        return LatentMove(w_shown, w_new, now, steps, fade_s / steps, pending.sketch, stamps)

    def _wander(self, w_shown: np.ndarray | None, now: float) -> Wander:
        idle = self.config.idle
        blank_ink = self.config.change.blank_ink

        def strokes() -> Sketch | None:  # the sheet's strokes over the idle drawing, unless it is blank
            latest = self.latest_sketch
            return latest if latest is not None and latest.ink_fraction >= blank_ink else None

        return Wander(self.backend, idle.psi, idle.wander_speed, now, start=w_shown, seed=self.seed,
                      period_s=1.0 / idle.fps, first_fade_s=self.config.transition.duration_s, sketch=strokes)

    def _idle(self, shown: Motion | None, now: float) -> Motion:
        """Nobody draws: the idle wander; where the bundle cannot wander (no mapping or
        generator graph), the drawing on show stays, or the drawing of an empty sheet."""
        if self._can_wander:
            try:
                return self._wander(shown.w_shown if shown is not None else None, now)
            except Exception as exc:
                self._can_wander = False
                self.stats.count_fault("inference")
                log.warning("event=idle_wander_unavailable error=%r action=still_drawing", exc)
        if shown is not None:
            return shown
        paper = np.ones((1, 1, self.resolution, self.resolution), np.float32)
        return Crossfade(now, 0.0, drawing=self.backend.sketch_to_drawing(paper))

    def _infer_forever(self) -> None:
        motion: Motion | None = None
        last_change: float | None = None  # when a visitor last changed the sheet (None: not yet)
        while not self._stop.is_set():
            if self._next_model is not None:
                self._change_model()
                motion = None  # a motion holds the old model's codes; the drawing on show stays
            idle_after = self.config.idle.after_s
            now = time.monotonic()
            # From the first frame on, the projector shows something: until a visitor draws, and
            # idle.after_s after the last change, the attract picture (the wander).
            idle_due = last_change is None or now - last_change >= idle_after
            try:
                if idle_due and not isinstance(motion, Wander):
                    motion = self._idle(motion, now)
                    self.stats.set_idle(True)
                due = motion.due() if motion is not None else None
                pending = None
                if due is None or now < due or isinstance(motion, Wander):
                    # Wait for a sketch until something is due. A due latent step goes out
                    # first (the move would stutter); a visitor's sketch goes before the wander.
                    until = due if due is not None else now + 0.1
                    if last_change is not None and not idle_due:
                        until = min(until, last_change + idle_after)
                    pending = self._sketches.take(until - now) if until > now else self._sketches.take_nowait()
                    now = time.monotonic()
                if pending is not None and pending.sketch.image.shape != (self.resolution, self.resolution):
                    pending = None  # binarized for the model before the swap; the next one is the new grid's
                if pending is not None:
                    motion = self._answer(pending, motion, now)
                    if not pending.blank:
                        last_change = now
                    self.stats.set_idle(isinstance(motion, Wander))
                due = motion.due() if motion is not None else None
                if due is not None and now >= due:
                    step = motion.step(now)
                    self._post(step)
                    if not isinstance(motion, Crossfade):
                        self.stats.count_generation()
            except Exception as exc:  # the model failed on this one: keep the last good drawing
                self.stats.count_fault("inference")
                if isinstance(exc, BadModelOutput):
                    self.stats.count_bad_output(str(exc))
                self._warn.warning("inference_fault", "error=%r", exc, exc_info=log.isEnabledFor(logging.DEBUG))
                if isinstance(motion, Wander):
                    motion.postpone(now + max(motion.period_s, 1.0))
                else:
                    motion = None
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
        self._t_new_frame = time.monotonic()
        try:
            self._display_forever(seconds)
        finally:
            self._stop.set()
            deadline = time.monotonic() + STOP_S
            for thread in self._threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
                if thread.is_alive():  # a read or a model call that hangs: it ends on its own, we don't wait
                    log.warning("event=thread_still_busy thread=%s action=leave_it", thread.name)
            self.stats.set_stopped()
        return self.status()

    def _display_forever(self, seconds: float | None) -> None:
        cfg = self.config
        period = 1.0 / cfg.display.fps
        fade = Blend(cfg.transition.duration_s)
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
            self._watch_camera(t_display)
            if self.on_display_frame:
                pulse = self.pulse(t_display)
                for hook in self.on_display_frame:
                    hook(pulse)
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
