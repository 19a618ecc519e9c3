"""`newsnow export` and `newsnow bench`: parsers only; the work (and torch) is imported in the handlers."""
from __future__ import annotations

from pathlib import Path


def _export(args) -> int:
    from inference.export import run

    return run(args)


def _bench(args) -> int:
    if args.pipeline:  # the live loop's benchmark (installation/bench.py) instead of the graphs'
        from installation.bench import run_from_bench_args

        return run_from_bench_args(args)
    from inference.bench import run

    return run(args)


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a model bundle (ONNX graphs) from a training checkpoint",
                              description="Export a training checkpoint (generator + pSp encoder) to a model "
                                          "bundle: fused, encoder, generator and mapping ONNX graphs, "
                                          "model.safetensors and bundle.json.")
    p.add_argument("checkpoint", type=Path, help="checkpoint file written by training")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic (float32 IO)")
    p.add_argument("--check", action="store_true",
                   help="compare PyTorch and ONNX Runtime on the same inputs (fp32 within 1e-4, fp16 1e-2)")
    p.add_argument("--no-weights", action="store_true", help="leave out model.safetensors (smaller bundle; "
                                                             "the torch backend cannot run it)")
    p.set_defaults(handler=_export)

    p = subparsers.add_parser("bench", help="time a bundle per stage and backend (batch 1)",
                              description="Median and p95 latency of the encoder, generator and fused "
                                          "graphs, batch 1, after warm-up.")
    p.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the demo bundle)")
    p.add_argument("--backend", choices=["onnxruntime", "torch", "all"], default="onnxruntime")
    p.add_argument("--runs", type=int, default=50, help="timed runs per stage (default 50)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: library's choice)")
    p.add_argument("--provider", default=None,
                   help="ONNX Runtime provider to try first (e.g. CUDAExecutionProvider); falls back to CPU")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--pipeline", action="store_true",
                   help="benchmark the whole live loop instead: each stage, then 20 s of the demo")
    p.set_defaults(handler=_bench)
