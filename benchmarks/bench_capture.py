"""Benchmark capture and binarization, and compare the threshold methods.

    python benchmarks/bench_capture.py [--repeats 300] [--compare] [--flicker] [--threads N] [--json FILE]

Timing (always): capture + binarize of a 1280 x 720 frame of the simulated pen camera
for each method, the binarizer's stages, the camera thread's hand-off, the simulated
camera's and the video replay's cost per frame, and thresholds run on the full camera
frame for reference (why the binarizer thresholds on the sketch grid instead).

--compare: precision / recall of stroke pixels (1 px tolerance, and exact) against the
simulated camera's ground truth for adaptive mean, Sauvola and Otsu, each with its knob
tuned on seeds 0-1 and scored on seeds 2-5, on two materials:
  simulated    the demo camera's defaults (spline strokes);
  kanji-photo  KanjiVG characters (train extra), fainter pen pressure, a stronger paper
               texture, vignetting and LED gradient, more blur and noise;
  mixed-pens   spline strokes of pens from a faint pencil (30 % of the felt pen's ink)
               to a felt pen, a textured sheet, stronger vignetting and gradient.
--flicker: how much consecutive sketches differ while the pen rests (sensor noise only),
the floor for the loop's change threshold.
Figures are printed as Markdown tables (docs/capture.md keeps a copy).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capture.binarize import (  # noqa: E402
    METHODS,
    BinarizeParams,
    binarize,
    flat_field,
    ink_fraction,
    paper_brightness,
    remove_specks,
    sketch_difference,
    threshold,
    to_grid,
)
from capture.quality import stroke_precision_recall  # noqa: E402
from capture.simulated import SimulatedPenCamera, SimulatedPenSettings  # noqa: E402

MATERIALS = {
    "simulated": {},
    "kanji-photo": dict(strokes="kanji", ink_contrast=0.5, pressure=0.3, noise=5.0, blur_px=1.4,
                        vignetting=0.5, led_gradient=0.35, paper_texture=0.06, pen_mm=0.8),
    "mixed-pens": dict(darkness=(0.3, 1.0), pressure=0.3, noise=4.0, paper_texture=0.05,
                       vignetting=0.45, led_gradient=0.35, blur_px=1.3),
}
KNOBS = {  # each method's own knob, swept on the tuning seeds
    "adaptive": ("offset", [0.03, 0.05, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.15]),
    "sauvola": ("k", [0.05, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.15, 0.2, 0.3]),
    "otsu": ("min_contrast", [0.05, 0.1, 0.12, 0.14, 0.15, 0.16, 0.18, 0.2, 0.25]),
}


def timed(fn, repeats: int) -> dict:
    """Median, p95 and min wall time, and median CPU time of the calling thread (ms).

    On a shared machine the wall median grows with the load; the thread's CPU time does
    not (with --threads 1, when OpenCV works in the calling thread only).
    """
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    a, c = np.asarray(times) * 1000.0, np.asarray(cpu) * 1000.0
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "min_ms": round(float(a.min()), 3), "cpu_median_ms": round(float(np.median(c)), 3)}


def test_frame(seed: int = 1, t: float = 10.0):
    cam = SimulatedPenCamera(SimulatedPenSettings(pace=False, seed=seed))
    return cam, cam.render(t), cam.camera_to_sketch(256, t)


def handoff_latency(frame_bgr: np.ndarray, frames: int = 300) -> dict:
    """Time from a frame's capture stamp to `read` returning it, through the camera thread."""
    from capture.camera import CameraSettings, CameraSource

    class Fake:
        def read(self):
            time.sleep(1 / 120)
            return True, frame_bgr ^ np.uint8(next(counter) & 1)  # differs every frame

        def release(self):
            pass

    import itertools

    counter = itertools.count()
    lat = []
    with CameraSource(CameraSettings(read_timeout=2.0), open_capture=lambda s: Fake()) as cam:
        while len(lat) < frames:
            f = cam.read(timeout=2.0)
            if f is not None:
                lat.append(time.monotonic() - f.t_capture)
    a = np.asarray(lat[10:]) * 1000.0
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def replay_cost(frame: np.ndarray, repeats: int) -> dict:
    from capture.video import VideoFileSource

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "table.avi")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, frame.shape[::-1], False)
        for i in range(30):
            writer.write(np.roll(frame, i, axis=1))
        writer.release()
        with VideoFileSource(path, speed=0) as src:
            return timed(lambda: src.read(), repeats)


