"""Training speed on this machine: images/s (and kimg/h) of `train gan` and `train encoder`
at a preset, for each thread count, through the real training functions.

Renders a few hundred KanjiVG drawings at the preset's resolution (or uses --dataset),
trains the GAN for --gan-kimg, makes pairs from it, and trains the encoder --encoder-steps;
the snapshot is timed apart (a long run pays it every snapshot_kimg). The GAN runs at the
demo run's settings (batch 32, minibatch-std group 8, R1 gamma 0.2, path length on) with
ADA's p starting at --ada-p (0.25: where the demo runs spend their time; from 0 a short
benchmark would hardly augment). CPU img/s (images per CPU-second of this process) is
printed beside wall-clock img/s: on a machine shared with other work it is the steadier
figure for one thread.

It also counts the GAN step's floating-point work (convolutions and matrix products,
forward, backward and the regularisers' double backward at their intervals, by PyTorch's
FlopCounterMode) and prints GFLOP per image, the GFLOP/s the timed steps reached, and what
one large convolution reaches on this machine at the same threads: how far the step is
from what the cores can do, the ceiling of any speed-up that keeps the networks.

    python benchmarks/bench_training.py [--preset cpu-demo] [--threads 1 2] [--no-channels-last]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-demo", choices=("tiny", "cpu-demo"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gan-kimg", type=float, default=0.8)
    parser.add_argument("--encoder-steps", type=int, default=100)
    parser.add_argument("--dataset", type=Path, default=None, help="an ingested dataset (default: render one)")
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW tensors (the old layout)")
    # default: the demo run's settings at cpu-demo, the preset's own otherwise
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--mbstd-group", type=int, default=None)
    parser.add_argument("--r1-gamma", type=float, default=None)
    parser.add_argument("--ada-p", type=float, default=0.25, help="ADA's p at the start")
    parser.add_argument("--skip-encoder", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from inference.bench import machine
    from training.config import config_from, encoder_config_from
    from training.encoder import train_encoder
    from training.gan import GanRun
    from training.stopping import StopRequest
    from training.sketches import make_pairs

    layout = dict(channels_last=not args.no_channels_last)
    demo_run = dict(batch=32, mbstd_group=8, r1_gamma=0.2) if args.preset == "cpu-demo" else {}
    settings = {**demo_run, **{k: v for k, v in dict(batch=args.batch, mbstd_group=args.mbstd_group,
                                                     r1_gamma=args.r1_gamma).items() if v is not None}}
    results = {"machine": machine(), "preset": args.preset, **layout, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gan_cfg = config_from(args.preset, kimg=args.gan_kimg, snapshot_kimg=args.gan_kimg, **settings, **layout)
        dataset = args.dataset
        if dataset is None:
            from training.collections.kanjivg import render_collection
            from training.ingest import IngestSettings, ingest
            render_collection(work / "renders", size=gan_cfg.resolution, count=400, max_strokes=12)
            ingest(work / "renders", work / "dataset", IngestSettings(resolution=gan_cfg.resolution))
            dataset = work / "dataset"
        for threads in args.threads:
            torch.set_num_threads(threads)
            if threads == args.threads[0]:
                results["gan_gflop_per_image"] = gflop_per_image(dataset, work / "flops", gan_cfg, args.ada_p,
                                                                 GanRun)
                results["gan_step_ms"] = step_ms(dataset, work / "phases", gan_cfg, args.ada_p, GanRun)
                print("gan step at {} thread(s): {}".format(threads, ", ".join(
                    f"{name} {ms:.0f} ms" for name, ms in results["gan_step_ms"].items())), flush=True)
            gan = train_gan_from(dataset, work / f"gan{threads}", gan_cfg, args.ada_p, GanRun, StopRequest)
            images_per_s = gan["kimg"] * 1000 / gan["seconds"]
            run = {"threads": threads, "gan_images_per_s": images_per_s,
                   "gan_images_per_cpu_s": gan["kimg"] * 1000 / gan["cpu_seconds"],
                   "gan_kimg_per_h": gan["kimg"] / gan["seconds"] * 3600,
                   "gan_snapshot_seconds": gan["snapshot_seconds"],
                   "gan_gflops": images_per_s * results["gan_gflop_per_image"],
                   "large_conv_gflops": large_conv_gflops(gan_cfg.channels_last)}
            results["runs"].append(run)
            line = (f"{args.preset}, {threads} thread(s), channels_last={layout['channels_last']}, batch "
                    f"{gan_cfg.batch}, ADA p {args.ada_p}: gan {run['gan_images_per_s']:.1f} img/s "
                    f"({run['gan_kimg_per_h']:.0f} kimg/h), {run['gan_images_per_cpu_s']:.1f} img/CPU-s; "
                    f"snapshot {run['gan_snapshot_seconds']:.1f} s; {results['gan_gflop_per_image']:.2f} GFLOP "
                    f"an image at {run['gan_gflops']:.0f} GFLOP/s (one large conv: "
                    f"{run['large_conv_gflops']:.0f} GFLOP/s)")
            if args.skip_encoder:
                print(line, flush=True)
                continue
            if threads == args.threads[0]:
                make_pairs(work / f"gan{threads}", work / "pairs", 200)
            enc_cfg = encoder_config_from(args.preset, steps=args.encoder_steps, val_every=args.encoder_steps,
                                          **layout)
            start = time.perf_counter()
            train_encoder(work / "pairs", work / f"gan{args.threads[0]}", work / f"enc{threads}", enc_cfg,
                          progress=False)
            enc_s = time.perf_counter() - start
            run.update(encoder_images_per_s=args.encoder_steps * enc_cfg.batch / enc_s,
                       encoder_steps_per_s=args.encoder_steps / enc_s)
            print(f"{line}; encoder {run['encoder_images_per_s']:.1f} img/s "
                  f"({run['encoder_steps_per_s']:.2f} steps/s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def train_gan_from(dataset, out, cfg, ada_p, GanRun, StopRequest) -> dict:
    """`train_gan`'s loop (the real step, logging, the final snapshot) with ADA's p starting
    at `ada_p`. Timed from the first step to the last step's end, the snapshot apart (its
    variety measure costs the same however many steps it follows, and a run of thousands of
    steps pays it every snapshot_kimg): seconds and CPU seconds of the steps, and of the
    snapshot."""
    run = GanRun(dataset, out, cfg, resume=False, force=False, meta=None, progress=False)
    run.ada_p = ada_p
    wall, cpu = time.perf_counter(), time.process_time()
    with StopRequest() as stop:
        while run.step < cfg.total_steps - 1 and not stop.signal:
            run.train_step()
            run.after_step(stopping=bool(stop.signal))
        run.train_step()
        steps = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
        run.after_step(stopping=True)  # the snapshot
    summary = run.finish(stop)
    return {**summary, **steps, "kimg": run.step * cfg.batch / 1000,
            "snapshot_seconds": time.perf_counter() - wall - steps["seconds"]}


def gflop_per_image(dataset, out, cfg, ada_p, GanRun) -> float:
    """Convolution and matrix-product GFLOP an image of the GAN step as users run it: the
    real steps of one whole regularisation cycle (R1 and path length each at its interval),
    counted by FlopCounterMode; element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode
    run = GanRun(dataset, out, cfg, resume=False, force=False, meta=None, progress=False)
    run.ada_p = ada_p
    cycle = regularisation_cycle(cfg)
    with FlopCounterMode(display=False) as counter:
        for _ in range(cycle):
            run.train_step()
    return counter.get_total_flops() / (cycle * cfg.batch) / 1e9


