"""A GPU burst of the demo GAN: train (or continue a CPU run) for a given number of minutes
on one GPU, and bring back what the CPU run continues from.

The demo GAN is the cpu-demo widths at 64 px on the KanjiVG collection, with the demo run's
settings (DEMO below); on the GPU at a batch that fills the card (--batch, halved until it
fits) and with the project's mixed-precision recipe (fp16 in the highest blocks, conv
clamp, loss scaling: training.gan does it on CUDA). Training stops on a wall-clock budget
with a clean snapshot; every snapshot measures the variety (GanRun's snapshot writes
variety.csv, the project's one place for it).

    # on the CPU, once: a CPU run's networks and the dataset into a folder that travels
    python benchmarks/gpu_train_demo.py pack RUN --dataset ds64 --into .gpu
    # on the GPU machine (benchmarks/gpu_train_demo.sh wraps this in a time limit)
    python benchmarks/gpu_train_demo.py burst --out $OUT --minutes 8 --from .gpu/run --dataset .gpu/ds64
    # back on the CPU: the returned files -> a run folder `newsnow train gan` resumes
    python benchmarks/gpu_train_demo.py unpack FILES --into RUN2
    newsnow train gan ds64 --out RUN2 --resume

`burst` without --from starts a new run; without --dataset (or a missing folder) it makes
the dataset as `newsnow train kanjivg --size 64 --max-strokes 12` and `newsnow train ingest
--resolution 64` do (that needs the `kanjivg` and `svg.path` packages). It writes to OUT
burst.json (timings, images/s, the batch, the variety curve, the parts' sha256) and
burst.tar.NNN, parts of at most 15 MiB of one tar holding the run folder for the CPU
(state.pt at the CPU run's batch, config.json, generator.pt, variety.csv, the last sample
grid). `--dry-run` does it all on the CPU at batch 8 for a few steps: CI's test.

What carries over and what does not: the networks, the EMA generator, ADA's p, the
path-length mean and the images seen (kimg) carry both ways. The GPU trains at another
batch, so its steps are counted back into the CPU run's batch by images; a `pack`ed CPU run
leaves its optimiser states behind (they would not fit the 64 MiB a device call carries),
so the burst starts Adam afresh, and the CPU continues with the burst's Adam states. The
continuation is the same model trained on, not the bit-exact run a `--resume` on one
machine gives.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

T0 = time.time()  # the call's budget counts from here: importing torch and CUDA's start are in it
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("gpu_train_demo")

# The demo run's settings (the cpu-demo preset as the long CPU runs use it).
DEMO = dict(batch=32, mbstd_group=8, r1_gamma=0.2)
GPU_BATCH = 1024          # the cpu-demo networks are small: a large batch is what fills an H200
PART_BYTES = 15 << 20     # returned files stay under the 16 MiB a device call brings back
SNAPSHOTS = 8             # points of the variety curve over a burst
RUN_FILES = ("state.pt", "config.json", "generator.pt", "variety.csv", "best.json", "summary.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_dataset(folder: Path, dry_run: bool) -> dict:
    """The 64 px KanjiVG dataset as `train kanjivg --size 64 --max-strokes 12` then `train
    ingest --resolution 64` make it (a few dozen drawings in a dry run)."""
    from training.collections.kanjivg import CREDIT, LICENCE, render_collection
    from training.ingest import IngestSettings, ingest
    renders = folder.with_name(folder.name + "_renders")
    render_collection(renders, size=64, count=48 if dry_run else None, max_strokes=12)
    return ingest(renders, folder, IngestSettings(resolution=64), licence=LICENCE, credit=CREDIT)


def cpu_config(source: Path | None) -> dict:
    """The CPU run's settings: its config.json, or the demo run's."""
    from training.config import config_from
    if source is not None:
        saved = json.loads((source / "config.json").read_text())
        saved.pop("r1_gamma_used", None)
        return saved
    return dataclasses.asdict(config_from("cpu-demo", **DEMO))


def gpu_config(cpu: dict, batch: int, dry_run: bool):
    """The CPU run's settings at the GPU batch; the burst's own length and snapshots are
    set by time, so kimg and snapshot_kimg only keep the loop's own snapshots out."""
    from training.config import GanConfig
    values = {**cpu, "batch": batch, "kimg": 1e6, "snapshot_kimg": 1e6, "threads": 0,
              "betas": tuple(cpu["betas"])}
    if dry_run:
        values["mbstd_group"] = min(values["mbstd_group"], batch)
    return GanConfig(**values).validate()


