"""`newsnow hspace ...`: diffusion h-space editing (Paper V), its DDPM trainer included.

Only argparse here; the handlers import torch and diffusers when they run.

    newsnow train kanjivg --out drawings --size 64          # the demo collection
    newsnow hspace train-ddpm drawings --out runs/ddpm
    newsnow hspace sample     --model runs/ddpm/model --out samples.png
    newsnow hspace pca        --model runs/ddpm/model --out dirs/pca
    newsnow hspace jacobian   --model runs/ddpm/model --at-step 3 --out dirs/jac [--mask m.png]
    newsnow hspace supervised --model runs/ddpm/model --classifier ink --out dirs/ink
    newsnow hspace edit       --model runs/ddpm/model --direction dirs/pca/pca1.safetensors --out grid.png
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path


def _strengths(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give strengths as numbers separated by commas, e.g. -2,-1,0,1,2")


def _model_flags(p: argparse.ArgumentParser, eta: float = 1.0) -> None:
    p.add_argument("--model", required=True, help="a local diffusers folder (pipeline, or UNet2DModel + scheduler_config.json)")
    p.add_argument("--steps", type=int, default=10, help="sampling steps (default 10: t = 900, 800, ..., 0)")
    p.add_argument("--eta", type=float, default=eta, help="0: DDIM, 1: DDPM (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same samples")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--no-clip", dest="clip", action="store_const", const=False, default=None,
                   help="never clip the predicted image P_t (default: as the model's scheduler says, clip_sample)")


def _grid_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strengths", type=_strengths, default=None,
                   help="edit strengths for the grid (write --strengths=-2,-1,0,1,2: a leading minus would read as a flag)")
    p.add_argument("--grid-samples", type=int, default=2, help="samples (rows per direction) in the edit grid")
    p.add_argument("--asyrrp", action="store_true", help="inject Δh into P_t only (two U-Net passes a step)")


def _setup(args):
    import torch

    from training.editing.hspace import load_model

    torch.manual_seed(args.seed)
    return load_model(args.model, device=args.device)


def _fresh(model, args, n: int, seed_offset: int = 0):
    """A batch of n new samples from the seed (x_T and z_{T:1} drawn up front)."""
    import torch

    from training.editing.hspace import sample

    g = torch.Generator().manual_seed(args.seed + seed_offset)
    x_T = torch.randn((n, *model.image_shape), generator=g)
    return sample(model, x_T, args.steps, args.eta, generator=g, clip=args.clip)


def _sample_batches(model, args, n: int, batch: int = 32):
    """n samples in batches; returns (h [S, n, ...], x_T [n, ...], x0 [n, ...], timesteps)."""
    import torch

    trajs = [_fresh(model, args, min(batch, n - i), seed_offset=1000 + i) for i in range(0, n, batch)]
    return (torch.cat([t.h for t in trajs], 1), torch.cat([t.x_T for t in trajs]), torch.cat([t.x0 for t in trajs]),
            trajs[0].timesteps)


def _write(model, args, directions, default_strengths, out: Path) -> None:
    from training.editing.grid import label_grid, strength_labels
    from training.editing.hspace_directions import edit_grid, save_png

    out.mkdir(parents=True, exist_ok=True)
    for d in directions:
        d.save(out / f"{d.name}.safetensors")
    strengths = args.strengths or default_strengths
    grid_traj = _fresh(model, args, args.grid_samples, seed_offset=7)
    image = edit_grid(model, grid_traj, directions, strengths, args.asyrrp)
    samples = grid_traj.x0.shape[0]
    rows = [d.name if samples == 1 else f"{d.name} #{b}" for d in directions for b in range(samples)]
    # strengths are in units of the direction's scale (|h| for PCA and Jacobian directions)
    image = label_grid(image, (image.shape[0] // len(rows), image.shape[1] // len(strengths)), rows,
                       strength_labels(strengths, unit=""))
    grid = save_png(image, out / "grid.png")
    print(f"{len(directions)} directions in {out}; grid (rows: direction x sample, columns: strengths {strengths}): {grid}")


def cmd_train_ddpm(args) -> int:
    from training.ddpm import DdpmConfig, train_ddpm

    fields = {f: getattr(args, f) for f in ("resolution", "steps", "batch", "lr", "ema_decay", "save_every", "seed",
                                            "layers_per_block") if getattr(args, f) is not None}
    if args.channels:
        fields["block_out_channels"] = tuple(int(c) for c in args.channels.split(","))
    summary = train_ddpm(Path(args.images), Path(args.out), DdpmConfig(**fields), resume=args.resume, device=args.device)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_sample(args) -> int:
    import numpy as np

    from training.editing.hspace_directions import save_png, to_uint8

    model = _setup(args)
    traj = _fresh(model, args, args.n)
    row = np.concatenate([to_uint8(x) for x in traj.x0], axis=1)
    print(f"{args.n} samples ({args.steps} steps, eta {args.eta}): {save_png(row, Path(args.out))}")
    return 0


def cmd_pca(args) -> int:
    from training.editing.hspace_directions import pca_directions

    model = _setup(args)
    h, _, _, timesteps = _sample_batches(model, args, args.n)
    directions = pca_directions(h, timesteps, args.components, model=model.source)
    _write(model, args, directions, [-3, -1.5, 0, 1.5, 3], Path(args.out))
    return 0


def cmd_jacobian(args) -> int:
    import cv2
    import torch

    from training.editing.hspace_directions import jacobian_directions

    model = _setup(args)
    traj = _fresh(model, args, 1)
    mask = None
    if args.mask:
        m = cv2.imread(args.mask, cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise FileNotFoundError(f"{args.mask}: not a readable image (the mask: white = region of interest)")
        _, H, W = model.image_shape
        mask = torch.from_numpy((cv2.resize(m, (W, H), interpolation=cv2.INTER_AREA) > 127).astype("float32"))
    info: dict = {}
    directions = jacobian_directions(model, traj, args.at_step, args.k, mask=mask, iters=args.iters, b=args.b,
                                     generator=torch.Generator().manual_seed(args.seed), info=info)
    print(f"subspace iteration: {info['iterations']} iterations, converged: {info['converged']} (largest eigen-residual "
          f"{info['residual']:.1e}); singular values " + ", ".join(f"{d.meta['singular_value']:.4g}" for d in directions)
          + "; relative gaps to the next " + (", ".join(f"{g:.3f}" for g in info["gaps"]) or "-")
          + "; error bound (sine) " + (", ".join(f"{a:.1e}" for a in info["angle_bounds"]) or "-")
          + (" (the last direction's needs one more: raise --k)" if len(info["gaps"]) < len(directions) else ""))
    _write(model, args, directions, [-0.5, -0.25, 0, 0.25, 0.5], Path(args.out))
    return 0


def _classifier(spec: str):
    if spec == "ink":
        from training.editing.hspace_directions import ink_score

        return ink_score
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--classifier {spec!r}: give 'ink' or 'package.module:function' (images in [-1,1] -> scores)")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--classifier {spec!r}: cannot import it ({exc})") from exc


def _invert_folder(model, folder: str, steps: int):
    from training.ddpm import load_images
    from training.editing.hspace import invert

    images = load_images(Path(folder), model.image_shape[1])
    inv = invert(model, images.to(model.alphas_cumprod.device), steps)
    return inv.h, inv.x_T, inv.timesteps


def cmd_supervised(args) -> int:
    import torch

    from training.editing.hspace_directions import Direction, annotate, disentangle, split_by_score, supervised_direction

    model = _setup(args)
    if args.positive or args.negative:  # real examples through DDIM inversion (SM F)
        if not (args.positive and args.negative):
            raise ValueError("--positive and --negative: give both folders of example drawings")
        hp, xp, timesteps = _invert_folder(model, args.positive, args.steps)
        hn, xn, _ = _invert_folder(model, args.negative, args.steps)
        n = min(hp.shape[1], hn.shape[1])
        h, x_T = torch.cat([hp[:, :n], hn[:, :n]], 1), torch.cat([xp[:n], xn[:n]])
        pos, neg = torch.arange(n), torch.arange(n, 2 * n)
        label = "inverted examples"
    else:
        h, x_T, x0, timesteps = _sample_batches(model, args, args.n)
        scores = annotate(x0, _classifier(args.classifier))
        pos, neg = split_by_score(scores, args.pairs)
        label = f"{args.n} samples scored by {args.classifier}: positives {scores[pos].mean():.3g}, " \
                f"negatives {scores[neg].mean():.3g}"
    d = supervised_direction(args.name, h, x_T, pos, neg, timesteps, model=model.source, space=args.space)
    if args.disentangle:
        others = [Direction.load(p).vectors for p in args.disentangle]
        d.vectors = disentangle(d.vectors, others)
        d.meta["disentangled_from"] = [str(p) for p in args.disentangle]
    print(f"direction {args.name!r} in {args.space} from {len(pos)} pairs ({label})")
    _write(model, args, [d], [-1, -0.5, 0, 0.5, 1], Path(args.out))
    return 0


def cmd_edit(args) -> int:
    from training.ddpm import load_images
    from training.editing.hspace import invert
    from training.editing.hspace_directions import Direction, edit_grid, save_png

    model = _setup(args)
    directions = [Direction.load(p) for p in args.direction]
    if args.image:  # a real drawing: DDIM inversion, then DDIM sampling with the edit
        images = load_images(Path(args.image), model.image_shape[1])
        traj = invert(model, images, args.steps)
    else:
        traj = _fresh(model, args, args.grid_samples)
    strengths = args.strengths or [-2, -1, 0, 1, 2]
    path = save_png(edit_grid(model, traj, directions, strengths, args.asyrrp), Path(args.out))
    print(f"edit grid (rows: direction x sample, columns: strengths {strengths}): {path}")
    return 0


def train_ddpm_flags(p: argparse.ArgumentParser) -> None:
    # Defaults live in training.ddpm.DdpmConfig (not imported here: it needs torch).
    p.add_argument("images", help="folder of drawings (e.g. from `newsnow train kanjivg`)")
    p.add_argument("--out", required=True, help="run folder: state.pt and model/ (a DDPMPipeline folder)")
    p.add_argument("--resolution", type=int, default=None, help="image size (default 32)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 2000)")
    p.add_argument("--batch", type=int, default=None, help="(default 32)")
    p.add_argument("--lr", type=float, default=None, help="(default 2e-4)")
    p.add_argument("--ema-decay", type=float, default=None, help="(default 0.999)")
    p.add_argument("--save-every", type=int, default=None, help="checkpoint and export every N steps (default 500)")
    p.add_argument("--channels", default=None, help="U-Net level widths, comma-separated (default 32,64,64,128)")
    p.add_argument("--layers-per-block", type=int, default=None, help="(default 1)")
    p.add_argument("--seed", type=int, default=None, help="(default 0)")
    p.add_argument("--resume", action="store_true", help="continue OUT/state.pt")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(handler=cmd_train_ddpm)


def register(subparsers) -> None:
    hs = subparsers.add_parser("hspace", help="research: edit a diffusion model through its U-Net's h-space (Paper V)")
    sub = hs.add_subparsers(dest="hspace_command", metavar="ACTION", required=True)

    train_ddpm_flags(sub.add_parser("train-ddpm", help="train a small DDPM on a folder of drawings"))

    p = sub.add_parser("sample", help="sample drawings from a model (a row PNG)")
    _model_flags(p)
    p.add_argument("--n", type=int, default=8, help="how many drawings (default 8)")
    p.add_argument("--out", required=True, help="PNG file")
    p.set_defaults(handler=cmd_sample)

    p = sub.add_parser("pca", help="PCA directions per timestep over n samples (§4.1)")
    _model_flags(p)
    _grid_flags(p)
    p.add_argument("--n", type=int, default=200, help="samples (the paper: 500)")
    p.add_argument("--components", type=int, default=5, help="principal directions kept per timestep (default 5)")
    p.add_argument("--out", required=True, help="folder for the directions and grid.png")
    p.set_defaults(handler=cmd_pca)

    p = sub.add_parser("jacobian", help="image-specific directions: top singular vectors of dε/dh (§4.2, Alg. 1/2)")
    _model_flags(p)
    _grid_flags(p)
    p.add_argument("--at-step", type=int, default=3, help="index of the sampling step τ to analyse (0 = first, noisiest)")
    p.add_argument("--k", type=int, default=3, help="directions to find")
    p.add_argument("--b", type=int, default=None, help="sequential Alg. 2 with this mini-batch size (less memory)")
    p.add_argument("--iters", type=int, default=100, help="iteration cap")
    p.add_argument("--mask", default=None, help="region-specific (Eq 9): PNG, white = region of interest")
    p.add_argument("--out", required=True, help="folder for the directions and grid.png")
    p.set_defaults(handler=cmd_jacobian)

    p = sub.add_parser("supervised", help="v = mean(q+ - q-) from a classifier's scores or example folders (Eq 10)")
    _model_flags(p)
    _grid_flags(p)
    p.add_argument("--name", default="attribute", help="the attribute's name, for the direction file")
    p.add_argument("--classifier", default="ink",
                   help="'ink' (share of pixels darker than the paper) or package.module:function "
                        "(images in [-1, 1] -> one score each)")
    p.add_argument("--n", type=int, default=200, help="samples to score")
    p.add_argument("--pairs", type=int, default=20, help="top / bottom samples used")
    p.add_argument("--positive", default=None, help="folder of real drawings with the attribute (DDIM inversion)")
    p.add_argument("--negative", default=None, help="folder of real drawings without it")
    p.add_argument("--space", choices=("h", "x_T"), default="h",
                   help="where the direction lives: the U-Net's h-space (default) or the initial noise x_T")
    p.add_argument("--disentangle", nargs="*", default=None, help="direction files to project out (Eq 11)")
    p.add_argument("--out", required=True, help="folder for the direction and grid.png")
    p.set_defaults(handler=cmd_supervised)

    p = sub.add_parser("edit", help="an edit grid (directions x strengths) on new samples or a real drawing")
    _model_flags(p)
    _grid_flags(p)
    p.add_argument("--direction", nargs="+", required=True, help="direction files (.safetensors)")
    p.add_argument("--image", default=None, help="folder of real drawings to edit (DDIM inversion; the edit then samples with η = 0)")
    p.add_argument("--out", required=True, help="PNG file")
    p.set_defaults(handler=cmd_edit)
