"""The last hour of the table's vital signs, kept by the kiosk for the console's plots:
one sample every STEP_S (display fps, new-stroke latency p95, faults so far, camera age,
state), whether or not anyone looks."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

STEP_S = 10.0
KEEP_S = 3600.0


class History:
    def __init__(self, snapshot: Callable[[], dict], step_s: float = STEP_S, keep_s: float = KEEP_S,
                 clock: Callable[[], float] = time.time):
        self._snapshot = snapshot
        self.step_s = step_s
        self._clock = clock
        self._samples: deque[dict] = deque(maxlen=max(1, int(keep_s / step_s)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict:
        """Take one sample now (the thread calls it every step_s)."""
        status = self._snapshot()
        sample = {
            "t": round(self._clock(), 1),  # wall clock: the page labels the hour
            "state": status.get("state"),
            "display_fps": (status.get("fps") or {}).get("display"),
            "stroke_p95_ms": (status.get("stroke_latency_ms") or {}).get("p95"),
            "faults": sum((status.get("faults") or {}).values()),
            "camera_age_s": (status.get("camera") or {}).get("last_frame_age_s"),
        }
        self._samples.append(sample)
        return sample

    def to_dict(self) -> dict:
        return {"step_s": self.step_s, "samples": list(self._samples)}

    def start(self) -> "History":
        def run():
            while not self._stop.wait(self.step_s):
                try:
                    self.sample()
                except Exception:  # a failing snapshot leaves a hole in the plot, nothing more
                    continue

        self._thread = threading.Thread(target=run, name="kiosk-history", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