def load_networks_into(run, source: Path, cpu_batch: int) -> None:
    """Continue `run` (a fresh GanRun at the GPU batch) from a CPU run's state: networks,
    EMA, ADA p, path-length mean, kimg; its optimiser states when the state has them."""
    import torch
    from training.state import load_state
    state, path = load_state(source / "state.pt", run.device)
    for name in ("G", "D", "G_ema"):
        run.stateful[name].load_state_dict(state[name])
    optimisers = [name for name in ("opt_G", "opt_D") if name in state]
    for name in optimisers:
        run.stateful[name].load_state_dict(state[name])
    if run.glo is not None:  # a --glo run: its drawings' codes and how far its warm-up came
        if "glo" not in state:
            raise SystemExit(f"gpu_train_demo: {path} has no GLO codes but its config.json has glo "
                             f"{run.cfg.glo}; pack the run again")
        run.glo.load_state_dict(state["glo"])
        run.counters["glo_warmup"] = int(state.get("glo_warmup", 0))
    images = state["step"] * cpu_batch
    run.step = run.session_step = round(images / run.cfg.batch)
    run.ada_p = float(state["ada_p"])
    run.pl_mean = torch.tensor(float(state["pl_mean"]), device=run.device)
    run.counters.update(step=run.step, ada_p=run.ada_p, pl_mean=float(state["pl_mean"]),
                        elapsed=float(state.get("elapsed", 0.0)))
    run.started = time.time() - run.counters["elapsed"]
    torch.manual_seed(run.cfg.seed + 1 + 1000 * run.step)  # a stream of its own, not the CPU run's start
    log.info("continuing %s: %.1f kimg, ADA p %.3f, optimiser states %s", path, images / 1000, run.ada_p,
             "carried" if optimisers else "new (the packed state has none)")


def cpu_state(run_dir: Path, cpu: dict, gpu_batch: int) -> dict:
    """The burst's state as the CPU run's: its config and batch, steps counted in its batch,
    loss scalers as a CPU run keeps them (disabled)."""
    import torch
    from training.state import load_state
    state, _ = load_state(run_dir / "state.pt", "cpu")
    images = state["step"] * gpu_batch
    state.update(config=cpu, step=round(images / cpu["batch"]),
                 scaler_G=torch.amp.GradScaler("cuda", enabled=False).state_dict(),
                 scaler_D=torch.amp.GradScaler("cuda", enabled=False).state_dict())
    state["ada_sum"], state["ada_count"] = 0.0, 0
    state["rng"]["cuda"] = []
    return state


def write_cpu_run(run, cpu: dict, into: Path, meta: dict) -> None:
    """RUN folder for the CPU: state.pt, config.json, generator.pt (a CPU-built generator:
    no fp16 blocks, no clamp), variety.csv and the rest of the GPU run's small files."""
    from inference.checkpoint import save_model_checkpoint
    from storage import atomic_write_json
    from training.config import GanConfig
    from training.gan import build_networks
    from training.state import save_state
    into.mkdir(parents=True, exist_ok=True)
    cfg = GanConfig(**{**cpu, "betas": tuple(cpu["betas"])})
    G, D = build_networks(cfg)
    state = cpu_state(run.out, cpu, run.cfg.batch)
    state["D_init_kwargs"] = D.init_kwargs  # as the CPU builds it: no fp16 blocks, no clamp
    save_state(state, into / "state.pt")
    atomic_write_json(into / "config.json", {**cpu, "r1_gamma_used": cfg.gamma})
    G.load_state_dict({k: v.cpu() for k, v in run.G_ema.state_dict().items()})
    save_model_checkpoint(into / "generator.pt", G.eval(), None, meta)
    for name in RUN_FILES[3:]:
        if (run.out / name).is_file():
            shutil.copyfile(run.out / name, into / name)
    grids = sorted(run.out.glob("samples_*.png"))
    if grids:
        shutil.copyfile(grids[-1], into / grids[-1].name)


