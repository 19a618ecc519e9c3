"""table.motion: the idle wander is truncated, starts from the drawing on show and never jumps."""
from __future__ import annotations

import numpy as np

from table.motion import Wander
from tests.table.fakes import FakeBackend


def test_psi_zero_stays_on_the_average_drawing():
    """Truncation psi = 0 pins every code to w_avg (the check that truncation is applied)."""
    backend = FakeBackend()
    backend.bundle.w_avg = np.linspace(-1, 1, 8).astype(np.float32)
    wander = Wander(backend, psi=0.0, speed=1.0, t0=0.0, seed=0)
    for t in (0.0, 0.3, 1.7, 5.2):
        w = wander.at(t)
        assert w.shape == (1, 4, 8)
        assert np.allclose(w, backend.bundle.w_avg)


def test_wander_starts_from_the_code_on_show_and_moves_smoothly():
    """At t0 the wander is exactly the given W+; afterwards no step between 10 ms samples is large."""
    backend = FakeBackend()
    start = np.full((1, 4, 8), 3.0, np.float32)
    wander = Wander(backend, psi=0.7, speed=2.0, t0=10.0, start=start, seed=1)
    assert np.allclose(wander.at(10.0), start)
    codes = [wander.at(10.0 + 0.01 * i) for i in range(300)]  # six keyframes
    steps = [float(np.abs(b - a).max()) for a, b in zip(codes, codes[1:])]
    spread = float(np.abs(codes[-1] - codes[0]).max())
    assert spread > 0.5  # it does wander
    assert max(steps) < 0.1 * max(spread, 1.0)  # but never jumps
    assert backend.calls["map"] >= 6
