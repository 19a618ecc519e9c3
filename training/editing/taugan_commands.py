"""`newsnow edit taugan`: Paper I's rotation edit at the command line.

Fits `taugan.TauGAN` (standardised, vectorised or style-separated; it takes seconds, so
it is fitted on each run rather than saved) on training codes laid out as
[people, expressions, views, num_ws, w_dim], estimates new codes' parameters by ALS with
ridge and lasso (Eq 7-11), turns them by q4 + gamma (u_b - u_a) (Eq 13-14) and writes the
rotated codes, with a grid on a generator: rows the codes, columns the gammas. gamma 0 is
the model's reconstruction of a code, not the code itself (the edit is synthesised).
"""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from training.editing.cli_args import add_generator_argument, parse_strengths

    p = sub.add_parser("taugan", help="Paper I: rotate codes with the standardised tensor model (tau-GAN)")
    p.add_argument("--latents", type=Path, required=True,
                   help="training codes .npy [people, expressions, views, num_ws, w_dim]")
    p.add_argument("--codes", type=Path, required=True, help="codes to rotate .npy [B, num_ws, w_dim]")
    p.add_argument("--gammas", type=parse_strengths, default=[0.0, 0.5, 1.0],
                   help="rotation strengths, comma-separated (1 turns view a into view b; write --gammas=-1,0,1)")
    p.add_argument("--views", default="0:1", help="'a:b': turn from view a towards view b")
    p.add_argument("--style-separated", action="store_true", help="one model per W+ layer (Sec III-C)")
    p.add_argument("--ridge", type=float, default=1.0, help="weight of the ridge (L2) penalty (default 1)")
    p.add_argument("--lasso", type=float, default=1.0, help="weight of the lasso (L1) penalty (default 1)")
    p.add_argument("--out", type=Path, required=True, help=".npz to write (rotated codes [B, gammas, ...])")
    add_generator_argument(p)
    p.add_argument("--grid", type=Path, default=None, help="also write the grid (.png) on --generator")
    p.set_defaults(handler=cmd_taugan)


def cmd_taugan(args) -> int:
    import numpy as np

    from training.editing.cli_args import load_array
    from training.editing.taugan import TauGAN

    train = np.asarray(load_array(args.latents, "--latents"), dtype=np.float64)
    codes = np.asarray(load_array(args.codes, "--codes"), dtype=np.float64)
    if train.ndim != 5:
        raise ValueError(f"{args.latents}: codes must be [people, expressions, views, num_ws, w_dim], got {train.shape}")
    if codes.ndim != 3 or codes.shape[1:] != train.shape[3:]:
        raise ValueError(f"{args.codes}: codes must be [B, {train.shape[3]}, {train.shape[4]}], got {codes.shape}")
    try:
        a, b = (int(v) for v in args.views.split(":"))
    except ValueError as exc:
        raise ValueError(f"--views {args.views!r}: write 'a:b', two view indices") from exc
    if not (0 <= a < train.shape[2] and 0 <= b < train.shape[2]) or a == b:
        raise ValueError(f"--views {args.views!r}: two different views in 0..{train.shape[2] - 1}")
    model = TauGAN.fit(train, style_separated=args.style_separated, ridge=args.ridge, lasso=args.lasso)
    params = [model.estimate(code) for code in codes]
    rotated = np.stack([[model.rotate(p, g, a, b) for g in args.gammas] for p in params])
    fitted = np.stack([model.synthesize(p) for p in params])
    error = float(np.linalg.norm(fitted - codes) / np.linalg.norm(codes - model.mean))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, codes=rotated.astype(np.float32), gammas=np.array(args.gammas), views=np.array([a, b]),
             relative_error=np.array(error))
    print(f"{args.out}: {len(codes)} codes x {len(args.gammas)} gammas, view {a} -> {b}; the model reconstructs "
          f"the codes with relative error {error:.4f}")
    if args.grid is not None:
        from training.editing.generator import open_generator
        from training.editing.grid import generate_batched, label_grid, tile_images, write_grid

        backend = open_generator(args.generator, args.mapping_lr_multiplier)
        images = generate_batched(backend, rotated.reshape(-1, *codes.shape[1:]))
        grid = label_grid(tile_images(images, len(codes), len(args.gammas)), backend.bundle.resolution,
                          [f"code {i}" for i in range(len(codes))], [f"gamma {g:g}" for g in args.gammas])
        print(f"{write_grid(args.grid, grid)}: {len(codes)} codes x {len(args.gammas)} gammas")
    return 0
