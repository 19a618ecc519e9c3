"""The GPU check: what only a GPU machine can tell, in one run of under 8 minutes.

1. Training burst: `train gan --full` (256 px, the fixed mixed precision: fp16 in the top
   4 blocks, conv_clamp 256) on KanjiVG rendered at 256 px for `--burst-kimg`; kimg/h, and
   whether any loss or weight became NaN/inf.
2. Export of a full-width 256 px bundle (random weights: they do not change the cost) in
   fp32 and fp16, and the fp16 graphs' parity against the PyTorch fp32 networks.
3. Latency of sketch -> drawing (the table's path: encoder then generator; batch 1) on the TensorRT and CUDA providers, fp32 and
   fp16: median and p95.
4. (`--parts import`) An imported pSp sketch model of the published sizes (IR-SE50
   encoder, 256 px decoder; `benchmarks/bench_import.py`) as an fp16 bundle: its parity on
   the CUDA provider and the latency of its graphs on TensorRT and CUDA.

Writes OUT/gpu_check.json (parts training and export) or OUT/gpu_check_import.json (part
import), after each step, and prints it. `--dry-run` runs every step on the CPU at toy
sizes (32 px, a few steps, the CPU provider): what CI can test of this script.

    python benchmarks/gpu_check.py --out OUT [--dry-run] [--burst-kimg 2] [--parts training export import]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def training_burst(work: Path, dry_run: bool, kimg: float) -> dict:
    from training.collections.kanjivg import render_collection
    from training.config import config_from
    from training.gan import STATE, train_gan
    from training.ingest import IngestSettings, ingest

    size = 32 if dry_run else 256
    render_collection(work / "renders", size=size, count=40 if dry_run else 600, max_strokes=12)
    ingest(work / "renders", work / "dataset", IngestSettings(resolution=size))
    cfg = (config_from("tiny", kimg=0.032, snapshot_kimg=0.032) if dry_run
           else config_from("full", kimg=kimg, snapshot_kimg=kimg))
    summary = train_gan(work / "dataset", work / "gan", cfg, progress=False)
    state = torch.load(work / "gan" / STATE, map_location="cpu", weights_only=False)
    finite = all(torch.isfinite(v).all() for net in ("G", "D", "G_ema")
                 for v in state[net].values() if v.is_floating_point())
    return {"preset": "tiny (dry run)" if dry_run else "full", "resolution": size, "kimg": summary["kimg"],
            "kimg_per_hour": summary["kimg_per_hour"], "seconds": summary["seconds"],
            "mixed_precision": torch.cuda.is_available() and cfg.amp, "finite": bool(finite),
            "losses": {k: summary[k] for k in ("loss_G", "loss_D") if k in summary}}


def export_and_time(work: Path, dry_run: bool, runs: int) -> dict:
    from benchmarks.bench_models import build
    from inference.bench import time_stages
    from inference.export import check_parity, export_bundle
    from inference.runtime import OrtBackend

    if dry_run:
        from inference.networks import Generator, PSPEncoder
        torch.manual_seed(0)
        G = Generator(32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32).eval()
        E = PSPEncoder(32, G.num_ws, G.w_dim, width=8, blocks=(1, 1, 1, 1), channel_max=32, head_width=32).eval()
    else:
        G, E = build("full-256")
    import onnxruntime as ort
    available = ort.get_available_providers()
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if not dry_run else ["CPUExecutionProvider"]
    out = {"available_providers": available, "export": {}, "latency": {}}
    for precision in ("fp32", "fp16"):
        start = time.perf_counter()
        bundle = export_bundle(G, E, work / f"bundle_{precision}", fp16=precision == "fp16",
                               meta={"dataset": "random (gpu check)"})
        out["export"][precision] = {"seconds": time.perf_counter() - start,
                                    "parity_max_abs": check_parity(G, E, bundle, provider=wanted[-1]),
                                    "files_mb": {p.name: round(p.stat().st_size / 1e6, 1)
                                                 for p in bundle.path.iterdir()}}
        for provider in wanted:
            if provider not in available:
                out["latency"][f"{provider}/{precision}"] = {"skipped": f"{provider} not in this onnxruntime"}
                continue
            try:
                backend = OrtBackend(bundle, providers=[provider])
                used = backend.sessions["encoder"].get_providers()[0]
                answer = time_stages(backend, runs=runs, warmup=10)["sketch_to_drawing"]
                out["latency"][f"{provider}/{precision}"] = {**answer, "provider_used": used}
            except Exception as exc:  # a provider that fails to build its engine is a finding
                out["latency"][f"{provider}/{precision}"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return out


def imported_psp(work: Path, dry_run: bool, runs: int, save) -> dict:
    from benchmarks.bench_import import measure

    providers = ["CPUExecutionProvider"] if dry_run else ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    report = {}

    def keep(figures: dict) -> None:
        report["imported_psp"] = figures
        save()

    measure(work / "import", small=dry_run, runs=runs, threads=None, providers=providers, fp16=True,
            parity_provider=providers[-1], save=keep)
    return report["imported_psp"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: tests the script itself")
    parser.add_argument("--burst-kimg", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--parts", nargs="+", choices=("training", "export", "import"),
                        default=["training", "export", "import"])
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch; run with --dry-run to test the script on a CPU",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (dry run)",
              "torch": torch.__version__}
    target = args.out / ("gpu_check.json" if args.parts != ["import"] else "gpu_check_import.json")

    def save() -> str:
        text = json.dumps(report, indent=1,
                          default=lambda v: v if not isinstance(v, float) or math.isfinite(v) else str(v))
        target.write_text(text)
        return text

    runs = 20 if args.dry_run else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "training" in args.parts:
            report["training"] = training_burst(work, args.dry_run, args.burst_kimg)
            save()
        if "export" in args.parts:
            report.update(export_and_time(work, args.dry_run, runs))
            save()
        if "import" in args.parts:
            report["imported_psp"] = imported_psp(work, args.dry_run, runs, save)
    print(save())
    return 0 if report.get("training", {"finite": True})["finite"] else 1


if __name__ == "__main__":
    sys.exit(main())