def timing(repeats: int) -> dict:
    cam, frame, m = test_frame()
    bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    out: dict = {"frame": list(frame.shape), "opencv_threads": cv2.getNumThreads()}
    from capture.source import to_gray

    out["capture_to_gray_bgr"] = timed(lambda: to_gray(bgr), repeats)
    for method in METHODS:
        p = BinarizeParams(method=method)
        out[f"binarize_{method}"] = timed(lambda: binarize(frame, p, m), repeats)
        out[f"capture_and_binarize_{method}"] = timed(lambda: binarize(to_gray(bgr), p, m), repeats)
    out["binarize_adaptive_centred_square"] = timed(lambda: binarize(frame, BinarizeParams()), repeats)
    p = BinarizeParams()
    grid = to_grid(frame, m, 256)
    bg = paper_brightness(grid, p.flat_field)
    norm = flat_field(grid, bg)
    ink = threshold(norm, p)
    out["stage_to_grid"] = timed(lambda: to_grid(frame, m, 256), repeats)
    out["stage_flat_field"] = timed(lambda: flat_field(grid, paper_brightness(grid, p.flat_field)), repeats)
    out["stage_threshold"] = timed(lambda: threshold(norm, p), repeats)
    out["stage_remove_specks"] = timed(lambda: remove_specks(ink, p.speck_area), repeats)
    # the same thresholds on the full camera frame, for reference
    out["full_frame_adaptiveThreshold"] = timed(lambda: cv2.adaptiveThreshold(
        frame, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 41, 10), repeats)
    out["full_frame_otsu"] = timed(lambda: cv2.threshold(frame, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU), repeats)

    def sauvola_cv2():
        f = frame.astype(np.float32)
        mean = cv2.boxFilter(f, -1, (41, 41))
        sq = cv2.boxFilter(f * f, -1, (41, 41))
        return f < mean * (1 + 0.2 * (np.sqrt(np.maximum(sq - mean * mean, 0)) / 128 - 1))

    out["full_frame_sauvola_cv2_boxfilter"] = timed(sauvola_cv2, max(20, repeats // 5))
    try:
        from skimage.filters import threshold_sauvola

        out["full_frame_sauvola_skimage"] = timed(lambda: frame < threshold_sauvola(frame, 41), 10)
    except ImportError:
        pass
    sim = SimulatedPenCamera(SimulatedPenSettings(pace=False, seed=2))
    for _ in range(60):
        sim.read()
    out["simulated_camera_read"] = timed(lambda: sim.read(), repeats)
    out["video_replay_read_mjpeg"] = replay_cost(frame, min(repeats, 100))
    out["camera_thread_handoff_latency"] = handoff_latency(bgr)
    return out


def flicker(material: str = "simulated", seeds=(0, 1, 2), seconds: float = 20.0) -> dict:
    """Change between consecutive sketches while the pen rests (the truth is unchanged):
    what the loop's change threshold must stay above."""
    diffs = []
    for seed in seeds:
        cam = SimulatedPenCamera(SimulatedPenSettings(pace=False, seed=seed, **MATERIALS[material]))
        prev = None
        for i in range(int(seconds * cam.settings.fps)):
            t = i / cam.settings.fps
            m = cam.camera_to_sketch(256, t)
            now = (cam.truth_sketch(256, t), m, cam.sheet_present(t))
            sketch = binarize(cam.render(t), BinarizeParams(), m)
            # the same strokes on a sheet that lies still
            if prev is not None and now[2] and prev[3] and np.array_equal(now[0], prev[1]) and np.array_equal(m, prev[2]):
                diffs.append(sketch_difference(sketch, prev[0]))
            prev = (sketch, *now)
    a = np.asarray(diffs)
    return {"pairs": len(a), "median": float(np.median(a)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "max_pixels": int(round(a.max() * 256 * 256))}


def samples(material: str, seeds, times=(6.0, 12.0, 18.0, 24.0, 30.0)):
    """(frame, crop homography, truth) at moments with ink on the sheet."""
    out = []
    for seed in seeds:
        cam = SimulatedPenCamera(SimulatedPenSettings(pace=False, seed=seed, **MATERIALS[material]))
        for t in times:
            if cam.sheet_present(t):
                truth = cam.truth_sketch(256, t)
                if ink_fraction(truth) > 0.002:
                    out.append((cam.render(t), cam.camera_to_sketch(256, t), truth))
    return out


def score(params: BinarizeParams, data) -> dict:
    rows = []
    for frame, m, truth in data:
        sketch = binarize(frame, params, m)
        rows.append(stroke_precision_recall(sketch, truth, 1) + stroke_precision_recall(sketch, truth, 0))
    a = np.asarray(rows)
    p, r = a[:, 0].mean(), a[:, 1].mean()
    return {"precision": round(float(p), 3), "recall": round(float(r), 3),
            "f1": round(float(2 * p * r / (p + r)) if p + r else 0.0, 3),
            "worst_f1": round(float(np.min(2 * a[:, 0] * a[:, 1] / np.maximum(a[:, 0] + a[:, 1], 1e-9))), 3),
            "precision_exact": round(float(a[:, 2].mean()), 3), "recall_exact": round(float(a[:, 3].mean()), 3),
            "frames": len(rows)}


def compare() -> dict:
    tune = {mat: samples(mat, (0, 1)) for mat in MATERIALS}
    test = {mat: samples(mat, (2, 3, 4, 5)) for mat in MATERIALS}
    result = {}
    for method in METHODS:
        knob, values = KNOBS[method]
        tuned = []
        for v in values:
            p = BinarizeParams(method=method, **{knob: v})
            f1 = np.mean([score(p, tune[mat])["f1"] for mat in MATERIALS])
            tuned.append((f1, v))
        best = max(tuned)[1]
        for label, p in (("default", BinarizeParams(method=method)),
                         ("tuned", BinarizeParams(method=method, **{knob: best}))):
            figs = {mat: score(p, test[mat]) for mat in MATERIALS}
            if label == "tuned":
                figs["sweep"] = {str(v): round(float(f), 3) for f, v in tuned}
            result[f"{method} {label} ({knob}={getattr(p, knob)})"] = figs
    return result


def markdown(timing_figures: dict | None, comparison: dict | None) -> str:
    lines = []
    if timing_figures:
        lines += ["| timing (1280 x 720 frame) | median ms | p95 ms | min ms | thread CPU median ms |",
                  "| --- | --- | --- | --- | --- |"]
        for k, v in timing_figures.items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {v['median_ms']} | {v['p95_ms']} | {v.get('min_ms', '')} "
                             f"| {v.get('cpu_median_ms', '')} |")
        lines.append(f"OpenCV threads: {timing_figures['opencv_threads']}")
        lines.append("")
    if comparison:
        mats = list(MATERIALS)
        head = " | ".join(f"{m} P / R / F1 / worst F1 (exact P / R)" for m in mats)
        lines += [f"| method | {head} |", "| --- |" + " --- |" * len(mats)]
        for name, figs in comparison.items():
            cells = " | ".join(
                f"{figs[m]['precision']} / {figs[m]['recall']} / {figs[m]['f1']} / {figs[m]['worst_f1']} "
                f"({figs[m]['precision_exact']} / {figs[m]['recall_exact']})" for m in mats
            )
            lines.append(f"| {name} | {cells} |")
        lines.append("")
        frames = {m: next(iter(comparison.values()))[m]["frames"] for m in mats}
        lines.append(f"test frames: {frames}")
        for name, figs in comparison.items():
            if "sweep" in figs:
                lines.append(f"- {name} sweep (mean tuning F1): {figs['sweep']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--compare", action="store_true", help="also compare the threshold methods")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--flicker", action="store_true",
                    help="also measure sketch changes between frames of a still sheet")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    ap.add_argument("--threads", type=int, help="OpenCV threads (default: OpenCV's choice)")
    args = ap.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    figures = None if args.no_timing else timing(args.repeats)
    comparison = compare() if args.compare else None
    print(markdown(figures, comparison))
    if args.flicker:
        figures = (figures or {}) | {"flicker": {m: flicker(m) for m in MATERIALS}}
        for m, f in figures["flicker"].items():
            print(f"flicker on a still sheet, {m}: {f}")
    if args.json:
        args.json.write_text(json.dumps({"timing": figures, "comparison": comparison}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
