"""Arguments the `newsnow edit ...` commands share: the generator, strengths, array files."""
from __future__ import annotations

import argparse
from pathlib import Path

GENERATOR_HELP = ("model bundle folder (default: the demo model), or a StyleGAN2 checkpoint file: "
                  "rosinality/pSp .pt, stylegan2-ada .pkl or a New Snow checkpoint")


def add_generator_argument(parser) -> None:
    parser.add_argument("--generator", "--bundle", dest="generator", type=Path, default=None, help=GENERATOR_HELP)
    add_lr_multiplier_argument(parser)


def add_lr_multiplier_argument(parser) -> None:
    parser.add_argument("--mapping-lr-multiplier", type=float, default=None,
                        help="the mapping network's lr multiplier where the file does not record it "
                             "(rosinality's lr_mlp; default: the file's args.lr_mlp, else 0.01)")


def parse_strengths(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from exc
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def load_array(path: Path | None, flag: str, needed_by: str = "interfacegan"):
    """An .npy (or .npz) file given with `flag`, without pickles; one-line errors naming both."""
    import numpy as np

    if path is None:
        raise ValueError(f"{needed_by} needs {flag} (a .npy file)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read {flag} ({exc})") from exc
