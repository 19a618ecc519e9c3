"""Running statistics of the table, written by its threads and read from any other.

The loop's threads call the `count_*`/`record_*` methods; anyone (the health server, the
watchdog, `newsnow demo`) calls `snapshot()` for a frozen `TableStatus`. One lock guards
it all; every method holds it for a few arithmetic operations only.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field

import numpy as np

# This many model outputs in a row that are no drawing (NaN, inf, wrong shape): degraded.
BAD_OUTPUTS_DEGRADED = 3
# This many camera frames in a row that fail their checks (a second at 30 fps): degraded.
BAD_FRAMES_DEGRADED = 30
# Over this share of the frames of the last REJECTED_WINDOW_S rejected (a camera alternating
# sizes, a flickering IR light) is degraded too, once the window holds REJECTED_MIN_FRAMES.
REJECTED_WINDOW_S = 5.0
REJECTED_SHARE_DEGRADED = 0.10
REJECTED_MIN_FRAMES = 10


@dataclass(frozen=True)
class TableStatus:
    """What the table is doing, at one moment."""

    state: str  # starting | running | idle | stopped (the kiosk's words for the same states)
    uptime_s: float
    backend: str
    transition: str  # crossfade | latent (what "auto" chose)
    step_ms: float | None  # measured latent step: generate + tone + warp (what "auto" decided on)
    frames_captured: int
    frames_displayed: int
    inferences: int  # sketches answered by the model
    generations: int  # frames generated for latent transitions and idle wander
    skipped_unchanged: int  # sketches not inferred because the sheet had not changed
    dropped_stale: int  # items overwritten in a hand-off before they were used
    faults: dict[str, int]  # by kind: bad_frame, camera, binarize, inference, display
    display_fps: float  # over the whole run
    inference_fps: float  # answered sketches per second since the first answer (over inference_span_s)
    display_fps_recent: float  # over the last stats window of frames
    latency_ms: dict[str, float | None]  # capture of the answered sketch -> display, {p50, p95, max, n}
    stroke_latency_ms: dict[str, float | None]  # first frame showing a new stroke -> display of its answer
    last_frame_age_s: float | None  # how long since the camera gave a frame
    idle: bool
    model_busy_s: float = 0.0  # how long the model call in progress has run (0: none is running)
    problems: list[str] = field(default_factory=list)  # what keeps the projector from a drawing, in words
    transition_reason: str = ""  # why that transition ("auto": what it measured)
    model_fit: bool | None = None  # the bundle's model report: fit for the table (None: never evaluated)
    warnings: list[str] = field(default_factory=list)  # what does not stop the table but should be known
    inference_span_s: float = 0.0  # seconds from the first answer to now: what inference_fps is over

    def to_dict(self) -> dict:
        return asdict(self)


def _percentiles(samples, total: list[float]) -> dict[str, float | None]:
    """p50/p95/max over the window of samples (ms), and the count and sum (ms) since the
    start (what a Prometheus summary reports beside its quantiles)."""
    count, sum_ms = int(total[0]), round(total[1] * 1000.0, 2)
    if not samples:
        return {"p50": None, "p95": None, "max": None, "n": 0, "count": count, "sum": sum_ms}
    a = np.asarray(samples, dtype=np.float64) * 1000.0
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "max": round(float(a.max()), 2),
        "n": int(a.size),
        "count": count,
        "sum": sum_ms,
    }


# Every kind of fault the table counts, so that a status lists each from the start (at 0).
FAULT_KINDS = ("bad_frame", "camera", "camera_stalled", "frame_clock", "binarize", "inference", "display")


@dataclass
class TableStats:
    window: int = 600
    backend: str = ""
    transition: str = ""
    step_ms: float | None = None
    transition_reason: str = ""
    model_fit: bool | None = None
    warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.t_start = time.monotonic()
        self.frames_captured = 0
        self.frames_displayed = 0
        self.inferences = 0
        self.generations = 0
        self.skipped_unchanged = 0
        self.dropped_stale = 0
        self.faults: Counter[str] = Counter()
        self.t_first_display: float | None = None
        self.t_last_display: float | None = None
        self.t_first_inference: float | None = None
        self.t_last_frame: float | None = None
        self._display_times: deque[float] = deque(maxlen=self.window)
        self._latency: deque[float] = deque(maxlen=self.window)
        self._stroke_latency: deque[float] = deque(maxlen=self.window)
        self._latency_total = [0, 0.0]  # answers shown, seconds of latency, since the start
        self._stroke_latency_total = [0, 0.0]
        self.idle = False
        self.stopped = False
        self.bad_outputs_in_a_row = 0
        self.last_bad_output = ""
        self.bad_frames_in_a_row = 0
        self.last_bad_frame = ""
        self._recent_frames: deque[tuple[float, bool]] = deque()  # (arrival, rejected) over REJECTED_WINDOW_S
        self._recent_rejected = 0

    def count_frame(self, t_capture: float, problem: str | None = None, now: float | None = None) -> None:
        """A frame from the camera; with `problem` a rejected one, which is no sign of life:
        only a frame that passes its checks makes the camera fresh."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.frames_captured += 1
            self._recent_frames.append((now, bool(problem)))
            self._recent_rejected += bool(problem)
            self._forget_frames(now)
            if problem:
                self.faults["bad_frame"] += 1
                self.bad_frames_in_a_row += 1
                self.last_bad_frame = problem
            else:
                self.bad_frames_in_a_row = 0
                self.t_last_frame = t_capture

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def count_bad_output(self, why: str) -> None:
        """The model answered with no drawing (the last good one stays on show)."""
        with self._lock:
            self.bad_outputs_in_a_row += 1
            self.last_bad_output = why

    def count_good_output(self) -> None:
        with self._lock:
            self.bad_outputs_in_a_row = 0

    def _forget_frames(self, now: float) -> None:
        recent = self._recent_frames
        while recent and recent[0][0] < now - REJECTED_WINDOW_S:
            self._recent_rejected -= recent.popleft()[1]

    def _problems(self, now: float) -> list[str]:
        found = []
        self._forget_frames(now)
        seen, rejected = len(self._recent_frames), self._recent_rejected
        if self.bad_frames_in_a_row >= BAD_FRAMES_DEGRADED:
            found.append(f"camera: every frame rejected ({self.last_bad_frame}), "
                         f"{self.bad_frames_in_a_row} in a row")
        elif seen >= REJECTED_MIN_FRAMES and rejected > REJECTED_SHARE_DEGRADED * seen:
            found.append(f"camera: {100 * rejected / seen:.0f}% of frames rejected in the last "
                         f"{REJECTED_WINDOW_S:.0f} s ({rejected} of {seen}; last: {self.last_bad_frame})")
        if self.bad_outputs_in_a_row >= BAD_OUTPUTS_DEGRADED:
            found.append(f"model: {self.bad_outputs_in_a_row} bad outputs in a row ({self.last_bad_output})")
        return found

    def count_skipped(self) -> None:
        with self._lock:
            self.skipped_unchanged += 1

    def count_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped_stale += n

    def count_inference(self, t: float) -> None:
        with self._lock:
            self.inferences += 1
            if self.t_first_inference is None:
                self.t_first_inference = t

    def count_generation(self) -> None:
        with self._lock:
            self.generations += 1

    def set_idle(self, idle: bool) -> None:
        with self._lock:
            self.idle = idle

    def set_model(self, backend: str, transition: str, step_ms: float | None) -> None:
        with self._lock:
            self.backend, self.transition, self.step_ms = backend, transition, step_ms

    def set_stopped(self) -> None:
        with self._lock:
            self.stopped = True

    def _state(self) -> str:
        if self.stopped:
            return "stopped"
        if self.frames_displayed == 0:
            return "starting"
        return "idle" if self.idle else "running"

    def record_display(self, t_display: float, latency: float | None = None,
                       stroke_latency: float | None = None) -> None:
        """One projector frame shown; latencies only when it first shows a new answer."""
        with self._lock:
            self.frames_displayed += 1
            if self.t_first_display is None:
                self.t_first_display = t_display
            self.t_last_display = t_display
            self._display_times.append(t_display)
            if latency is not None:
                self._latency.append(latency)
                self._latency_total[0] += 1
                self._latency_total[1] += latency
            if stroke_latency is not None:
                self._stroke_latency.append(stroke_latency)
                self._stroke_latency_total[0] += 1
                self._stroke_latency_total[1] += stroke_latency

    def snapshot(self, model_busy_s: float = 0.0) -> TableStatus:
        now = time.monotonic()
        with self._lock:
            shown = self.frames_displayed
            span = (self.t_last_display - self.t_first_display) if shown > 1 else 0.0
            recent = self._display_times
            recent_span = recent[-1] - recent[0] if len(recent) > 1 else 0.0
            inf_span = (now - self.t_first_inference) if self.t_first_inference is not None else 0.0
            return TableStatus(
                state=self._state(),
                uptime_s=round(now - self.t_start, 3),
                backend=self.backend,
                transition=self.transition,
                step_ms=None if self.step_ms is None else round(self.step_ms, 2),
                frames_captured=self.frames_captured,
                frames_displayed=shown,
                inferences=self.inferences,
                generations=self.generations,
                skipped_unchanged=self.skipped_unchanged,
                dropped_stale=self.dropped_stale,
                faults=dict(self.faults),
                display_fps=round((shown - 1) / span, 2) if span > 0 else 0.0,
                inference_fps=round(self.inferences / inf_span, 2) if inf_span > 0 else 0.0,
                display_fps_recent=round((len(recent) - 1) / recent_span, 2) if recent_span > 0 else 0.0,
                latency_ms=_percentiles(self._latency, self._latency_total),
                stroke_latency_ms=_percentiles(self._stroke_latency, self._stroke_latency_total),
                last_frame_age_s=None if self.t_last_frame is None else round(now - self.t_last_frame, 3),
                idle=self.idle,
                model_busy_s=round(model_busy_s, 3),
                problems=self._problems(now),
                transition_reason=self.transition_reason,
                model_fit=self.model_fit,
                warnings=list(self.warnings),
                inference_span_s=round(inf_span, 2),
            )
