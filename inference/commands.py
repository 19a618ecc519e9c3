"""`newsnow export`: the parser only; the work (and torch) is imported in the handler."""
from __future__ import annotations

from pathlib import Path


def _export(args) -> int:
    from inference.export import run

    return run(args)


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a model bundle (ONNX graphs) from a training checkpoint",
                              description="Export a training checkpoint (generator + pSp encoder) to a model "
                                          "bundle: encoder, generator and mapping ONNX graphs, "
                                          "model.safetensors and bundle.json.")
    p.add_argument("checkpoint", type=Path, help="checkpoint file written by training")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic (float32 IO)")
    p.add_argument("--check", action="store_true",
                   help="compare PyTorch and ONNX Runtime on the same inputs (fp32 within 1e-4, fp16 1e-2)")
    p.add_argument("--no-weights", action="store_true", help="leave out model.safetensors (smaller bundle; "
                                                             "the torch backend cannot run it)")
    p.add_argument("--fused", action="store_true", help="also a one-graph sketch -> drawing file (about as fast "
                                                        "as encoder then generator; repeats their weights)")
    p.set_defaults(handler=_export)
