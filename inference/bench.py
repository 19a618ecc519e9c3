"""`newsnow bench`: latency per stage (encoder, generator, and sketch_to_drawing: the whole
answer, through the fused graph where the bundle has one, else encoder then generator) and
per backend, batch 1.

Figures are medians and 95th percentiles of wall-clock time after warm-up, with the
machine, providers and threads named, and the PyTorch-eager / ONNX Runtime ratio when both
ran. Speed is measured here, never asserted in unit tests.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from inference.bundle import DEMO_BUNDLE, Bundle

STAGES = ("encoder", "generator", "sketch_to_drawing")


def machine() -> dict:
    """CPU model and core count (and the OS), for the record next to the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}"}


def example_sketch(resolution: int, seed: int = 0) -> np.ndarray:
    """A sketch-like input [1,1,R,R]: paper (+1) with a few ink strokes (-1)."""
    rng = np.random.default_rng(seed)
    sketch = np.ones((resolution, resolution), np.float32)
    for _ in range(8):  # random walks as strokes
        y, x = rng.integers(0, resolution, 2)
        for _ in range(resolution):
            sketch[y, x] = -1.0
            y = int(np.clip(y + rng.integers(-1, 2), 0, resolution - 1))
            x = int(np.clip(x + rng.integers(-1, 2), 0, resolution - 1))
    return sketch[None, None]


def time_stages(backend, runs: int = 50, warmup: int = 5) -> dict[str, dict[str, float]]:
    """{stage: {median_ms, p95_ms, runs}} for one backend, batch 1, after `warmup` calls each."""
    sketch = example_sketch(backend.bundle.resolution)
    wplus = backend.encode(sketch)
    calls = {"encoder": (backend.encode, sketch), "generator": (backend.generate, wplus),
             "sketch_to_drawing": (backend.sketch_to_drawing, sketch)}
    figures = {}
    for stage in STAGES:
        fn, x = calls[stage]
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - start) * 1000.0)
        figures[stage] = {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)),
                          "runs": runs}
    return figures


def bench(bundle: Bundle, backends: list[str], runs: int = 50, threads: int | None = None,
          providers: list[str] | None = None) -> dict:
    """Open each backend on the bundle in turn and time it; the report `newsnow bench` prints."""
    from inference.runtime import open_backend

    report = {"machine": machine(), "bundle": str(bundle.path), "resolution": bundle.resolution,
              "channels": bundle.channels, "precision": bundle.precision, "backends": {}}
    for kind in backends:
        backend = open_backend(bundle, kind=kind, providers=providers, threads=threads)
        entry = {"name": backend.name, "threads": getattr(backend, "threads", None) or "default",
                 "stages": time_stages(backend, runs=runs)}
        if kind == "onnxruntime":
            entry["providers"] = backend.sessions["encoder"].get_providers()
        report["backends"][kind] = entry
        del backend
    if "onnxruntime" in report["backends"] and "torch" in report["backends"]:
        ort_stages = report["backends"]["onnxruntime"]["stages"]
        torch_stages = report["backends"]["torch"]["stages"]
        # > 1 means ONNX Runtime is faster than PyTorch eager.
        report["torch_over_onnxruntime"] = {s: torch_stages[s]["median_ms"] / ort_stages[s]["median_ms"]
                                            for s in STAGES}
    return report


def format_report(report: dict) -> str:
    m = report["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['system']}",
             f"bundle: {report['bundle']} ({report['resolution']}x{report['resolution']}, "
             f"{report['channels']} channel(s), {report['precision']}), batch 1"]
    for kind, entry in report["backends"].items():
        extra = f", providers {entry['providers']}" if "providers" in entry else ""
        lines.append(f"{entry['name']} (threads {entry['threads']}{extra}):")
        for stage, f in entry["stages"].items():
            lines.append(f"  {stage:17s} median {f['median_ms']:8.2f} ms   p95 {f['p95_ms']:8.2f} ms   ({f['runs']} runs)")
    if "torch_over_onnxruntime" in report:
        ratios = ", ".join(f"{s} {r:.2f}x" for s, r in report["torch_over_onnxruntime"].items())
        lines.append(f"torch eager / onnxruntime (median): {ratios}")
    return "\n".join(lines)


def run(args) -> int:
    """CLI handler of `newsnow bench`."""
    path = args.bundle
    if path is None:
        if not (DEMO_BUNDLE / "bundle.json").is_file():
            raise FileNotFoundError(f"no demo bundle at {DEMO_BUNDLE}: pass --bundle FOLDER "
                                    f"(a folder written by `newsnow export`)")
        path = DEMO_BUNDLE
    if args.runs < 1:
        raise ValueError(f"--runs {args.runs} must be at least 1")
    bundle = Bundle.load(path)
    backends = ["onnxruntime", "torch"] if args.backend == "all" else [args.backend]
    providers = [args.provider] if args.provider else None
    report = bench(bundle, backends, runs=args.runs, threads=args.threads, providers=providers)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0
