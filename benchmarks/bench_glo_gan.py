"""A GAN started from a GLO-trained generator: does the variety it starts with survive?

    python benchmarks/bench_glo_gan.py --dataset ds64 --init-generator inference/models/demo \
        [--drawings 256] [--glo-steps 2400] [--kimg 24] [--every 4] [--weights 30 0] [--out DIR] [--json FILE]

Each weight is a new `train gan --glo WEIGHT` run (a new D, the long demo run's recipe) from
the given generator: its warm-up trains the synthesis network to draw `--drawings` training
drawings from one learned z each (pixel error alone), then every G step also pulls
G(mapping(z_i)) towards drawing i with that weight, z_i learning beside it (training.glo).
Weight 0 is the warm start alone: a plain run from the first run's GLO network
(RUN/glo_network.pt). The table has each run's variety and grey share at each snapshot
(training.variety, as `train gan` logs them). Forks of a long run with an overfit D lost the
warm start's variety within 20 kimg; with a new D, 2026-12-03 (docs/training.md): with the
pull 0.78 at 24 kimg (0.90 at 68 on), without it 0.25, one character.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPE = dict(batch=32, mbstd_group=8, r1_gamma=1.0, mirror=True)  # the long demo run's (docs/training.md)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="an ingested collection")
    parser.add_argument("--init-generator", type=Path, required=True, help="a bundle, GAN run or generator checkpoint")
    parser.add_argument("--preset", default="cpu-demo", help="the networks' preset (the generator's widths)")
    parser.add_argument("--drawings", type=int, default=256, help="training drawings given a code of their own")
    parser.add_argument("--glo-steps", type=int, default=2400, help="steps of GLO alone before the GAN")
    parser.add_argument("--kimg", type=float, default=24.0)
    parser.add_argument("--every", type=float, default=4.0, help="kimg between snapshots")
    parser.add_argument("--weights", type=float, nargs="+", default=[30.0, 0.0], help="GLO pull in the GAN")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    if not any(args.weights):
        parser.error("--weights: weight 0 starts from a weighted run's GLO network; give one above 0 too")
    from training.config import config_from
    from training.gan import GLO_NETWORK, train_gan
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        weighted = root / f"glo-{max(args.weights):g}"
        for weight in sorted(args.weights, reverse=True):  # the warm start alone needs a GLO network first
            glo = dict(glo=weight, glo_drawings=args.drawings, glo_warmup_steps=args.glo_steps) if weight else {}
            cfg = config_from(args.preset, **RECIPE, **glo, kimg=args.kimg, snapshot_kimg=args.every,
                              threads=args.threads)
            out, started = root / f"glo-{weight:g}", time.time()
            train_gan(args.dataset, out, cfg, progress=False,
                      init_generator=args.init_generator if weight else weighted / GLO_NETWORK)
            rows = list(csv.DictReader((out / "variety.csv").open()))
            curve = {name: [float(r[name]) for r in rows] for name in ("kimg", "variety", "grey")}
            results[f"{weight:g}"] = {**curve, "seconds": time.time() - started}
            print(f"GLO weight {weight:g}: {time.time() - started:.0f} s", flush=True)
    kimgs = next(iter(results.values()))["kimg"]
    print("\nvariety (grey share) of the collection's against kimg, a new D from the GLO network:")
    print("| GLO weight | " + " | ".join(f"{k:g}" for k in kimgs) + " |")
    print("| --- |" + " --- |" * len(kimgs))
    for weight, r in results.items():
        print(f"| {weight} | " + " | ".join(f"{v:.2f} ({g:.2f})" for v, g in zip(r["variety"], r["grey"])) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
