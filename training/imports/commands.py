"""`newsnow import`: the parser only; the work (and torch) is imported in the handler."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_setting(text: str) -> tuple[str, object]:
    """NAME=VALUE of a binarization parameter; VALUE as JSON where it parses (numbers, true), else text."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. method=sauvola, window=21)")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def cmd_import(args) -> int:
    from inference.export import TOLERANCE
    from training.imports.bundle import CARD, import_checkpoint
    from training.provenance import command_line

    bundle, diffs = import_checkpoint(args.checkpoint, args.out, encoder=args.encoder, input_range=args.input_range,
                                      mapping_lr_multiplier=args.mapping_lr_multiplier,
                                      binarize=dict(args.binarize or []), licence=args.licence, credit=args.credit,
                                      fp16=args.fp16, check=args.check, weights=not args.no_weights,
                                      command=command_line())
    size = sum(p.stat().st_size for p in bundle.path.iterdir() if p.is_file())
    print(f"wrote {bundle.path} ({bundle.precision}, {bundle.resolution}x{bundle.resolution}, {bundle.channels} "
          f"channel(s), {bundle.num_ws} styles, {size / 1e6:.1f} MB); see {bundle.path / CARD}")
    if diffs is not None:
        for name, diff in diffs.items():
            print(f"check {name:9s} max |torch - onnxruntime| = {diff:.3g} (limit {TOLERANCE[bundle.precision]:g})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="make a table bundle from a model trained elsewhere (pSp, e4e, StyleGAN2 + encoder)",
        description="Make a model bundle from a pSp or e4e checkpoint (its encoder and generator), or from a "
                    "researcher's StyleGAN2 generator (rosinality .pt, NVlabs .pkl) with the New Snow encoder "
                    "trained for it (--encoder). The file's format is told by its content; nothing in it is run.")
    p.add_argument("checkpoint", type=Path, help="the checkpoint file (any name or suffix)")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--encoder", type=Path, default=None,
                   help="for a generator-only file: the model.pt of `newsnow train encoder --generator FILE`")
    p.add_argument("--input-range", choices=("0:1", "-1:1"), default=None,
                   help="what the pSp/e4e encoder was trained on (default: 0:1 for 1-channel sketch models, "
                        "-1:1 for RGB ones, as pSp's transforms)")
    p.add_argument("--binarize", type=parse_setting, action="append", metavar="NAME=VALUE",
                   help="a binarization setting of the bundle (repeatable; e.g. method=sauvola), so that the "
                        "table's sketches look like the model's training sketches")
    p.add_argument("--mapping-lr-multiplier", type=float, default=None,
                   help="the mapping's lr multiplier where the file does not record it (default: the file's "
                        "args.lr_mlp, else 0.01)")
    p.add_argument("--licence", default=None, help="the model's licence, for the model card")
    p.add_argument("--credit", default=None, help="who to credit, for the model card")
    p.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic (float32 IO)")
    p.add_argument("--check", action="store_true",
                   help="compare PyTorch and ONNX Runtime on the same inputs (fp32 within 1e-4, fp16 1e-2)")
    p.add_argument("--no-weights", action="store_true", help="leave out model.safetensors")
    p.set_defaults(handler=cmd_import)
