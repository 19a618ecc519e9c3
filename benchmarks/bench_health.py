"""What the health endpoint holds and what it costs the table: idle connections and probes
against the running table, and the display's longest gap across model reloads.

    python benchmarks/bench_health.py [--bundle DIR] [--phase 10] [--rounds 2] [--idle 1000]
                                      [--probers 20] [--reloads 3]

The table runs the bundle (the demo by default) on the simulated pen and a headless
projector, under a kiosk serving the console. Each round is one phase with no client and one
with a client process that holds `--idle` silent connections (half with a half-sent request)
while `--probers` threads ask /healthz, /status and /metrics in turn, as fast as answers come
or at `--rate` probes a second in all (Prometheus and systemd ask far less often).
Printed per phase: display fps, the longest display gap, new-stroke latency p95, probes
answered and refused, probe latency p50/p99 and the connections the server held.

Then `--reloads` model reloads (the console's "Reload the model": the bundle prepared again
beside the running table and swapped in): the longest display gap during each, against the
longest gap of a phase without a reload, and how long each load took; and as many reloads
the way they were before (stop the table, prepare, start a new one): how long the projector
held its last frame.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLIENT = r'''
import json, socket, sys, threading, time, urllib.request
port, idle, probers, seconds, rate = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                                      float(sys.argv[5]))
silent = []
for i in range(idle):
    s = socket.create_connection(("127.0.0.1", port))
    if i % 2:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    silent.append(s)
print("ready", flush=True)
times, refused = [], [0]
lock = threading.Lock()
end = time.monotonic() + seconds
def probe(k):
    pages = ("/healthz", "/status", "/metrics")
    n = k
    while time.monotonic() < end:
        if rate:  # each prober's share of the rate (0: as fast as answers come)
            time.sleep(probers / rate)
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{pages[n % 3]}", timeout=5) as r:
                r.read()
            with lock:
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # 503 while degraded is an answer too
            if getattr(exc, "code", None) is not None:
                with lock:
                    times.append(time.perf_counter() - t0)
            else:
                with lock:
                    refused[0] += 1
        n += 1
threads = [threading.Thread(target=probe, args=(k,)) for k in range(probers)]
for t in threads: t.start()
for t in threads: t.join()
times.sort()
print(json.dumps({"answered": len(times), "refused": refused[0],
                  "p50_ms": 1000 * times[len(times) // 2] if times else None,
                  "p99_ms": 1000 * times[int(len(times) * 0.99)] if times else None}), flush=True)
for s in silent: s.close()
'''


def run(bundle: Path | None, phase_s: float, rounds: int, idle: int, probers: int, reloads: int,
        rate: float = 0.0) -> dict:
    from benchmarks.bench_console import simulated_kiosk
    from table.assemble import open_table

    kiosk, parts = simulated_kiosk(bundle)
    port = kiosk.health.port
    print(f"bundle {parts.bundle.path}, backend {parts.backend.name}, {os.cpu_count()} CPUs "
          f"(affinity {sorted(os.sched_getaffinity(0))}), phases of {phase_s:g} s, {idle} idle connections, "
          f"{probers} probers at {'their fastest' if not rate else f'{rate:g}/s in all'}")
    print(f"{'phase':>8} {'display fps':>11} {'max gap ms':>10} {'stroke p95':>10} {'answered':>8} {'refused':>7} "
          f"{'probe p50':>9} {'p99 ms':>7} {'held':>5}")
    rows = []
    try:
        for _ in range(rounds):
            for load in (False, True):
                table = open_table(parts)
                kiosk.attach(table, source=parts.source)
                kiosk.max_display_gap_s = 0.0
                client, held = None, [0]
                if load:
                    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(port), str(idle), str(probers),
                                               str(phase_s), str(rate)], stdout=subprocess.PIPE, text=True)
                    assert client.stdout.readline().strip() == "ready"

                    def count_held():
                        time.sleep(phase_s / 2)
                        held[0] = kiosk.health.connections

                    threading.Thread(target=count_held, daemon=True).start()
                status = table.run(phase_s)
                probes = json.loads(client.stdout.readline()) if client else {}
                if client:
                    client.wait(30)
                kiosk.detach()
                table.display.close()
                row = {"load": load, "display_fps": status.display_fps, "max_gap_ms": kiosk.max_display_gap_s * 1000,
                       "stroke_p95_ms": status.stroke_latency_ms["p95"], "held": held[0], **probes}
                rows.append(row)
                print(f"{'probes' if load else 'none':>8} {row['display_fps']:11.1f} {row['max_gap_ms']:10.0f} "
                      f"{row['stroke_p95_ms'] or float('nan'):10.0f} {probes.get('answered', 0):8d} "
                      f"{probes.get('refused', 0):7d} {probes.get('p50_ms') or float('nan'):9.1f} "
                      f"{probes.get('p99_ms') or float('nan'):7.1f} {held[0]:5d}")
        reload_rows = measure_reloads(kiosk, parts, reloads, phase_s)
        restart_rows = measure_restart_reloads(kiosk, reloads, phase_s) if reloads else []
    finally:
        kiosk.stop()
        parts.close()
    out = {"phases": rows, "reloads": reload_rows, "restart_reloads": restart_rows}
    for key in ("display_fps", "stroke_p95_ms"):
        with_ = [r[key] for r in rows if r["load"] and r[key] is not None]
        without = [r[key] for r in rows if not r["load"] and r[key] is not None]
        if with_ and without:
            out[f"{key}_ratio"] = float(np.mean(with_) / np.mean(without))
            print(f"{key}: {out[f'{key}_ratio']:.2f}x with the probes and idle connections against none")
    return out


def measure_reloads(kiosk, parts, reloads: int, phase_s: float) -> list[dict]:
    """Each reload in its own window of the running table: the longest display gap while the new
    model loads and is swapped in, against the same window's gap before the request."""
    from table.assemble import open_table, prepare

    kiosk.reprepare = lambda old: prepare(old.config, source=old.source)
    kiosk.can_reload_model = True
    table = open_table(kiosk.parts)
    kiosk.attach(table, source=kiosk.parts.source)
    runner = threading.Thread(target=table.run, args=(reloads * (phase_s + 10) + 10,), daemon=True)
    runner.start()
    rows = []
    print(f"{'reload':>8} {'load s':>7} {'gap before ms':>13} {'gap during ms':>13} {'answers after':>13}")
    try:
        while kiosk.display_frames < 30:
            time.sleep(0.1)
        for i in range(reloads):
            kiosk.max_display_gap_s = 0.0
            time.sleep(phase_s / 2)
            before = kiosk.max_display_gap_s
            kiosk.max_display_gap_s = 0.0
            swapped = table.models_swapped
            inferences = table.status().inferences
            t0 = time.monotonic()
            assert kiosk.request_model_reload()
            while table.models_swapped == swapped and time.monotonic() - t0 < 60:
                time.sleep(0.01)
            load_s = time.monotonic() - t0
            time.sleep(1.0)  # the new model's first answers
            row = {"load_s": load_s, "gap_before_ms": before * 1000, "gap_during_ms": kiosk.max_display_gap_s * 1000,
                   "answers_after": table.status().inferences - inferences, "backend": table.status().backend}
            rows.append(row)
            print(f"{i + 1:>8} {load_s:7.2f} {row['gap_before_ms']:13.0f} {row['gap_during_ms']:13.0f} "
                  f"{row['answers_after']:13d}")
    finally:
        table.stop()
        runner.join(10)
        kiosk.detach()
        table.display.close()
    return rows


