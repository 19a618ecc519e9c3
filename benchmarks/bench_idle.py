"""How varied the idle picture is: a minute of the table's idle wander (table.motion.Wander
at the config's idle settings, through ONNX Runtime as the table runs it), one frame a
second, measured against the collection like the generator's samples (training.variety):
the frames' mean pairwise shape distance over the collection's ("spread") and how many
distinct collection drawings are the frames' nearest. Both ways where the bundle carries
idle codes: wandering through the mapping's samples, and through the collection's codes.

    python benchmarks/bench_idle.py BUNDLE --dataset DATASET [--seconds 60] [--png FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--dataset", type=Path, required=True, help="the ingested collection")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--png", type=Path, default=None, help="write the frames of each way as a strip")
    args = parser.parse_args()

    import cv2
    import numpy as np

    from config.table import IdleConfig
    from inference.runtime import open_backend
    from inference.tensors import to_uint8
    from table.motion import Wander
    from training.ingest import load_images
    from training.variety import VarietyMeter, shape_distances

    idle = IdleConfig()
    backend = open_backend(args.bundle, threads=1)
    meter = VarietyMeter(load_images(args.dataset, "train"))
    ways = {"mapping samples": dataclasses.replace(backend.bundle, idle_codes=None)}
    if backend.bundle.idle_codes is not None:
        ways["collection codes"] = backend.bundle
    strips = []
    print(f"idle wander, {args.seconds} s at {idle.wander_speed} keyframes/s, psi {idle.psi}, one frame a second:")
    for name, bundle in ways.items():
        backend.bundle = bundle
        wander = Wander(backend, idle.psi, idle.wander_speed, 0.0, seed=0)
        codes = np.concatenate([wander.at(float(t)) for t in range(args.seconds)])
        frames = to_uint8(backend.generate(codes)[:, 0])
        d = shape_distances(frames, meter.reference)
        pairwise = shape_distances(frames)
        spread = pairwise[~np.eye(len(frames), dtype=bool)].mean() / meter.real_pairwise
        print(f"  {name:17s} spread {spread:.2f} of the collection's, {len(np.unique(d.argmin(1)))} distinct "
              f"nearest collection drawings of {len(frames)} frames")
        strips.append(np.concatenate(list(frames[::max(1, args.seconds // 20)]), axis=1))
    if args.png:
        cv2.imwrite(str(args.png), np.concatenate(strips, axis=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