def split_tar(folder: Path, out: Path) -> list[dict]:
    """`folder` as one tar in parts of at most PART_BYTES: OUT/burst.tar.000, ..."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    blob = data.getvalue()
    parts = []
    for i in range(math.ceil(len(blob) / PART_BYTES)):
        path = out / f"burst.tar.{i:03d}"
        path.write_bytes(blob[i * PART_BYTES:(i + 1) * PART_BYTES])
        parts.append({"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path)})
    return parts


def burst(args) -> dict:
    import numpy as np  # noqa: F401  (training imports it; fail here, before the clock matters)
    import torch
    from training.gan import GanRun
    from training.stopping import StopRequest
    start = T0
    deadline = start + args.budget_s
    timings = {"imports_s": time.time() - start}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # scratch outside OUT: a device call brings back only 8 files from its OUT
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_train_demo."))
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        raise SystemExit("gpu_train_demo: no CUDA device; --dry-run runs it on the CPU")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convs

    dataset = Path(args.dataset) if args.dataset else work / "ds64"
    if not (dataset / "manifest.json").is_file():
        make_dataset(dataset, args.dry_run)
    timings["dataset_s"] = time.time() - start - timings["imports_s"]

    source = Path(args.from_run) if args.from_run else None
    cpu = cpu_config(source)
    batch = args.batch or (8 if args.dry_run else GPU_BATCH)
    while True:  # halve the batch until a step fits on the card
        t = time.time()
        cfg = gpu_config(cpu, batch, args.dry_run)
        run = GanRun(dataset, work / "run", cfg, resume=False, force=True, meta=None, progress=False)
        if source is not None:
            load_networks_into(run, source, cpu["batch"])
        while run.glo_warming_up:  # a --glo run packed before its GAN began
            run.glo_warmup_step()
        timings["setup_s"] = time.time() - t
        try:
            t = time.time()
            run.train_step()  # the first step pays cuDNN's search and the allocator's growth
            if cuda:
                torch.cuda.synchronize()
            timings["first_step_s"] = time.time() - t
            break
        except torch.cuda.OutOfMemoryError:
            if batch <= 8:
                raise
            log.warning("batch %d does not fit; trying %d", batch, batch // 2)
            del run
            torch.cuda.empty_cache()
            batch //= 2
    print(f"gpu_train_demo: batch {batch}, {'from ' + str(source) if source else 'a new run'}, "
          f"setup {time.time() - start:.0f} s", flush=True)

    # Train until the budget, leaving room for one more step, the last snapshot and the packing
    # (measured as they happen, with a margin).
    train_until = min(deadline, time.time() + args.minutes * 60)
    every = args.minutes * 60 / SNAPSHOTS
    # guesses until measured: a snapshot writes ~50 MB and measures 256 drawings
    snapshot_s, pack_s = (0.5, 1.0) if args.dry_run else (15.0, 10.0)
    step_s = timings["first_step_s"]
    steps0, images0, t_train = run.step, run.step * batch, time.time()
    last_snapshot = time.time()
    with StopRequest() as stop:
        while not stop.signal:
            now = time.time()
            if args.max_steps and run.step - steps0 >= args.max_steps:
                break
            if now + 2 * step_s + snapshot_s + pack_s > train_until:
                break
            t = time.time()
            run.train_step()
            run.after_step(stopping=False)
            step_s = 0.9 * step_s + 0.1 * (time.time() - t) if run.step - steps0 > 2 else time.time() - t
            if time.time() - last_snapshot >= every:
                t = time.time()
                run.snapshot()
                snapshot_s, last_snapshot = max(snapshot_s, time.time() - t), time.time()
        if cuda:
            torch.cuda.synchronize()
        train_s = time.time() - t_train
        t = time.time()
        run.snapshot()  # the clean end: state, generator, samples, variety
        snapshot_s = max(snapshot_s, time.time() - t)
        summary = run.finish(stop)

    t = time.time()
    meta = {"dataset": str(dataset), "kimg": run.kimg(), "trained_on": "gpu burst",
            "burst_batch": batch, "resolution": cfg.resolution}
    folder = work / "for_cpu"
    if folder.exists():
        shutil.rmtree(folder)
    write_cpu_run(run, cpu, folder, meta)
    parts = split_tar(folder, out)
    timings.update(train_s=train_s, snapshot_s=snapshot_s, pack_s=time.time() - t, total_s=time.time() - start)
    variety = []
    if (run.out / "variety.csv").is_file():
        import csv
        variety = [{k: float(v) for k, v in row.items()} for row in csv.DictReader((run.out / "variety.csv").open())]
    images = (run.step * batch) - images0
    report = {"device": torch.cuda.get_device_name() if cuda else "cpu (dry run)", "batch": batch,
              "from": str(source) if source else None, "kimg_start": images0 / 1000, "kimg_end": run.kimg(),
              "steps": run.step - steps0, "images_per_s": images / max(train_s, 1e-9),
              "kimg_per_h": images / max(train_s, 1e-9) * 3.6, "ada_p": run.ada_p,
              "losses": {k: v for k, v in summary.items() if k.startswith("loss") or k in ("r1", "pl_length")},
              "max_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
              "timings": timings, "variety": variety, "parts": parts,
              "cpu_run": {"batch": cpu["batch"], "step": round(run.step * batch / cpu["batch"])},
              "unpack": "python benchmarks/gpu_train_demo.py unpack FILES --into RUN; "
                        "newsnow train gan DATASET --out RUN --resume"}
    (out / "burst.json").write_text(json.dumps(report, indent=1))
    return report


def unpack(files: Path, into: Path) -> Path:
    """Join and check the parts a burst wrote (burst.json beside them), extract the run."""
    report = json.loads((files / "burst.json").read_text())
    blob = bytearray()
    for part in report["parts"]:
        path = files / part["file"]
        if not path.is_file() or sha256(path) != part["sha256"]:
            raise SystemExit(f"gpu_train_demo: {path} is missing or not the part the burst wrote (sha256)")
        blob += path.read_bytes()
    if into.exists() and any(into.iterdir()):
        raise SystemExit(f"gpu_train_demo: {into} is not empty; unpack into a new folder")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(bytes(blob))) as tar:
        for member in tar.getmembers():  # flat files only: nothing lands outside `into`
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise SystemExit(f"gpu_train_demo: unexpected entry {member.name!r} in the burst's tar")
        tar.extractall(into)
    return into


def pack(run_dir: Path, into: Path, dataset: Path | None) -> Path:
    """A CPU run's state without its optimiser states (networks, counters, config) and the
    dataset, into a folder a device call carries (64 MiB with the checkout)."""
    import torch
    from training.state import load_state
    state, _ = load_state(run_dir / "state.pt", "cpu")
    slim = {k: v for k, v in state.items() if k not in ("opt_G", "opt_D", "scaler_G", "scaler_D")}
    if "glo" in slim:  # the codes and their Adam travel; the warm-up's moments (as large as G) are spent
        slim["glo"] = {**slim["glo"], "opt_warmup": {**slim["glo"]["opt_warmup"], "state": {}}}
    (into / "run").mkdir(parents=True, exist_ok=True)
    torch.save(slim, into / "run" / "state.pt")
    shutil.copyfile(run_dir / "config.json", into / "run" / "config.json")
    if dataset is not None:
        target = into / dataset.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(dataset, target)
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    b = verbs.add_parser("burst", help="train on the GPU for --minutes; write OUT/burst.json and parts")
    b.add_argument("--out", required=True)
    b.add_argument("--minutes", type=float, required=True, help="of training (setup and packing come on top)")
    b.add_argument("--budget-s", type=float, default=560, help="the whole call stops within this")
    b.add_argument("--from", dest="from_run", default=None, help="a CPU run folder (state.pt, config.json)")
    b.add_argument("--dataset", default=None, help="an ingested 64 px dataset (made when missing)")
    b.add_argument("--batch", type=int, default=0, help=f"default {GPU_BATCH} on a GPU (halved until it fits)")
    b.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    b.add_argument("--max-steps", type=int, default=0)
    b.add_argument("--dry-run", action="store_true", help="on the CPU at batch 8 (what CI tests)")
    u = verbs.add_parser("unpack", help="the returned files -> a run folder `train gan --resume` continues")
    u.add_argument("files")
    u.add_argument("--into", required=True)
    p = verbs.add_parser("pack", help="a CPU run (and the dataset) -> a folder small enough to carry")
    p.add_argument("run")
    p.add_argument("--into", required=True)
    p.add_argument("--dataset", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verb == "burst":
        report = burst(args)
        print(json.dumps({k: v for k, v in report.items() if k not in ("variety", "parts")}, indent=1))
        for row in report["variety"]:
            print(f"variety at {row['kimg']:.1f} kimg: {row['variety']:.3f} (spread {row['spread']:.3f})")
    elif args.verb == "unpack":
        print(unpack(Path(args.files), Path(args.into)))
    else:
        print(pack(Path(args.run), Path(args.into), Path(args.dataset) if args.dataset else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
