"""Benchmark the live table: each stage alone, then the whole loop on the simulated pen camera.

    python benchmarks/bench_pipeline.py [--bundle DIR] [--seconds 20] [--projector 1280x720]
                                        [--transition auto|crossfade|latent] [--threads N]
    newsnow bench --pipeline [--bundle DIR] [--threads N]

Stage figures are medians (and p95) of repeated calls on one core's worth of work. The
whole-loop run is `newsnow demo` without recording; besides the loop's own stamps it
measures the new-stroke latency against the simulator's ground truth: for every stroke
the pen starts after a pause, from the capture time of the first frame in which the
stroke's ink exists (on the true sketch at the model's resolution) to the display of the
first answer to a sketch captured at or after that frame.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from inference.tensors import from_uint8

REST = 3  # frames of unchanged true ink before a new stroke (100 ms at 30 fps)
VISIBLE = 3  # true ink pixels a new stroke adds within 5 frames


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    a = np.asarray(times) * 1000.0
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def stage_figures(parts, projector: tuple[int, int], repeats: int) -> dict:
    """Each stage of one frame's way, alone."""
    from capture.binarize import binarize
    from capture.simulated import SimulatedPenCamera, SimulatedPenSettings
    from render.display import Display
    from render.tone import apply_tone, drawing_to_uint8
    from render.warp import Warp

    cfg, bundle, backend = parts.config, parts.bundle, parts.backend
    r = bundle.resolution
    w, h = cfg.camera.resolution
    cam = SimulatedPenCamera(SimulatedPenSettings(width=w, height=h, pace=False, seed=1))
    for _ in range(120):  # into the first strokes
        frame = cam.read()
    params = bundle.binarize_params()
    to_sketch = cam.camera_to_sketch(r)
    sketch = binarize(frame.image, params, to_sketch)
    x = from_uint8(sketch).reshape(1, 1, r, r)
    wplus = np.asarray(backend.encode(x))
    z = np.random.default_rng(0).standard_normal((1, bundle.z_dim)).astype(np.float32)
    drawing = backend.sketch_to_drawing(x)
    picture = apply_tone(drawing_to_uint8(drawing[0]), cfg.tone)
    warp = Warp(parts.calibration.table_area_to_projector(r), projector)
    a, b = warp(picture), warp(255 - picture)
    display = Display("headless", projector)
    import cv2

    figures = {
        f"capture (simulated {w}x{h} frame)": timed(cam.read, repeats),
        f"binarize {w}x{h} -> {r}x{r}": timed(lambda: binarize(frame.image, params, to_sketch), repeats),
        "capture + binarize": timed(lambda: binarize(cam.read().image, params, to_sketch), repeats),
        "model sketch_to_drawing (fused)": timed(lambda: backend.sketch_to_drawing(x), repeats),
        "model encode": timed(lambda: backend.encode(x), repeats),
        "model generate": timed(lambda: backend.generate(wplus), repeats),
        "model map": timed(lambda: backend.map(z), repeats),
        "tone (per answer)": timed(lambda: apply_tone(drawing_to_uint8(drawing[0]), cfg.tone), repeats),
        f"warp to {projector[0]}x{projector[1]} (per answer)": timed(lambda: warp(picture), repeats),
        "crossfade blend (per display frame)": timed(lambda: cv2.addWeighted(a, 0.4, b, 0.6, 0.0), repeats),
        "blit + flip, headless (per display frame)": timed(lambda: display.show(a), repeats),
    }
    display.close()
    return figures


def truth_stroke_latency(parts, frames: list[tuple[int, float]], answers: list[tuple[int, float, float]]) -> dict:
    """New-stroke latency against the simulator's ground truth (see the module docstring).

    A new stroke: the true ink grows after at least `REST` frames without change (the pen
    was lifted or resting), by at least `VISIBLE` pixels within the next 5 frames (a stroke,
    not the last pixel of one).
    """
    from capture.simulated import SimulatedPenCamera

    settings = parts.source.settings
    truth_cam = SimulatedPenCamera(dataclasses.replace(settings, pace=False))
    r = parts.bundle.resolution
    seqs = [seq for seq, _ in frames]
    t_of = dict(frames)
    ink = {seq: int(np.count_nonzero(truth_cam.truth_sketch(r, seq / settings.fps) == 0)) for seq in seqs}
    answers = sorted(answers)
    latencies = []
    for i in range(REST, len(seqs) - 5):
        run = seqs[i - REST:i + 1]
        if run[-1] - run[0] != REST:  # frames skipped: not a clean rest
            continue
        before = [ink[s] for s in run[:-1]]
        if len(set(before)) != 1 or ink[run[-1]] <= before[0] or ink[seqs[i + 5]] - before[0] < VISIBLE:
            continue
        shown = [t_disp for seq, _, t_disp in answers if seq >= run[-1]]
        if shown:
            latencies.append(min(shown) - t_of[run[-1]])
    if not latencies:
        return {"n": 0}
    a = np.asarray(latencies) * 1000.0
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "max": round(float(a.max()), 1), "n": int(a.size)}


