"""Idle mode: when nobody draws, the table wanders slowly through the model's latent space.

Keyframes are truncated samples of the mapping network, `w_avg + psi * (map(z) - w_avg)`,
one every 1 / speed seconds; between two keyframes the W code moves along a smoothstep
curve, so the drawing drifts, slows at each keyframe and moves on, never jumping. The walk
starts from the W+ on show, so leaving a visitor's drawing is as smooth as the rest.
"""
from __future__ import annotations

import numpy as np


def smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class Wander:
    """W+ codes along a slow random walk; `at(t)` gives the code for time t (seconds)."""

    def __init__(self, backend, psi: float, speed: float, t0: float,
                 start: np.ndarray | None = None, seed: int | None = None):
        bundle = backend.bundle
        self._backend = backend
        self._num_ws = int(bundle.num_ws)
        self._z_dim = int(bundle.z_dim)
        self._w_avg = np.asarray(bundle.w_avg, dtype=np.float32).reshape(1, 1, -1)
        self.psi = float(psi)
        self.period = 1.0 / float(speed)
        self._rng = np.random.default_rng(seed)
        self._t0 = t0
        self._from = self._keyframe() if start is None else np.asarray(start, np.float32).reshape(1, self._num_ws, -1)
        self._to = self._keyframe()

    def _keyframe(self) -> np.ndarray:
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