def measure_restart_reloads(kiosk, reloads: int, phase_s: float) -> list[dict]:
    """The reload as it was before (issue 22), for comparison on the same machine: stop the
    table, prepare the parts again, start a new table; the projector holds its last frame from
    the old table's last frame to the new table's first."""
    from table.assemble import open_table, prepare

    rows = []
    print(f"{'restart':>8} {'frozen ms':>9}")
    for i in range(reloads):
        table = open_table(kiosk.parts)
        shown: list[float] = []
        table.on_display_frame.append(lambda pulse: shown.append(pulse.t))
        runner = threading.Thread(target=table.run, args=(phase_s + 30,), daemon=True)
        runner.start()
        time.sleep(phase_s / 2)
        table.stop()
        runner.join(10)
        last = shown[-1]
        fresh = prepare(kiosk.parts.config, source=kiosk.parts.source)
        kiosk.parts = fresh
        table.display.close()
        table = open_table(fresh)
        first: list[float] = []
        table.on_first_frame.append(lambda: first.append(time.monotonic()))
        runner = threading.Thread(target=table.run, args=(2.0,), daemon=True)
        runner.start()
        runner.join(10)
        table.display.close()
        rows.append({"frozen_ms": (first[0] - last) * 1000})
        print(f"{i + 1:>8} {rows[-1]['frozen_ms']:9.0f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--phase", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--probers", type=int, default=20)
    ap.add_argument("--reloads", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.0, help="probes per second in all (0: as fast as answered)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    out = run(args.bundle, args.phase, args.rounds, args.idle, args.probers, args.reloads, args.rate)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
