"""`newsnow edit directions|grid`: find latent directions of a generator and look at them.

The generator is a bundle folder (default: the demo model) or a researcher's StyleGAN2
checkpoint file (rosinality `.pt`, stylegan2-ada `.pkl`; `training.editing.checkpoints`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from training.editing.cli_args import add_generator_argument, load_array, parse_strengths

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    edit = subparsers.add_parser("edit", help="research: latent directions of a generator (InterFaceGAN, GANSpace, "
                                              "SeFa; Papers I-III)")
    sub = edit.add_subparsers(dest="edit_command", metavar="ACTION", required=True)

    p = sub.add_parser("directions", help="find edit directions and save them as .npz")
    p.add_argument("--method", required=True, choices=["sefa", "ganspace", "interfacegan"],
                   help="sefa (closed form, Paper III), ganspace (PCA of W) or interfacegan (a labelled SVM)")
    add_generator_argument(p)
    p.add_argument("--out", type=Path, required=True, help=".npz file to write")
    p.add_argument("--k", type=int, default=10, help="directions to keep (sefa, ganspace)")
    p.add_argument("--layers", default=":", help="W+ layers the directions apply to: 'a:b' (half open) or '0,2,5' "
                                                 "(sefa: also the layers whose affines are factorised)")
    p.add_argument("--samples", type=int, default=10000, help="ganspace: W codes sampled through the mapping")
    p.add_argument("--seed", type=int, default=0, help="ganspace: seed of the sampled codes")
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
    p.add_argument("--strengths", type=parse_strengths, default=[-3.0, -1.5, 0.0, 1.5, 3.0],
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


def cmd_directions(args) -> int:
    import numpy as np

    from training.editing.directions import Directions, layer_indices
    from training.editing.generator import open_generator

    backend = open_generator(args.generator, args.mapping_lr_multiplier)
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

        latents = np.asarray(load_array(args.latents, "--latents"), dtype=np.float64)
        if latents.ndim == 3:  # W+ codes: their layer mean is the closest W code
            latents = latents.mean(axis=1)
        if latents.ndim != 2 or latents.shape[1] != bundle.w_dim:
            raise ValueError(f"{args.latents}: codes must be [N, {bundle.w_dim}] or [N, num_ws, {bundle.w_dim}], "
                             f"got {latents.shape}")
        svm = fit_svm(latents, load_array(args.labels, "--labels"))
        log.info("interfacegan: training accuracy %.3f", svm.accuracy)
        normal = svm.normal
        if args.condition_labels is not None:
            other = fit_svm(latents, load_array(args.condition_labels, "--condition-labels"))
            normal = conditional_direction(normal, other.normal)
        result = Directions(normal[None], "interfacegan", layers, std=np.array([(latents @ normal).std()]))
    path = result.save(args.out)
    print(f"{path}: {len(result.directions)} {result.method} directions on W+ layers {[int(i) for i in result.layers]}")
    return 0


def cmd_grid(args) -> int:
    from training.editing.directions import Directions
    from training.editing.generator import open_generator
    from training.editing.grid import write_direction_grid

    directions = Directions.load(args.directions)
    backend = open_generator(args.generator, args.mapping_lr_multiplier)
    path, rows = write_direction_grid(backend, directions, args.strengths, args.out,
                                      seed=args.seed, truncation=args.truncation, rows=args.rows,
                                      labels=not args.no_labels)
    print(f"{path}: {rows} directions x {len(args.strengths)} strengths")
    return 0
