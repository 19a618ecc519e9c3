"""What the console's live view costs the table: the loop with and without a browser
fetching /view.jpg, in alternating phases of one run (the machine's load drifts).

    python benchmarks/bench_console.py [--bundle DIR] [--phase 10] [--rounds 3] [--rate 4]

The table runs the bundle (the demo by default) on the simulated pen and a headless
projector, under a kiosk serving the console. Each round is one phase without a viewer and
one with a client fetching the view `--rate` times a second (the page asks for about 4);
printed per phase: display fps, answers per second, new-stroke latency p50/p95 and the time
to serve one view.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def simulated_kiosk(bundle: Path | None):
    """(kiosk, parts): a started kiosk, headless, on the simulated pen camera, its health
    server on a free port; tables are attached by the caller (`open_table(parts)`)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from config import Config
    from kiosk.kiosk import Kiosk, model_info
    from kiosk.notify import Notifier
    from table.assemble import prepare

    config = Config.from_dict({"camera": {"source": "simulated"}, "display": {"mode": "headless"},
                               "stats": {"log_every_s": 0}, "idle": {"after_s": 600}, "health": {"port": 0}})
    parts = prepare(config, bundle=bundle)
    kiosk = Kiosk(config, notifier=Notifier({}))
    kiosk.parts, kiosk.model = parts, model_info(parts)
    kiosk.start()
    return kiosk, parts


def run(bundle: Path | None = None, phase_s: float = 10.0, rounds: int = 3, rate: float = 4.0) -> list[dict]:
    from table.assemble import open_table

    kiosk, parts = simulated_kiosk(bundle)
    view = kiosk.health.url + "/view.jpg"
    rows = []
    print(f"bundle {parts.bundle.path}, backend {parts.backend.name}, {os.cpu_count()} CPUs, "
          f"phases of {phase_s:g} s, viewer at {rate:g}/s")
    print(f"{'phase':>10} {'display fps':>11} {'answers/s':>9} {'stroke p50':>10} {'p95 ms':>7} {'view ms':>8}")
    try:
        for _ in range(rounds):
            for viewer in (False, True):
                table = open_table(parts)
                kiosk.attach(table, source=parts.source)
                stop = threading.Event()
                served: list[float] = []

                def fetch():
                    while not stop.wait(1.0 / rate):
                        t0 = time.perf_counter()
                        urllib.request.urlopen(view, timeout=5).read()
                        served.append(time.perf_counter() - t0)

                fetcher = threading.Thread(target=fetch, daemon=True)
                if viewer:
                    fetcher.start()
                status = table.run(phase_s)
                stop.set()
                if viewer:
                    fetcher.join(5)
                kiosk.detach()
                table.display.close()
                row = {"viewer": viewer, "display_fps": status.display_fps, "inference_fps": status.inference_fps,
                       "stroke_p50_ms": status.stroke_latency_ms["p50"], "stroke_p95_ms": status.stroke_latency_ms["p95"],
                       "view_ms": float(np.median(served)) * 1000 if served else None}
                rows.append(row)
                print(f"{'viewer' if viewer else 'none':>10} {row['display_fps']:11.1f} {row['inference_fps']:9.1f} "
                      f"{row['stroke_p50_ms'] or float('nan'):10.0f} {row['stroke_p95_ms'] or float('nan'):7.0f} "
                      + (f"{row['view_ms']:8.1f}" if row["view_ms"] is not None else f"{'-':>8}"))
    finally:
        kiosk.stop()
        parts.close()
    for key in ("display_fps", "inference_fps", "stroke_p95_ms"):
        with_ = [r[key] for r in rows if r["viewer"] and r[key] is not None]
        without = [r[key] for r in rows if not r["viewer"] and r[key] is not None]
        if with_ and without:
            print(f"{key}: with viewer / without = {np.median(with_) / np.median(without):.3f}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=4.0, help="view fetches per second")
    args = parser.parse_args(argv)
    run(args.bundle, args.phase, args.rounds, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
