"""What the drawing does over time, as one kind of object (as diffusers' schedulers are).

A motion is a short or endless sequence of steps. The inference thread asks `due()` when
the next step should go out (None: the motion is over, the last step stays on show) and
`step(now)` for it; each `Step` is either a drawing the model already made or a W+ code to
generate, with how long the projector blends into it (render.transition.Crossfade).

- `Crossfade`: one answer, blended in over the transition's duration (a duration of 0 is a
  cut). The fused graph's answers, and the first latent answer when nothing is on show.
- `LatentMove`: from the W+ on show to a new sketch's, one generated frame per step.
- `Wander`: idle mode, a slow random walk through the mapping network's drawings.

Each knows the W+ it last showed (`w_shown`, None when the model gave no code), so the
next motion starts where this one left off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from capture.frames import Sketch
from render.transition import ease


@dataclass(frozen=True)
class Step:
    drawing: np.ndarray | None  # the model's output [1, C, R, R], when the motion has it...
    w: np.ndarray | None  # ...else the W+ [1, num_ws, w_dim] to generate it from
    fade_s: float  # how long the projector blends into it
    stamps: tuple = ()  # (t_capture, t_stroke, sequence) of the answer this step shows first
    sketch: Sketch | None = None  # whose strokes are composited over it


class Motion:
    w_shown: np.ndarray | None = None

    def due(self) -> float | None:
        """Monotonic time the next step should go out; None when the motion is over."""
        raise NotImplementedError

    def step(self, now: float) -> Step:
        raise NotImplementedError


class Crossfade(Motion):
    """One answer: `drawing` (or the W+ `w`) shown once, blended in over `fade_s`."""

    def __init__(self, t: float, fade_s: float, *, drawing: np.ndarray | None = None, w: np.ndarray | None = None,
                 stamps: tuple = (), sketch: Sketch | None = None):
        self._step: Step | None = Step(drawing, w, fade_s, stamps, sketch)
        self._t = t
        self.w_shown = w

    def due(self) -> float | None:
        return None if self._step is None else self._t

    def step(self, now: float) -> Step:
        step, self._step = self._step, None
        return step


class LatentMove(Motion):
    """`steps` generated frames from `w_from` to `w_to`, one every `step_s`, the first at once."""

    def __init__(self, w_from: np.ndarray, w_to: np.ndarray, t0: float, steps: int, step_s: float,
                 sketch: Sketch, stamps: tuple):
        self.w_from, self.w_to = w_from, w_to
        self.t0, self.steps, self.step_s = t0, steps, step_s
        self.sketch, self.stamps = sketch, stamps
        self.k = 1  # the next step, 1..steps
        self.w_shown = w_from

    def due(self) -> float | None:
        return None if self.k > self.steps else self.t0 + (self.k - 1) * self.step_s

    def step(self, now: float) -> Step:
        self.w_shown = self.w_from + ease(self.k / self.steps) * (self.w_to - self.w_from)
        stamps = self.stamps if self.k == 1 else ()  # the first step is the answer's latency
        self.k += 1
        return Step(None, self.w_shown, self.step_s, stamps, self.sketch)


def smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class Wander(Motion):
    """Idle mode: when nobody draws, the drawing wanders slowly through the latent space.

    Keyframes are truncated samples of the mapping network, `w_avg + psi * (map(z) - w_avg)`,
    or, where the bundle carries them (`Bundle.idle_codes`: a generator less varied than
    its collection would show one template all day), W+ codes of the collection's own
    drawings in a random order, one every 1 / speed seconds; between two keyframes the W code moves along a smoothstep
    curve, so the drawing drifts, slows at each keyframe and moves on, never jumping. The walk
    starts from the W+ on show (`start`), so leaving a visitor's drawing is as smooth as the
    rest; from a drawing with no known W+ the first frame is a jump, faded in over `first_fade_s`.
    A frame goes out every `period_s`, endlessly; `sketch()` gives the strokes to composite.
    """

    def __init__(self, backend, psi: float, speed: float, t0: float, start: np.ndarray | None = None,
                 seed: int | None = None, period_s: float = 1.0, first_fade_s: float | None = None,
                 sketch: Callable[[], Sketch | None] = lambda: None):
        bundle = backend.bundle
        self._backend = backend
        self._num_ws = int(bundle.num_ws)
        self._z_dim = int(bundle.z_dim)
        self._w_avg = np.asarray(bundle.w_avg, dtype=np.float32).reshape(1, 1, -1)
        self._codes = getattr(bundle, "idle_codes", None)
        self.psi = float(psi)
        self.period = 1.0 / float(speed)
        self._rng = np.random.default_rng(seed)
        self._t0 = t0
        self._from = self._keyframe() if start is None else np.asarray(start, np.float32).reshape(1, self._num_ws, -1)
        self._to = self._keyframe()
        self.period_s = period_s
        self._next = t0
        self._fade_s = period_s if start is not None else max(period_s, first_fade_s or 0.0)
        self._sketch = sketch

    def _keyframe(self) -> np.ndarray:
        if self._codes is not None:
            return self._codes[self._rng.integers(len(self._codes))][None].astype(np.float32)
        z = self._rng.standard_normal((1, self._z_dim)).astype(np.float32)
        w = np.asarray(self._backend.map(z), dtype=np.float32).reshape(1, 1, -1)
        w = self._w_avg + self.psi * (w - self._w_avg)  # truncation keeps idle drawings typical
        return np.repeat(w, self._num_ws, axis=1)

    def at(self, t: float) -> np.ndarray:
        """The W+ code ([1, num_ws, w_dim] float32) for time t; moves on to new keyframes."""
        while t - self._t0 >= self.period:
            self._t0 += self.period
            self._from, self._to = self._to, self._keyframe()
        s = smoothstep((t - self._t0) / self.period)
        return (1.0 - s) * self._from + s * self._to

    def due(self) -> float:
        return self._next

    def postpone(self, until: float) -> None:
        """After a failed step: a broken idle graph is retried slowly, not at frame rate."""
        self._next = max(self._next, until)

    def step(self, now: float) -> Step:
        self.w_shown = self.at(now)
        fade_s, self._fade_s = self._fade_s, self.period_s
        self._next = max(self._next + self.period_s, now)
        return Step(None, self.w_shown, fade_s, (), self._sketch())
