"""`newsnow edit tensor fit|recover|directions`: Paper II's expression model at the command line.

The latents file is a `.npy` of W+ codes laid out as
[people, expressions, intensities, views, num_ws, w_dim],
e.g. inverted photographs of P people showing E expressions at I intensities from R
views. `fit` builds `expression.ExpressionModel` (truncated intensity mode, Eq 9-12) and
saves it; `recover` gives new codes' canonical parameters q'_2..q'_5 (Eq 4-6);
`directions` writes the global expression (Eq 13-14) and rotation (Eq 16-18) directions as
a directions file the editing grid reads, with a strength of 1 meaning q4 = 1 (expression)
or beta = 1 (rotation), and a labelled grid on a generator.
"""
from __future__ import annotations

from pathlib import Path


def _names(text: str | None, count: int, what: str, flag: str) -> list[str]:
    if text is None:
        return [f"{what} {i}" for i in range(count)]
    names = [n.strip() for n in text.split(",")]
    if len(names) != count:
        raise ValueError(f"{flag}: {len(names)} names for {count} {what}s in the model; give one per {what}")
    return names


def _load_model(path: Path):
    from training.editing.expression import ExpressionModel

    if not Path(path).is_file():
        raise ValueError(f"{path}: no such expression model; make one with `newsnow edit tensor fit`")
    return ExpressionModel.load(path)


def register(sub) -> None:
    from training.editing.cli_args import add_generator_argument, parse_strengths

    tensor = sub.add_parser("tensor", help="Paper II: multilinear expression model of W+ codes (fit, recover, "
                                           "expression and rotation directions)")
    actions = tensor.add_subparsers(dest="tensor_command", metavar="ACTION", required=True)

    p = actions.add_parser("fit", help="HOSVD model from codes [people, expressions, intensities, views, ...]")
    p.add_argument("--latents", type=Path, required=True, help=".npy [P, E, I, R, num_ws, w_dim] of W+ codes")
    p.add_argument("--out", type=Path, required=True, help="model .npz to write")
    p.add_argument("--full-intensity", action="store_true",
                   help="keep the whole intensity mode (no global directions then; Paper II truncates it to 1)")
    p.add_argument("--ranks", default=None, help="truncate the people, expression and view modes: 'P,E,R' "
                                                 "(empty keeps a mode whole, e.g. '20,,')")
    p.set_defaults(handler=cmd_fit)

    p = actions.add_parser("recover", help="canonical parameters q'2..q'5 of new codes (Adam, Eq 6)")
    p.add_argument("--model", type=Path, required=True, help="model .npz from `edit tensor fit`")
    p.add_argument("--latents", type=Path, required=True, help=".npy [B, num_ws, w_dim] codes")
    p.add_argument("--out", type=Path, required=True, help=".npz to write (q2, q3, q4, q5, expression, view)")
    p.add_argument("--steps", type=int, default=200, help="Adam steps (default 200)")
    p.add_argument("--tikhonov", type=float, default=1e-3, help="weight of the Tikhonov (L2) term on q (default 0.001)")
    p.add_argument("--sum-to-one", type=float, default=1.0,
                   help="weight of the term that keeps each q summing to one (default 1)")
    p.set_defaults(handler=cmd_recover)

    p = actions.add_parser("directions", help="global expression and rotation directions (+ a labelled grid)")
    p.add_argument("--model", type=Path, required=True, help="model .npz from `edit tensor fit`")
    p.add_argument("--out", type=Path, required=True, help="directions .npz to write (W+ directions)")
    p.add_argument("--expressions", default=None, help="comma-separated expression names, in the file's order")
    p.add_argument("--views", default=None, help="comma-separated view names, in the file's order")
    p.add_argument("--rotations", default=None,
                   help="view pairs 'a:b,...' to turn from a to b (default: view 0 to each other view)")
    add_generator_argument(p)
    p.add_argument("--grid", type=Path, default=None, help="also write the editing grid (.png) on --generator")
    p.add_argument("--strengths", type=parse_strengths, default=[-1.0, -0.5, 0.0, 0.5, 1.0],
                   help="grid strengths: q4 for expressions, beta for rotations (write --strengths=-1,0,1)")
    p.add_argument("--seed", type=int, default=0, help="grid: which sample (z seed)")
    p.set_defaults(handler=cmd_directions)