def regularisation_cycle(cfg) -> int:
    """Steps after which R1 and path length have each run at their intervals."""
    import math
    return math.lcm(cfg.r1_interval if cfg.gamma else 1, cfg.pl_interval if cfg.pl_weight else 1)


def step_ms(dataset, out, cfg, ada_p, GanRun, cycles: int = 2) -> dict:
    """Where a step's time goes, in ms a step of the real `train_step` over whole
    regularisation cycles: G's main phase, its path-length penalty (spread over its
    interval), D's main phase (G drawing the fakes included), R1 (spread likewise), and the
    rest (ADA, EMA). What a faster regulariser could win is its share, no more."""
    from collections import defaultdict
    run = GanRun(dataset, out, cfg, resume=False, force=False, meta=None, progress=False)
    run.ada_p = ada_p
    spent = defaultdict(list)

    def timed(phase, regularised):
        def wrapper():
            kind = f"{phase} regularised" if regularised(run.step) else phase
            start = time.perf_counter()
            result = real()
            spent[kind].append(time.perf_counter() - start)
            return result
        real = getattr(run, f"{phase}_phase")
        return wrapper

    run.train_step()  # the first step allocates and picks oneDNN's kernels
    run.generator_phase = timed("generator", lambda step: cfg.pl_weight and step % cfg.pl_interval == 0)
    run.discriminator_phase = timed("discriminator", lambda step: cfg.gamma and step % cfg.r1_interval == 0)
    steps = cycles * regularisation_cycle(cfg)
    start = time.perf_counter()
    for _ in range(steps):
        run.train_step()
    total = (time.perf_counter() - start) / steps

    def mean(kind):
        return sum(spent[kind]) / len(spent[kind]) if spent[kind] else 0.0

    def extra(phase, interval):  # the regularised steps' excess, spread over the interval
        return (mean(f"{phase} regularised") - mean(phase)) / interval if spent[f"{phase} regularised"] else 0.0

    ms = {"G": mean("generator"), "path length": extra("generator", cfg.pl_interval),
          "D": mean("discriminator"), "R1": extra("discriminator", cfg.r1_interval)}
    ms["rest"] = total - sum(ms.values())
    return {name: seconds * 1000 for name, seconds in {"step": total, **ms}.items()}


def large_conv_gflops(channels_last: bool) -> float:
    """What this machine's convolution reaches at the current threads on a layer large
    enough to run at the kernels' best (3x3, 64 -> 64 channels, 32 px, batch 32, forward)."""
    import torch
    import torch.nn.functional as F
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(32, 64, 32, 32).contiguous(memory_format=layout)
    w = torch.randn(64, 64, 3, 3).contiguous(memory_format=layout)
    with torch.no_grad():
        F.conv2d(x, w, padding=1)
        start = time.perf_counter()
        for _ in range(10):
            F.conv2d(x, w, padding=1)
        seconds = (time.perf_counter() - start) / 10
    return 2 * 32 * 64 * 64 * 9 * 32 * 32 / seconds / 1e9


if __name__ == "__main__":
    sys.exit(main())
