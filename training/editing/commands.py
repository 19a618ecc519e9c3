"""`newsnow edit directions|grid`: find latent directions of a generator and look at them.

The generator is a bundle folder (default: the demo model) or a researcher's StyleGAN2
checkpoint file (rosinality `.pt`, stylegan2-ada `.pkl`; `training.editing.checkpoints`).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


GENERATOR_HELP = ("model bundle folder (default: the demo model), or a StyleGAN2 checkpoint file: "
                  "rosinality/pSp .pt, stylegan2-ada .pkl or a New Snow checkpoint")


def add_generator_argument(parser) -> None:
    parser.add_argument("--generator", "--bundle", dest="generator", type=Path, default=None, help=GENERATOR_HELP)


def _strengths(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--strengths: {text!r} is not a comma-separated list of numbers") from exc
    if not values:
        raise argparse.ArgumentTypeError("--strengths: give at least one number")
    return values


def register(subparsers) -> None:
    edit = subparsers.add_parser("edit", help="research: latent directions of a generator (InterFaceGAN, GANSpace, "
                                              "SeFa; Papers I-III)")
    sub = edit.add_subparsers(dest="edit_command", metavar="ACTION")

    p = sub.add_parser("directions", help="find edit directions and save them as .npz")
    p.add_argument("--method", required=True, choices=["sefa", "ganspace", "interfacegan"])
    add_generator_argument(p)
    p.add_argument("--out", type=Path, required=True, help=".npz file to write")
    p.add_argument("--k", type=int, default=10, help="directions to keep (sefa, ganspace)")
    p.add_argument("--layers", default=":", help="W+ layers the directions apply to: 'a:b' (half open) or '0,2,5' "
                                                 "(sefa: also the layers whose affines are factorised)")
    p.add_argument("--samples", type=int, default=10000, help="ganspace: W codes sampled through the mapping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--include-torgb", action="store_true", help="sefa: also factorise the toRGB affines")
    p.add_argument("--latents", type=Path, help="interfacegan: .npy codes [N, w_dim] or [N, num_ws, w_dim]")
    p.add_argument("--labels", type=Path, help="interfacegan: .npy labels [N], two values")
    p.add_argument("--condition-labels", type=Path,
                   help="interfacegan: .npy labels [N] of an attribute to keep fixed (conditional direction)")
    p.set_defaults(handler=cmd_directions)

    p = sub.add_parser("grid", help="image of one drawing edited along each direction (rows) at several strengths")
    add_generator_argument(p)
    p.add_argument("--directions", type=Path, required=True, help=".npz from `newsnow edit directions`")
    p.add_argument("--out", type=Path, required=True, help="image file (.png)")
    p.add_argument("--strengths", type=_strengths, default=[-3.0, -1.5, 0.0, 1.5, 3.0],
                   help="comma-separated, in standard deviations of W along each direction "
                        "(write --strengths=-3,0,3: a leading minus would read as a flag)")
    p.add_argument("--rows", type=int, default=None, help="only the first N directions")
    p.add_argument("--seed", type=int, default=0, help="which drawing (z seed)")
    p.add_argument("--truncation", type=float, default=0.7, help="psi for the drawing's w")
    p.add_argument("--no-labels", action="store_true", help="tiles only, without direction names and strengths")
    p.set_defaults(handler=cmd_grid)

    from training.editing import nrsfm_commands, taugan_commands, tensor_commands

    taugan_commands.register(sub)  # Paper I
    tensor_commands.register(sub)  # Paper II
    nrsfm_commands.register(sub)   # Paper III


def _load_npy(path: Path | None, flag: str):
    import numpy as np

    if path is None:
        raise ValueError(f"interfacegan needs {flag} (a .npy file)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read {flag} as .npy ({exc})") from exc


def cmd_directions(args) -> int:
    import numpy as np

    from training.editing.directions import Directions, layer_indices
    from training.editing.generator import open_generator

    backend = open_generator(args.generator)
    bundle = backend.bundle
    layers = layer_indices(args.layers, bundle.num_ws)
    if args.method == "ganspace":
        from training.editing.ganspace import ganspace, sample_w

        pca = ganspace(sample_w(backend.map, n=args.samples, z_dim=bundle.z_dim, seed=args.seed), k=args.k)
        result = Directions(pca.components, "ganspace", layers, std=pca.std)
    elif args.method == "sefa":
        from training.editing.generator import sefa_directions, torch_generator
        from training.editing.grid import direction_std

        vectors, values = sefa_directions(torch_generator(backend), layers, k=args.k, include_torgb=args.include_torgb)
        log.info("sefa eigenvalues: %s", np.array2string(values[:10], precision=3))
        result = Directions(vectors, "sefa", layers, std=direction_std(backend, vectors))
    else:
        from training.editing.interfacegan import conditional_direction, fit_svm

        latents = np.asarray(_load_npy(args.latents, "--latents"), dtype=np.float64)
        if latents.ndim == 3:  # W+ codes: their layer mean is the closest W code
            latents = latents.mean(axis=1)
        if latents.ndim != 2 or latents.shape[1] != bundle.w_dim:
            raise ValueError(f"{args.latents}: codes must be [N, {bundle.w_dim}] or [N, num_ws, {bundle.w_dim}], "
                             f"got {latents.shape}")
        svm = fit_svm(latents, _load_npy(args.labels, "--labels"))
        log.info("interfacegan: training accuracy %.3f", svm.accuracy)
        normal = svm.normal
        if args.condition_labels is not None:
            other = fit_svm(latents, _load_npy(args.condition_labels, "--condition-labels"))
            normal = conditional_direction(normal, other.normal)
        result = Directions(normal[None], "interfacegan", layers, std=np.array([(latents @ normal).std()]))
    path = result.save(args.out)
    print(f"{path}: {len(result.directions)} {result.method} directions on W+ layers {[int(i) for i in result.layers]}")
    return 0


def write_direction_grid(backend, directions, strengths, out, seed: int = 0, truncation: float = 0.7,
                         rows: int | None = None, labels: bool = True):
    """The editing grid of `directions` on a backend from `open_generator`, labelled, as a PNG: (path, rows)."""
    from training.editing.grid import editing_grid, label_grid, strength_labels, write_grid

    grid = editing_grid(backend, directions, strengths, seed=seed, truncation=truncation, rows=rows)
    tile = backend.bundle.resolution
    count = grid.shape[0] // tile
    if labels:
        grid = label_grid(grid, tile, directions.labels()[:count], strength_labels(strengths, directions.unit))
    return write_grid(out, grid), count


def cmd_grid(args) -> int:
    from training.editing.directions import Directions
    from training.editing.generator import open_generator

    directions = Directions.load(args.directions)
    path, rows = write_direction_grid(open_generator(args.generator), directions, args.strengths, args.out,
                                      seed=args.seed, truncation=args.truncation, rows=args.rows,
                                      labels=not args.no_labels)
    print(f"{path}: {rows} directions x {len(args.strengths)} strengths")
    return 0
