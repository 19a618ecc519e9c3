"""The table's running statistics: rejected frames counted over a window of time."""
from __future__ import annotations

from table.stats import REJECTED_WINDOW_S, TableStats


def feed(stats: TableStats, t0: float, seconds: float, fps: float, rejected_every: int | None) -> float:
    """Frames at `fps` for `seconds` from t0; every `rejected_every`-th one rejected. Returns the end time."""
    n = int(seconds * fps)
    for i in range(n):
        t = t0 + i / fps
        bad = rejected_every is not None and i % rejected_every == 0
        stats.count_frame(t, "frame is 640x360, camera.resolution is 320x180" if bad else None, now=t)
    return t0 + n / fps


def problems_at(stats: TableStats, now: float) -> list[str]:
    with stats._lock:
        return stats._problems(now)


def test_a_sizeable_share_of_rejected_frames_is_a_problem_until_it_passes():
    stats = TableStats()
    t = feed(stats, 100.0, 6.0, 30.0, rejected_every=5)  # 20%
    found = problems_at(stats, t)
    assert found == ["camera: 20% of frames rejected in the last 5 s (30 of 150; last: frame is 640x360, "
                     "camera.resolution is 320x180)"]
    t = feed(stats, t, REJECTED_WINDOW_S + 0.1, 30.0, rejected_every=None)  # the camera settles
    assert problems_at(stats, t) == []


def test_a_few_rejected_frames_are_no_problem():
    stats = TableStats()
    t = feed(stats, 0.0, 5.0, 30.0, rejected_every=20)  # 5%
    assert problems_at(stats, t) == []
    lone = TableStats()
    lone.count_frame(0.0, "all black (IR light off or lens covered?)", now=0.0)  # one frame of two at the start
    lone.count_frame(0.03, None, now=0.03)
    assert problems_at(lone, 0.03) == []
