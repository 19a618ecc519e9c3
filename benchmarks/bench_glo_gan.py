"""A GAN started from a GLO-trained generator: does the variety it starts with survive?

    python benchmarks/bench_glo_gan.py --dataset ds64 --init-generator inference/models/demo \
        [--drawings 256] [--glo-steps 2200] [--kimg 24] [--every 4] [--weights 30 0] [--out DIR] [--json FILE]

First the generator's synthesis network learns to draw `--drawings` training drawings from
one learned z each (GLO, pixel loss only: benchmarks/bench_w_vs_wplus.py's `learn_codes`).
Then, for each weight, a new GAN run on the whole collection (a new D, the long demo run's
recipe) starts from that network, and every G step also pulls G(mapping(z_i)) towards
drawing i with that weight (0: the warm start alone), z_i learning beside it. The table has
each run's variety and grey share at each snapshot (training.variety, as `train gan` logs
them). Forks of a long run with an overfit D lost the warm start's variety within 20 kimg;
with a new D, 2026-12-03 (docs/training.md): with the pull 0.78 at 24 kimg (0.90 at 68 on),
without it 0.25, one character.
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


def glo_gan_run(dataset: Path, out: Path, cfg, G_glo, z, index, weight: float, z_lr: float = 0.1) -> None:
    """A new `train gan` run from G_glo whose G steps also pull the codes' drawings."""
    import torch

    from bench_w_vs_wplus import keep_on_sphere
    from inference import tensors
    from training.gan import GanRun
    from training.stopping import StopRequest

    class GloWarmRun(GanRun):
        def __init__(self):
            super().__init__(dataset, out, cfg, resume=False, force=True, meta=None, progress=False)
            for net in (self.G, self.G_ema):
                net.load_state_dict(G_glo.state_dict())
            self.codes = torch.nn.Parameter(z.clone())
            self.opt_codes = torch.optim.Adam([self.codes], lr=z_lr, betas=(0.0, 0.99))

        def generator_phase(self):
            loss_G = super().generator_phase()
            if weight:
                pick = torch.randint(len(index), (self.batch,))
                target = tensors.from_uint8(self.reals[index[pick]]).contiguous(memory_format=self.layout)
                error = (self.G.synthesis(self.G.mapping(self.codes[pick])) - target).square().mean()
                self.opt_codes.zero_grad(set_to_none=True)
                self.optimise(error * weight, self.G, self.opt_G, self.scaler_G)  # reaches the codes too
                self.opt_codes.step()
                keep_on_sphere(self.codes)
                self.losses["glo"] = float(error.detach())
            return loss_G

    with StopRequest() as stop:  # Ctrl-C ends the run at a snapshot, as `train gan` does
        run = GloWarmRun()
        while run.step < cfg.total_steps and not stop.signal:
            run.train_step()
            run.after_step(stopping=bool(stop.signal))
    run.finish(stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="an ingested collection")
    parser.add_argument("--init-generator", type=Path, required=True, help="a bundle, GAN run or generator checkpoint")
    parser.add_argument("--preset", default="cpu-demo", help="the networks' preset (the generator's widths)")
    parser.add_argument("--drawings", type=int, default=256, help="training drawings given a code of their own")
    parser.add_argument("--glo-steps", type=int, default=2200, help="steps of GLO before the GAN")
    parser.add_argument("--kimg", type=float, default=24.0)
    parser.add_argument("--every", type=float, default=4.0, help="kimg between snapshots")
    parser.add_argument("--weights", type=float, nargs="+", default=[30.0, 0.0], help="GLO pull in the GAN")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from bench_w_vs_wplus import learn_codes
    from training.config import config_from
    from training.ingest import load_images
    from training.report import load_networks
    torch.set_num_threads(args.threads)
    drawings = load_images(args.dataset, "train")
    index = torch.from_numpy(np.random.default_rng(5).permutation(len(drawings))[:args.drawings])
    started = time.time()
    G_glo, z = learn_codes(load_networks(args.init_generator)[0], drawings[index.numpy()], args.glo_steps)
    print(f"GLO on {len(index)} drawings, {args.glo_steps} steps: {time.time() - started:.0f} s", flush=True)
    cfg = config_from(args.preset, **RECIPE, kimg=args.kimg, snapshot_kimg=args.every, threads=args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for weight in args.weights:
            out, started = root / f"glo-{weight:g}", time.time()
            glo_gan_run(args.dataset, out, cfg, G_glo, z, index, weight)
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
