"""Memory and threads of the running table under a fault mix, over a long run.

    python benchmarks/bench_memory.py [--minutes 30] [--speed 4] [--bundle DIR] [--every 60]

The whole kiosk runs (`kiosk.run_kiosk`: the health endpoint, the simulated table
controller, a fresh table after each press of the new-sheet button) on the bundle (the demo
by default), a simulated pen camera and a headless projector. Camera and display run
`--speed` times faster than the configured 30 fps, so `--minutes` of table time (frames,
answers, faults and presses as in that many minutes) take minutes / speed of wall time.
The fault mix, per simulated minute: a camera read that raises every 200 frames, a frame of
the wrong size every 300, a NaN answer every 50 model calls, a display that raises every
500 frames, two button presses and 60 health requests.

Prints RSS (MB) and live threads every `--every` simulated seconds, then the growth over
the first and the second half of the run: growth that levels off is the caches filling
(ONNX Runtime's arenas, the stats windows); growth that goes on is a leak.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class FaultySource:
    """A camera that sometimes raises and sometimes changes its frame size."""

    def __init__(self, source, raise_every: int = 200, resize_every: int = 300):
        self.source, self.raise_every, self.resize_every = source, raise_every, resize_every
        self.reads = 0

    def read(self, timeout: float = 1.0):
        self.reads += 1
        if self.reads % self.raise_every == 0:
            raise OSError("camera read failed (injected)")
        frame = self.source.read(timeout)
        if frame is not None and self.reads % self.resize_every == 0:
            import dataclasses

            frame = dataclasses.replace(frame, image=frame.image[::2, ::2].copy())
        return frame

    def health(self):
        return self.source.health()

    def close(self):
        self.source.close()


class FaultyBackend:
    """The model, answering NaN every `nan_every` calls."""

    def __init__(self, backend, nan_every: int = 50):
        self.backend, self.nan_every, self.calls = backend, nan_every, 0

    def __getattr__(self, name):
        attr = getattr(self.backend, name)
        if name not in ("sketch_to_drawing", "generate"):
            return attr

        def call(*args):
            self.calls += 1
            out = attr(*args)
            return np.full_like(out, np.nan) if self.calls % self.nan_every == 0 else out

        return call


class FaultyDisplay:
    def __init__(self, display, raise_every: int = 500):
        self.display, self.raise_every, self.shown = display, raise_every, 0

    def show(self, rgb):
        self.shown += 1
        if self.shown % self.raise_every == 0:
            raise RuntimeError("display lost (injected)")
        self.display.show(rgb)

    def __getattr__(self, name):
        return getattr(self.display, name)


def run(minutes: float = 30.0, speed: float = 4.0, bundle: Path | None = None, every_s: float = 60.0) -> list[dict]:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from capture.simulated import SimulatedPenCamera, SimulatedPenSettings
    from config import Config
    from kiosk.controller import Event
    from kiosk.kiosk import Kiosk
    from kiosk.run import run_kiosk
    from kiosk.notify import Notifier
    from render.display import Display
    from table.assemble import open_table, prepare

    fps = 30.0 * speed
    config = Config.from_dict({
        "camera": {"source": "simulated", "fps": fps},
        "display": {"mode": "headless", "size": [640, 360], "fps": fps},
        "idle": {"after_s": 10.0 / speed},
        "stats": {"log_every_s": 0},
        "serial": {"port": "simulated"},
        "health": {"port": 0},
    })
    w, h = config.camera.resolution
    source = FaultySource(SimulatedPenCamera(SimulatedPenSettings(width=w, height=h, fps=fps, seed=0)))
    parts = prepare(config, bundle=bundle, source=source)
    parts.backend = FaultyBackend(parts.backend)
    display = FaultyDisplay(Display("headless", config.display.size))
    kiosk = Kiosk(config, notifier=Notifier({}))
    stop = threading.Event()
    wall_s = minutes * 60.0 / speed
    runner = threading.Thread(target=run_kiosk, args=(parts, open_table),
                              kwargs={"kiosk": kiosk, "display": display, "stop": stop, "seconds": wall_s},
                              daemon=True)
    runner.start()
    samples = []
    t0 = time.monotonic()
    next_sample = next_press = next_probe = t0
    print(f"{minutes:.0f} simulated minutes at {speed:g}x ({wall_s / 60:.1f} min of wall time), "
          f"backend {parts.backend.name}")
    print(f"{'sim min':>8} {'RSS MB':>8} {'threads':>8} {'tables':>7} {'faults':>8}")
    while runner.is_alive():
        now = time.monotonic()
        if now >= next_probe and kiosk.health is not None:
            next_probe += 1.0 / speed
            try:
                urllib.request.urlopen(kiosk.health.url + "/status", timeout=2).read()
            except OSError:
                pass
        if now >= next_press:
            next_press += 30.0 / speed
            kiosk._on_event(Event("BUTTON", ("NEW_SHEET",)))  # as the controller delivers it
        if now >= next_sample:
            next_sample += every_s / speed
            snap = kiosk.snapshot()
            sample = {"sim_min": (now - t0) * speed / 60, "rss_mb": rss_mb(), "threads": threading.active_count(),
                      "tables": kiosk.button_presses + 1, "faults": sum(snap["faults"].values())}
            samples.append(sample)
            print(f"{sample['sim_min']:8.1f} {sample['rss_mb']:8.1f} {sample['threads']:8d} "
                  f"{sample['tables']:7d} {sample['faults']:8d}", flush=True)
        time.sleep(0.02)
    runner.join()
    parts.close()
    if len(samples) >= 4:
        half = len(samples) // 2
        first = samples[half]["rss_mb"] - samples[0]["rss_mb"]
        second = samples[-1]["rss_mb"] - samples[half]["rss_mb"]
        print(f"RSS growth: first half {first:+.1f} MB, second half {second:+.1f} MB; threads "
              f"{samples[0]['threads']} -> {samples[-1]['threads']} (max {max(s['threads'] for s in samples)})")
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes of table time")
    parser.add_argument("--speed", type=float, default=4.0, help="camera and display this many times 30 fps")
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--every", type=float, default=60.0, help="simulated seconds between samples")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the injected faults' warnings are counted, not printed
    run(args.minutes, args.speed, args.bundle, args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
