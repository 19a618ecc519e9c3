"""Latency of realistic model sizes on this machine: ONNX Runtime vs PyTorch eager, batch 1.

Builds random models of the sizes the table uses (weights do not change the cost), exports
each to a bundle exactly as `newsnow export` does, and prints `newsnow bench`'s figures:

    cpu-demo  64 px, narrow: the bundled demo model (training presets 'cpu-demo')
    full-256  256 px, full width: the GPU recipe (training preset 'full', pSp with light heads)

    python benchmarks/bench_models.py [--models cpu-demo full-256] [--runs 20] [--threads 2] [--fp16]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from inference.bench import bench, format_report  # noqa: E402
from inference.export import export_bundle  # noqa: E402
from inference.networks import Generator, PSPEncoder, count_parameters  # noqa: E402

MODELS = {
    "cpu-demo": dict(generator=dict(resolution=64, z_dim=128, w_dim=128, mapping_layers=2,
                                    channel_base=1024, channel_max=256),
                     encoder=dict(width=24, blocks=(2, 2, 1, 1), channel_max=96, head_width=64)),
    "full-256": dict(generator=dict(resolution=256, z_dim=512, w_dim=512, mapping_layers=8,
                                    channel_base=16384, channel_max=512),
                     encoder=dict(width=64, blocks=(2, 2, 2, 2), channel_max=512, head_width=256)),
}


def build(name: str) -> tuple[Generator, PSPEncoder]:
    torch.manual_seed(0)
    spec = MODELS[name]
    G = Generator(**spec["generator"]).eval()
    E = PSPEncoder(G.resolution, G.num_ws, G.w_dim, **spec["encoder"]).eval()
    with torch.no_grad():  # a trained model's w_avg is the mean w, not zero
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, G.z_dim))[:, 0].mean(0))
    return G, E


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["cpu-demo", "full-256"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fp16", action="store_true", help="export fp16 bundles (mainly for GPU providers)")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    parser.add_argument("--providers", nargs="+", default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write all reports to this JSON file")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            G, E = build(name)
            start = time.perf_counter()
            bundle = export_bundle(G, E, Path(tmp) / name, fp16=args.fp16, meta={"dataset": "random (benchmark)"})
            export_s = time.perf_counter() - start
            size_mb = {p.name: round(p.stat().st_size / 1e6, 1) for p in bundle.path.iterdir()}
            print(f"== {name}: generator {count_parameters(G) / 1e6:.1f} M, encoder {count_parameters(E) / 1e6:.1f} M "
                  f"parameters; export {export_s:.0f} s; files (MB) {size_mb}")
            report = bench(bundle, args.backends, runs=args.runs, threads=args.threads, providers=args.providers)
            print(format_report(report), flush=True)
            report.update(generator_params=count_parameters(G), encoder_params=count_parameters(E),
                          files_mb=size_mb, export_s=export_s)
            reports[name] = report
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
