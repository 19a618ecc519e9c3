"""Anti-collapse changes side by side: the variety curve (training.variety, as every GAN
snapshot measures it) of short `train gan` runs that differ from today's recipe in one
setting each, at equal kimg, on the same collection and seed.

    python benchmarks/bench_anticollapse.py --dataset ds64 --kimg 12 --every 4 \
        [--variants baseline lr-low gamma-high ...] [--init-generator MODEL] [--out DIR] [--json FILE]

Each variant is a real `train gan` run (ADA, path length, R1, EMA as users run it) on
one thread; the table printed at the end has one row a variant, its variety at each
snapshot, and the seconds it took (a variant that costs more is not free). Short runs
only say which changes delay the collapse seen at 6-12 kimg, not where a long run ends.

`--continue RUN` forks a long run instead: each variant copies RUN's state (G, D, Adam,
ADA's p at hundreds of kimg: the regime where the curve levels off and D overfits, which
a run from scratch or from a generator with a new D does not reach in 36 kimg) and resumes
it for --kimg more with its change on the run's own settings. Only what a resume may change
can be tried that way (GAN_CHANGEABLE); the baseline is the run's own continuation.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The recipe of the long demo run (cpu-demo preset, batch 32, minibatch-std group 8,
# R1 gamma 0.2) and one change each.
BASELINE = dict(batch=32, mbstd_group=8, r1_gamma=0.2)
VARIANTS = {
    "baseline": {},
    "lr-low": dict(lr=0.001),                       # G and D both 2.5x slower
    "d-lr-low": dict(d_lr=0.001),                   # D alone 2.5x slower
    "g-lr-low": dict(lr=0.001, d_lr=0.0025),        # G alone 2.5x slower
    "gamma-high": dict(r1_gamma=1.0),
    "gamma-low": dict(r1_gamma=0.05),
    "gamma-2": dict(r1_gamma=2.0),
    "mbstd-batch": dict(mbstd_group=32),            # D compares the whole batch
    "d-wide": dict(d_channel_base=2048, d_channel_max=512),  # D 2x wider at every resolution
    "no-mixing": dict(style_mixing=0.0),
    "ada-0.4": dict(ada_target=0.4),
    "batch-64": dict(batch=64, mbstd_group=16),
    "mode-seeking": dict(mode_seeking=1.0),         # MSGAN's diversity term, its paper's weight
    "pacgan-2": dict(d_pack=2),                     # PacGAN: D scores pairs of drawings
    "mirror": dict(mirror=True),                    # x-flips double the drawings D sees (ADA's --mirror)
    # A slower EMA averages G over more of its wandering between characters (Yazici et al. 2019);
    # no ramp-up, which would cap a forked run's half-life at 5% of its images. Both read below the
    # run's own EMA (docs/training.md): they lag, and an average of characters draws fewer.
    "ema-20": dict(ema_kimg=20.0, ema_rampup=0.0),
    "ema-40": dict(ema_kimg=40.0, ema_rampup=0.0),
    # IMLE's pull (Li & Malik 2018): each real drawing pulls its nearest of 4 samples towards it
    "imle-1": dict(imle=1.0),
    "imle-10": dict(imle=10.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="an ingested 64 px collection (train ingest)")
    parser.add_argument("--kimg", type=float, default=12.0)
    parser.add_argument("--every", type=float, default=4.0, help="kimg between variety measurements")
    parser.add_argument("--variants", nargs="+", default=["baseline", "lr-low", "gamma-high", "mbstd-batch", "d-wide"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--init-generator", type=Path, default=None, metavar="MODEL",
                        help="every variant starts G from this bundle or checkpoint (D new), as a long run "
                             "that continues the shipped generator does")
    parser.add_argument("--continue", dest="from_run", type=Path, default=None, metavar="RUN",
                        help="fork this GAN run's newest state for every variant (see above)")
    parser.add_argument("--r1-gamma", type=float, default=None,
                        help="the baseline's R1 gamma for every variant (default: the long run's first, "
                             f"{BASELINE['r1_gamma']}); 1.0 is what the long run has trained with since 358 kimg")
    args = parser.parse_args()
    baseline = {**BASELINE, **({"r1_gamma": args.r1_gamma} if args.r1_gamma is not None else {})}

    import dataclasses

    from training.config import GanConfig, config_from
    from training.gan import VARIETY_CSV, train_gan

    fields = {f.name for f in dataclasses.fields(GanConfig)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        if args.from_run:  # one copy: the run goes on training while the variants take their turns
            start_state, first, settings = freeze(args.from_run, root)
        for name in args.variants:
            change = {k: v for k, v in VARIANTS[name].items() if k in fields}
            skipped = sorted(set(VARIANTS[name]) - fields)
            if skipped:
                print(f"{name}: the config has no {', '.join(skipped)}; skipped", flush=True)
                continue
            start = time.perf_counter()
            if args.from_run:
                fork(start_state, root / name)
                cfg = dataclasses.replace(GanConfig(**settings), **change, kimg=first + args.kimg,
                                          snapshot_kimg=args.every, threads=args.threads)
                try:
                    train_gan(args.dataset, root / name, cfg, resume=True, progress=False)
                except ValueError as refused:  # not a setting a resume may change
                    print(f"{name}: {refused}; skipped", flush=True)
                    continue
            else:
                cfg = config_from("cpu-demo", **{**baseline, **change}, kimg=args.kimg, snapshot_kimg=args.every,
                                  threads=args.threads)
                train_gan(args.dataset, root / name, cfg, progress=False, force=True,
                          init_generator=args.init_generator)
            seconds = time.perf_counter() - start
            rows = list(csv.DictReader((root / name / VARIETY_CSV).open()))
            curve = {float(r["kimg"]): float(r["variety"]) for r in rows}
            results.append({"variant": name, "change": change, "seconds": round(seconds), "variety": curve})
            print(f"{name:12s} " + "  ".join(f"{k:5.1f} kimg {v:.2f}" for k, v in curve.items())
                  + f"  ({seconds / 60:.1f} min)", flush=True)
    print("\nvariety (of the collection's) against kimg, one thread each:")
    kimgs = sorted({k for r in results for k in r["variety"]})
    print("| variant | " + " | ".join(f"{k:g}" for k in kimgs) + " | min |")
    print("|---" * (len(kimgs) + 2) + "|")
    for r in results:
        print(f"| {r['variant']} | " + " | ".join(f"{r['variety'].get(k, float('nan')):.2f}" for k in kimgs)
              + f" | {r['seconds'] / 60:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def freeze(run: Path, root: Path) -> tuple[Path, float, dict]:
    """A copy of `run`'s newest state in `root` that every variant starts from: its path,
    kimg and settings."""
    from training.gan import STATE
    from training.state import load_state
    state, path = load_state(run / STATE)  # the previous state when the newest is damaged
    root.mkdir(parents=True, exist_ok=True)
    copy = root / f"start-{STATE}"
    shutil.copyfile(path, copy)
    return copy, state["step"] * state["config"]["batch"] / 1000, state["config"]


def fork(start_state: Path, out: Path) -> None:
    """`out`, a fresh folder, holding `start_state` to resume."""
    from training.gan import STATE
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copyfile(start_state, out / STATE)


if __name__ == "__main__":
    sys.exit(main())