class LoggingSource:
    """The simulated camera, noting (sequence, t_capture) of every frame it hands on."""

    def __init__(self, source):
        self.source, self.settings, self.frames = source, source.settings, []

    def read(self, timeout: float = 1.0):
        frame = self.source.read(timeout)
        if frame is not None:
            self.frames.append((frame.sequence, frame.t_capture))
        return frame

    def camera_to_sketch(self, resolution):
        return self.source.camera_to_sketch(resolution)

    def close(self):
        self.source.close()


def run(bundle: Path | None = None, seconds: float = 20.0, projector: tuple[int, int] = (1280, 720),
        transition: str = "auto", threads: int = 0, repeats: int = 50, seed: int = 0,
        json_path: Path | None = None) -> dict:
    """Print and return the stage figures and the whole-loop figures."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # the loop runs headless
    from capture.simulated import SimulatedPenCamera, SimulatedPenSettings
    from table.assemble import open_table, prepare
    from config import Config

    config = Config.from_dict({
        "camera": {"source": "simulated", "seed": seed},
        "display": {"mode": "headless", "size": list(projector)},
        "model": {"threads": threads},
        "transition": {"kind": transition},
        "idle": {"after_s": 6.0},
        "stats": {"log_every_s": 0},
    })
    w, h = config.camera.resolution
    source = LoggingSource(SimulatedPenCamera(SimulatedPenSettings(width=w, height=h, fps=config.camera.fps,
                                                                   seed=seed)))
    parts = prepare(config, bundle=bundle, source=source)
    step = "none" if parts.step_ms is None else f"{parts.step_ms:.1f} ms"
    print(f"bundle {parts.bundle.path} ({parts.bundle.resolution}px), backend {parts.backend.name}, "
          f"transition {parts.transition} (latent step {step}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    figures = {"stages": stage_figures(parts, projector, repeats)}
    for name, f in figures["stages"].items():
        print(f"  {name:48s} {f['median_ms']:8.2f} ms  (p95 {f['p95_ms']:.2f})")

    table = open_table(parts, seed=seed)
    status = table.run(seconds)
    parts.close()
    table.display.close()
    truth = truth_stroke_latency(parts, source.frames, list(table.answers_shown))
    loop = status.to_dict()
    loop["truth_stroke_latency_ms"] = truth
    loop["load_average"] = os.getloadavg()[0]
    figures["loop"] = loop
    print(f"whole loop, {seconds:.0f} s on the simulated pen, projector {projector[0]}x{projector[1]}:")
    print(f"  display {status.display_fps:.1f} fps, inference {status.inference_fps:.1f}/s "
          f"({status.inferences} answers, {status.generations} generated frames, "
          f"{status.skipped_unchanged} unchanged sketches skipped, {status.dropped_stale} stale dropped)")
    print(f"  capture -> display of answers (ms): {status.latency_ms}")
    print(f"  new stroke (loop's stamp) (ms):     {status.stroke_latency_ms}")
    print(f"  new stroke (ground truth) (ms):     {truth}")
    print(f"  faults: {status.faults or 'none'}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def run_from_bench_args(args) -> int:
    """`newsnow bench --pipeline`: the loop benchmark with the bench command's arguments."""
    run(bundle=args.bundle, threads=args.threads or 0, repeats=min(args.runs, 50))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--projector", default="1280x720")
    parser.add_argument("--transition", default="auto", choices=["auto", "crossfade", "latent"])
    parser.add_argument("--threads", type=int, default=0, help="model threads (0: runtime default)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    projector = tuple(int(v) for v in args.projector.split("x"))
    run(args.bundle, args.seconds, projector, args.transition, args.threads, args.repeats, args.seed, args.json)
    return 0