def cmd_fit(args) -> int:
    import numpy as np

    from training.editing.cli_args import load_array
    from training.editing.expression import ExpressionModel
    from training.editing.tensor import multi_mode_dot

    codes = np.asarray(load_array(args.latents, "--latents"), dtype=np.float64)
    if codes.ndim != 6:
        raise ValueError(f"{args.latents}: codes must be [people, expressions, intensities, views, num_ws, w_dim], "
                         f"got shape {codes.shape} (repeat W codes over the layers for W+)")
    ranks = (None, None, None)
    if args.ranks is not None:
        parts = args.ranks.split(",")
        if len(parts) != 3 or not all(p.strip().isdigit() or not p.strip() for p in parts):
            raise ValueError(f"--ranks {args.ranks!r}: give three comma-separated ranks 'P,E,R' (empty = whole)")
        ranks = tuple(int(p) if p.strip() else None for p in parts)
    model = ExpressionModel.fit(codes, intensity_rank=None if args.full_intensity else 1, ranks=ranks)
    model.save(args.out)
    # How much of the (centred) codes the truncated model keeps: C x2 U2 .. x5 U5 vs the data.
    fitted = np.moveaxis(multi_mode_dot(model.core, model.factors, [1, 2, 3, 4]), 0, -1) + model.mean
    flat = codes.reshape(fitted.shape)
    error = np.linalg.norm(fitted - flat) / max(np.linalg.norm(flat - model.mean), 1e-30)
    print(f"{args.out}: {' x '.join(map(str, model.shape))} (people x expressions x intensities x views) of "
          f"latent {model.latent_shape}; core {model.core.shape[1:]}; relative error on the codes {error:.4f}")
    return 0


def cmd_recover(args) -> int:
    import numpy as np

    from training.editing.cli_args import load_array
    from training.editing.expression import RecoverySettings

    model = _load_model(args.model)
    codes = load_array(args.latents, "--latents")
    q = model.recover(codes, RecoverySettings(tikhonov=args.tikhonov, sum_to_one=args.sum_to_one, steps=args.steps))
    w_hat = model.reconstruct(q)
    error = float(np.linalg.norm(w_hat.reshape(len(w_hat), -1) - np.asarray(codes).reshape(len(w_hat), -1))
                  / np.linalg.norm(np.asarray(codes).reshape(len(w_hat), -1) - model.mean))
    expression, view = np.argmax(q[1], axis=1), np.argmax(q[3], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, q2=q[0], q3=q[1], q4=q[2], q5=q[3], expression=expression, view=view,
             relative_error=np.array(error), model=np.array(str(args.model)))
    print(f"{args.out}: parameters of {len(w_hat)} codes (relative reconstruction error {error:.4f}); "
          f"most likely expression per code {expression.tolist()[:10]}{' ...' if len(w_hat) > 10 else ''}")
    return 0


def _pairs(text: str | None, views: int) -> list[tuple[int, int]]:
    if text is None:
        return [(0, b) for b in range(1, views)]
    try:
        pairs = [tuple(int(v) for v in part.split(":")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"--rotations {text!r}: give view pairs as 'a:b,c:d'") from exc
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"--rotations {text!r}: give view pairs as 'a:b,c:d'")
    return pairs


def cmd_directions(args) -> int:
    import numpy as np

    from training.editing.directions import Directions

    model = _load_model(args.model)
    people, expressions, intensities, views = model.shape
    expression_names = _names(args.expressions, expressions, "expression", "--expressions")
    view_names = _names(args.views, views, "view", "--views")
    vectors, names = [], []
    for e in range(expressions):
        vectors.append(model.expression_direction(e).ravel())
        names.append(expression_names[e])
    for a, b in _pairs(args.rotations, views):
        vectors.append(model.rotation_direction(a, b).ravel())
        names.append(f"{view_names[a]} > {view_names[b]}")
    vectors = np.stack(vectors)
    lengths = np.linalg.norm(vectors, axis=1)
    # std = each direction's length, unit '': strength s adds s * n, the paper's q4 (or beta) = s
    result = Directions(vectors / lengths[:, None], "tensor", np.arange(model.latent_shape[0]), std=lengths,
                        names=names, unit="")
    path = result.save(args.out)
    print(f"{path}: {expressions} expression and {len(names) - expressions} rotation directions "
          f"({', '.join(names)}), lengths {np.array2string(lengths, precision=3)}")
    if args.grid is not None:
        from training.editing.grid import write_direction_grid
        from training.editing.generator import open_generator

        backend = open_generator(args.generator, args.mapping_lr_multiplier)
        grid, rows = write_direction_grid(backend, result, args.strengths, args.grid,
                                          seed=args.seed)
        print(f"{grid}: {rows} directions x {len(args.strengths)} strengths")
    return 0
