"""`newsnow train ...`: the curators' pipeline, one subcommand per step plus `all`.

Only argparse here; each handler imports the step's module (torch) when it runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

PRESET_NAMES = ("tiny", "cpu-demo", "full")


def _gan_preset(name: str) -> str:
    """What a preset sets for the GAN, from training.config.PRESETS (so the help cannot drift)."""
    from training.config import config_from
    c = config_from(name)
    return (f"GAN {c.resolution} px, {c.kimg:g} kimg of batch {c.batch}, channels up to {c.channel_max}, "
            f"ADA target {c.ada_target:g}")


def _encoder_preset(name: str) -> str:
    """What a preset sets for the encoder, from training.config.ENCODER_PRESETS."""
    from training.config import encoder_config_from
    c = encoder_config_from(name)
    return f"encoder width {c.width}, {c.steps} steps of batch {c.batch}, lr {c.lr:g}"


PRESET_USES = {"tiny": "minutes on a 2-core CPU (smoke tests, a first try; not for exhibition)",
               "cpu-demo": "the bundled demo model's settings (hours on one CPU core)",
               "full": "the GPU recipe (mixed precision on CUDA: fp16 in the top blocks)"}


def _preset_flags(parser: argparse.ArgumentParser, parts: str = "gan") -> None:
    """--tiny/--cpu-demo/--full, each saying what it sets for `parts` (gan, encoder or all)."""
    from training.pipeline import PAIR_COUNTS
    group = parser.add_mutually_exclusive_group()
    for name in PRESET_NAMES:
        sets = {"gan": [_gan_preset(name)], "encoder": [_encoder_preset(name)],
                "all": [_gan_preset(name), _encoder_preset(name), f"{PAIR_COUNTS[name]} sketch pairs"]}[parts]
        group.add_argument(f"--{name}", dest="preset", action="store_const", const=name,
                           help=f"{PRESET_USES[name]}: {'; '.join(sets)}")


def _default_help(name: str, default, presets: dict) -> str:
    """"(default X; --tiny Y, --cpu-demo Z)": the presets' values where they differ from the default."""
    shown = [f"--{p} {values[name]}" for p, values in presets.items() if name in values and values[name] != default]
    return f"(default {default}" + (f"; {', '.join(shown)}" if shown else "") + ")"


def _gan_flags(parser: argparse.ArgumentParser) -> None:
    """Every GanConfig field as --name (None: keep the preset's value)."""
    from training.config import PRESETS, GanConfig
    for field in dataclasses.fields(GanConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, dest=field.name, default=None, action=argparse.BooleanOptionalAction,
                                help=_default_help(field.name, field.default, PRESETS))
        elif field.name == "betas":
            parser.add_argument(flag, dest=field.name, type=float, nargs=2, default=None, metavar=("BETA1", "BETA2"),
                                help=f"Adam's betas (default {' '.join(map(str, field.default))})")
        else:
            kind = int if isinstance(field.default, int) else float
            default = {"r1_gamma": "0.0002 R^2 / batch", "d_lr": "--lr"}.get(field.name, field.default)
            parser.add_argument(flag, dest=field.name, type=kind, default=None,
                                help=_default_help(field.name, default, PRESETS))


def _explicit(args, cls) -> dict:
    """The settings of `cls` given on the command line (None: not given)."""
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if v is not None}


def _settings(args, kind: str, cls, build, presets: dict, changeable, saved: dict | None, explicit: dict | None):
    """The preset and the flags; for --resume, the run's `saved` settings with what the
    command line changes (training.config.resumed_settings)."""
    from training.config import resumed_settings, with_defaults
    explicit = _explicit(args, cls) if explicit is None else explicit
    if saved is None:
        return build(args.preset, **explicit)
    what = f"train all ({kind} settings)" if args.step == "all" else kind
    values, _ = resumed_settings(what, with_defaults(cls, saved), explicit, presets.get(args.preset), changeable)
    return build(None, **values)


def _gan_config(args, saved: dict | None = None):
    from training.config import GAN_CHANGEABLE, PRESETS, GanConfig, config_from
    return _settings(args, "gan", GanConfig, config_from, PRESETS, GAN_CHANGEABLE, saved, None)


def _saved_config(out) -> dict | None:
    """RUN/config.json of a step's run, for --resume (None when there is none)."""
    path = Path(out) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: damaged ({exc}); resume with every setting given, or --force") from exc


def _plain_errors(handler):
    """A raw OSError (errno and all) from deep inside a step becomes one line that names
    the path and what to do; a second Ctrl-C ends the command without a traceback."""
    @functools.wraps(handler)
    def run(args):
        from storage import DiskFull
        try:
            return handler(args)
        except DiskFull:
            raise
        except OSError as exc:
            where = exc.filename or getattr(args, "out", None) or "."
            if exc.errno == errno.ENOSPC:
                raise DiskFull(Path(where)) from exc
            if exc.errno is not None and exc.strerror:
                raise OSError(f"{where}: {exc.strerror.lower()}; check the path and its permissions") from exc
            raise
        except KeyboardInterrupt:
            from training.progress import note_in_run_log
            from training.provenance import resume_command
            line = f"stopped at once by a second Ctrl-C; the last checkpoint is kept: resume with: {resume_command()}"
            print(line, file=sys.stderr)
            if getattr(args, "out", None):
                note_in_run_log(Path(args.out), line)
            return 130
    return run


def _quiet_other_ranks() -> None:
    """Under torchrun only rank 0 talks; the others keep warnings and errors."""
    from training.progress import is_main_process
    if not is_main_process():
        logging.getLogger().setLevel(logging.WARNING)


def cmd_kanjivg(args) -> int:
    from training.collections.kanjivg import CREDIT, render_collection
    written = render_collection(Path(args.out), size=args.size, count=args.count, seed=args.seed,
                                max_strokes=args.max_strokes)
    print(f"rendered {len(written)} KanjiVG drawings into {args.out}\nlicence: {CREDIT}")
    return 0


def cmd_ingest(args) -> int:
    from training.ingest import IngestSettings, ingest
    settings = IngestSettings(resolution=args.resolution, fit=args.fit, validation=args.validation,
                              near_rms=args.near_rms, drop_near=args.drop_near, seed=args.seed)
    manifest = ingest(Path(args.src), Path(args.out), settings, licence=args.licence, credit=args.credit,
                      force=args.force)
    print(json.dumps(manifest["counts"], indent=1))
    for bad in manifest["unreadable"]:
        print(f"unreadable, skipped: {bad['file']}: {bad['error']}")
    return 0


def cmd_gan(args) -> int:
    from training.gan import train_gan
    from training.progress import is_main_process, run_log
    _quiet_other_ranks()
    cfg = _gan_config(args, _saved_config(args.out) if args.resume else None)
    with run_log(Path(args.out)):
        summary = train_gan(Path(args.dataset), Path(args.out), cfg, resume=args.resume, force=args.force,
                            init_generator=args.init_generator)
    if not is_main_process():
        return summary.get("exit_code", 0)
    print(json.dumps(summary, indent=1))
    return _stopped(summary, f"at step {summary['steps']} ({summary['kimg']:.2f} kimg)", Path(args.out))


def _encoder_flags(parser: argparse.ArgumentParser) -> None:
    from training.config import ENCODER_PRESETS, EncoderConfig
    for field in dataclasses.fields(EncoderConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "blocks":
            parser.add_argument(flag, dest=field.name, type=int, nargs=4, default=None, metavar="N",
                                help="residual blocks at each of the backbone's 4 levels "
                                     + _default_help(field.name, " ".join(map(str, field.default)),
                                                     {k: {n: " ".join(map(str, v)) if n == "blocks" else v
                                                          for n, v in d.items()} for k, d in ENCODER_PRESETS.items()}))
        elif field.type in ("bool", bool):
            parser.add_argument(flag, dest=field.name, default=None, action=argparse.BooleanOptionalAction,
                                help=_default_help(field.name, field.default, ENCODER_PRESETS))
        else:
            kind = int if isinstance(field.default, int) else float
            parser.add_argument(flag, dest=field.name, type=kind, default=None,
                                help=_default_help(field.name, field.default, ENCODER_PRESETS))


def _encoder_config(args, saved: dict | None = None, explicit: dict | None = None):
    """`explicit`: the flags, where they are not named as the fields (`train all`)."""
    from training.config import ENCODER_CHANGEABLE, ENCODER_PRESETS, EncoderConfig, encoder_config_from
    return _settings(args, "encoder", EncoderConfig, encoder_config_from, ENCODER_PRESETS, ENCODER_CHANGEABLE,
                     saved, explicit)


def _sketch_settings(args):
    from training.sketches import SketchSettings
    return SketchSettings(edge_threshold=args.edge_threshold, min_length=args.min_length,
                          line_width=args.line_width, width_jitter=args.width_jitter)


def cmd_sketches(args) -> int:
    from training.sketches import make_pairs
    manifest = make_pairs(Path(args.run), Path(args.out), args.count, _sketch_settings(args),
                          truncation=args.truncation, seed=args.seed,
                          collection=Path(args.collection) if args.collection else None,
                          collection_count=args.collection_count, partial_share=args.partial_share,
                          mapping_lr_multiplier=args.mapping_lr_multiplier)
    print(f"{manifest['count']} pairs of {manifest['drawings']} drawings in {args.out}, {manifest['partial']} of them "
          f"partial ({manifest['dropped_blank']} blank samples dropped); "
          f"look at {Path(args.out) / 'contact_sheet.png'}")
    return 0


def cmd_encoder(args) -> int:
    from training.encoder import train_encoder
    from training.progress import run_log
    cfg = _encoder_config(args, _saved_config(args.out) if args.resume else None)
    with run_log(Path(args.out)):
        summary = train_encoder(Path(args.pairs), Path(args.gan or args.generator), Path(args.out), cfg,
                                resume=args.resume, lpips=Path(args.lpips) if args.lpips else None, force=args.force,
                                mapping_lr_multiplier=args.mapping_lr_multiplier, init_encoder=args.init_encoder)
    print(json.dumps(summary, indent=1))
    return _stopped(summary, f"at step {summary['steps']}", Path(args.out))


def _stopped(summary: dict, where: str, out: Path) -> int:
    """Exit code of a training step: 0, or 130/143 when Ctrl-C/SIGTERM stopped it (saved)."""
    if not summary.get("stopped_by"):
        return 0
    return _resume_hint(where, summary["exit_code"], out)


def _resume_hint(where: str, exit_code: int, out: Path) -> int:
    """Say how to continue, on the terminal and in OUT/train.log (where a curator looks later)."""
    from training.progress import note_in_run_log
    from training.provenance import resume_command
    line = f"stopped {where}; the state is saved; resume with: {resume_command()}"
    print(line)
    note_in_run_log(out, line)
    return exit_code


# `train all` settings besides the networks': name -> the run's default.
ALL_DEFAULTS = {"fit": "crop", "licence": "unknown", "credit": "", "count": None, "collection_pairs": 0,
                "fp16": False, "inception": None, "lpips": None}
ALL_RECORDED = {"count": "pairs"}  # flags recorded in run.json under another name


def cmd_all(args) -> int:
    from training.pipeline import PAIR_COUNTS, RunStopped, read_run, train_all
    from training.provenance import command_line
    given = {name: getattr(args, name) for name in ALL_DEFAULTS}
    if args.resume:
        # Unset flags take the run's values; set ones are checked against them in train_all.
        saved = read_run(Path(args.out))["settings"]
        args.preset = args.preset or saved.get("preset")
        gan_cfg = _gan_config(args, saved["gan"])
        enc_cfg = _encoder_config(args, saved["encoder"], _encoder_flags_all(args))
        values = {name: saved.get(ALL_RECORDED.get(name, name)) if value is None else value
                  for name, value in given.items()}
    else:
        gan_cfg = _gan_config(args)
        enc_cfg = _encoder_config(args, explicit=_encoder_flags_all(args))
        values = {name: ALL_DEFAULTS[name] if value is None else value for name, value in given.items()}
    try:
        bundle = train_all(Path(args.src), Path(args.out), gan_cfg, enc_cfg, preset=args.preset,
                           pair_count=values["count"] or PAIR_COUNTS[args.preset], fit=values["fit"],
                           licence=values["licence"], credit=values["credit"], fp16=values["fp16"],
                           inception=Path(values["inception"]) if values["inception"] else None,
                           lpips=Path(values["lpips"]) if values["lpips"] else None,
                           collection_pairs=values["collection_pairs"], resume=args.resume, force=args.force,
                           command=command_line())
    except RunStopped as stop:
        return _resume_hint(stop.where, stop.exit_code, Path(args.out))
    print(f"bundle: {bundle} (see {bundle / 'MODEL_CARD.md'})")
    return 0


def cmd_evaluate(args) -> int:
    from training.report import ReportSettings, evaluate
    settings = ReportSettings(samples=args.samples, held_out=args.held_out, inversion_steps=args.inversion_steps,
                              seed=args.seed)
    report = evaluate(Path(args.model), Path(args.out), dataset=Path(args.dataset) if args.dataset else None,
                      settings=settings, inception=Path(args.inception) if args.inception else None,
                      progress=print)
    print("\n".join(report["verdicts"]))
    if (Path(args.model) / "bundle.json").is_file():  # the table, doctor and the status read it from there
        from inference.bundle import Bundle, record_verdict
        from training.pipeline import bundle_verdict
        preset = Bundle.load(args.model, check_graphs=False).provenance.get("preset")
        record_verdict(args.model, bundle_verdict(report, preset, Path(args.out) / "report.json"))
        print(f"verdict recorded in {Path(args.model) / 'bundle.json'}")
    print(f"{'fit' if report['fit_for_table'] else 'NOT fit'} for the table; "
          f"{Path(args.out) / 'report.json'}, look at {Path(args.out) / 'contact_sheet.png'}")
    return 0


def cmd_idle_codes(args) -> int:
    from training.idle_codes import add_to_bundle, collection_codes
    from training.report import load_networks
    generator, encoder, _, _ = load_networks(Path(args.model))
    codes, error = collection_codes(generator, encoder, Path(args.dataset), args.count, args.steps, seed=args.seed)
    path = add_to_bundle(Path(args.bundle), codes, {
        "source": f"W+ optimisation ({args.steps} steps from the encoder's codes) of {len(codes)} drawings of "
                  f"{args.dataset}", "mse": round(error, 4)})
    print(f"{len(codes)} idle codes in {path} (their drawings' MSE to the collection's {error:.3f}); the idle "
          f"wander of this bundle now moves between the collection's drawings")
    return 0


def cmd_pair_codes(args) -> int:
    from training.pair_codes import find_pair_codes
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    summary = find_pair_codes(Path(args.pairs), Path(args.model), args.count, args.steps, args.lr, seed=args.seed,
                              progress=print)
    if not summary["found"]:
        print(f"{args.pairs}: every collection drawing of the training split already has a code")
        return 0
    print(f"codes for {summary['found']} more drawings in {Path(args.pairs) / 'codes.npy'} (MSE "
          f"{summary['mse']:.3f}, {summary['seconds'] / 60:.0f} min); {summary['left']} still without one. "
          f"`newsnow train encoder {args.pairs} ...` now teaches their pairs these codes")
    return 0


def _encoder_flags_all(args) -> dict:
    """`train all`'s encoder flags (named --encoder-*, beside the GAN's own)."""
    values = dict(steps=args.encoder_steps, lr=args.encoder_lr, batch=args.encoder_batch, threads=args.threads)
    return {k: v for k, v in values.items() if v is not None}


def _sketch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truncation", type=float, default=1.0, help="psi for the sampled drawings")
    parser.add_argument("--edge-threshold", type=int, default=40,
                        help="pencil-sketch edge strength (0-255) kept as a line (default 40)")
    parser.add_argument("--min-length", type=int, default=6, help="shorter skeleton bits are dropped (px)")
    parser.add_argument("--line-width", type=int, default=0, help="pen width in sketch px (0: R / 48)")
    parser.add_argument("--width-jitter", type=int, default=1, help="pen width varies by up to this many px (default 1)")


def _lr_multiplier_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapping-lr-multiplier", type=float, default=None,
                        help="a generator file's mapping lr multiplier where the file does not record it "
                             "(default: its args.lr_mlp, else 0.01)")


def _run_flags(parser: argparse.ArgumentParser, resume_help: str = "continue RUN/state.pt exactly") -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help=resume_help)
    group.add_argument("--force", action="store_true", help="start again in an --out that holds a run")


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="curators: retrain the models on a collection",
                                  description="Retrain the table's models on a collection of scanned drawings: "
                                              "`train all SCANS --out RUN` does every step (docs/training.md).")
    steps = train.add_subparsers(dest="step", metavar="STEP", required=True)

    p = steps.add_parser("kanjivg", help="render the KanjiVG drawings (the demo collection) as PNG",
                         description="Render the KanjiVG characters (CC BY-SA 3.0, from the `kanjivg` package) as "
                                     "brush-ink PNG drawings: the demo collection.")
    p.add_argument("--out", required=True, help="folder for the PNG drawings")
    p.add_argument("--size", type=int, default=256, help="drawing size in px (default 256)")
    p.add_argument("--count", type=int, default=None, help="how many (default: all)")
    p.add_argument("--max-strokes", type=int, default=None, help="only characters with at most this many strokes")
    p.add_argument("--seed", type=int, default=0, help="seed of the brush jitter and of which characters a --count takes")
    p.set_defaults(handler=cmd_kanjivg)

    p = steps.add_parser("ingest", help="a folder of scans -> a square grayscale dataset with a manifest",
                         description="Read every image under a folder of scans into a square grayscale dataset "
                                     "(train and validation), with a manifest of each file, the unreadable ones "
                                     "and the duplicates.")
    p.add_argument("src", help="folder of scanned drawings (searched recursively)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--resolution", type=int, default=256, help="square size in px, a power of two (default 256)")
    p.add_argument("--fit", choices=("crop", "pad"), default="crop",
                   help="crop: the centred square of each scan; pad: the whole scan on paper-coloured margins "
                        "(default crop)")
    p.add_argument("--validation", type=float, default=0.05, help="share held out (default 0.05)")
    p.add_argument("--near-rms", type=float, default=0.03,
                   help="thumbnail RMS difference (0..1) that makes a near duplicate")
    p.add_argument("--drop-near", action="store_true", help="keep one of each near-duplicate group")
    p.add_argument("--licence", default="unknown", help="the collection's licence (goes to the model card)")
    p.add_argument("--credit", default="", help="who to credit (goes to the model card)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--force", action="store_true", help="replace a dataset already in --out")
    p.set_defaults(handler=_plain_errors(cmd_ingest))

    p = steps.add_parser("gan", help="train StyleGAN2 (ADA, R1, EMA) on a dataset",
                         description="Train the StyleGAN2 generator (with ADA, R1, path length and EMA) on an "
                                     "ingested dataset. Every setting below is the preset's unless given.")
    p.add_argument("dataset", help="the folder `newsnow train ingest` wrote")
    p.add_argument("--out", required=True, help="run folder (checkpoints, sample grids, train.log)")
    p.add_argument("--init-generator", type=Path, default=None, metavar="MODEL",
                   help="start G from this bundle's, GAN run's or checkpoint's generator (same widths), D new")
    _run_flags(p)
    _preset_flags(p, "gan")
    _gan_flags(p)
    p.set_defaults(handler=_plain_errors(cmd_gan))

    p = steps.add_parser("sketches", help="sample the generator and make (sketch, drawing) pairs",
                         description="Sample the trained generator and turn each drawing into the sketch a "
                                     "visitor might draw (pencil-sketch filter, skeleton, the runtime binarizer): "
                                     "the encoder's training pairs.")
    p.add_argument("run", help="the GAN run folder, or a generator file trained elsewhere (rosinality .pt, "
                               "NVlabs .pkl, pSp/e4e .pt)")
    _lr_multiplier_flag(p)
    p.add_argument("--out", required=True, help="folder for the pairs and contact_sheet.png")
    p.add_argument("--count", type=int, default=10000, help="generated drawings (each gives whole and partial pairs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled drawings")
    p.add_argument("--collection", default=None, help="a dataset whose own drawings are added as pairs")
    p.add_argument("--collection-count", type=int, default=0, help="how many of them (default none)")
    p.add_argument("--partial-share", type=float, default=0.75,
                   help="share of pairs whose sketch is only part of the drawing (first strokes), the "
                        "target still the whole drawing (default 0.75; 0: whole sketches only)")
    _sketch_flags(p)
    p.set_defaults(handler=_plain_errors(cmd_sketches))

    p = steps.add_parser("encoder", help="train the pSp encoder on sketch pairs (generator frozen)",
                         description="Train the pSp encoder (sketch -> W+) on the pairs, the generator "
                                     "frozen. Every setting below is the preset's unless given.")
    p.add_argument("pairs", help="the folder `newsnow train sketches` wrote")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--gan", help="the GAN run folder")
    source.add_argument("--generator", help="a generator file trained elsewhere (rosinality .pt, NVlabs .pkl, "
                                            "pSp/e4e .pt): no GAN run needed; without --lpips the encoder "
                                            "trains without a perceptual term (no discriminator)")
    _lr_multiplier_flag(p)
    p.add_argument("--out", required=True, help="run folder (model.pt, validation sheets, train.log)")
    _run_flags(p)
    p.add_argument("--lpips", default=None, help="a TorchScript LPIPS file (default: D's features)")
    p.add_argument("--init-encoder", type=Path, default=None, metavar="MODEL",
                   help="start from this encoder run's (or bundle's) weights, same widths")
    _preset_flags(p, "encoder")
    _encoder_flags(p)
    p.set_defaults(handler=_plain_errors(cmd_encoder))

    p = steps.add_parser("evaluate", help="the model report: variety, encoder, sketch-following (is it fit "
                                          "for the table?)",
                         description="Measure a model against its collection and say whether it is fit for the "
                                     "table; on a bundle, record the verdict in its bundle.json (the table, "
                                     "doctor and the status show it).")
    p.add_argument("model", help="a bundle, a checkpoint, or a run folder (train all / gan / encoder)")
    p.add_argument("--out", required=True, help="folder for report.json and contact_sheet.png")
    p.add_argument("--dataset", default=None, help="the ingested collection (default: the run's own)")
    from training.report import ReportSettings  # plain data: no torch
    p.add_argument("--samples", type=int, default=ReportSettings.samples, help="generated drawings for variety "
                   "(default %(default)s, as `train all`; change it and the figures are not comparable)")
    p.add_argument("--held-out", type=int, default=ReportSettings.held_out, help="held-out drawings for the encoder")
    p.add_argument("--inversion-steps", type=int, default=ReportSettings.inversion_steps,
                   help="steps of the W+ optimisation baseline")
    p.add_argument("--inception", default=None, help="TorchScript Inception file for FID/KID")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and the test strokes")
    p.set_defaults(handler=_plain_errors(cmd_evaluate))

    p = steps.add_parser("idle-codes", help="give a bundle's idle wander the W+ codes of collection drawings "
                                            "(for a generator less varied than its collection)")
    p.add_argument("model", help="a bundle with weights, a checkpoint or a run folder (its generator and encoder)")
    p.add_argument("--dataset", required=True, help="the ingested collection")
    p.add_argument("--bundle", required=True, help="the bundle folder to add the codes to")
    p.add_argument("--count", type=int, default=256, help="how many drawings (default %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="W+ optimisation steps (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of which drawings are taken")
    p.set_defaults(handler=_plain_errors(cmd_idle_codes))

    p = steps.add_parser("pair-codes", help="find by W+ optimisation the codes of the collection's drawings in a "
                                           "pairs folder (the encoder's latent term then teaches them)",
                         description="W+ optimisation of collection drawings of a pairs folder, started from the "
                                     "encoder's code of each whole sketch (else w_avg), stored in its codes.npy "
                                     "for every pair of that drawing, whole or first strokes. Written after each "
                                     "batch: run it again to continue or to add more.")
    p.add_argument("pairs", help="the folder `newsnow train sketches` wrote")
    p.add_argument("--model", required=True, help="the generator the encoder trains against: a GAN run, or an "
                                                  "encoder run / checkpoint / bundle (its encoder starts the search)")
    p.add_argument("--count", type=int, default=1024, help="how many more drawings (default %(default)s; about "
                                                           "0.6 s each at 64 px on one thread)")
    p.add_argument("--steps", type=int, default=60, help="W+ optimisation steps (default %(default)s)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam's step size (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of which drawings are taken")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.set_defaults(handler=_plain_errors(cmd_pair_codes))

    p = steps.add_parser("all", help="ingest -> gan -> sketches -> encoder -> export --check -> report -> model card",
                         description="Every step from a folder of scans to a checked bundle with its model report "
                                     "and model card. A preset (--tiny, --cpu-demo, --full) sets the networks, the "
                                     "lengths and the pair count, as its help says; the GAN flags below override "
                                     "it one by one.")
    p.add_argument("src", help="folder of scans")
    p.add_argument("--out", required=True, help="run folder: dataset, gan, pairs, encoder, bundle, report, run.json")
    _run_flags(p, "skip the finished stages and continue the one in progress exactly")
    # Defaults None: on --resume an unset flag takes the run's value (ALL_DEFAULTS otherwise).
    p.add_argument("--fit", choices=("crop", "pad"), default=None, help="(default crop)")
    p.add_argument("--licence", default=None, help="(default unknown)")
    p.add_argument("--credit", default=None, help="who to credit, for the model card (default none)")
    p.add_argument("--count", type=int, default=None, help="generated sketch pairs (preset's default)")
    p.add_argument("--collection-pairs", type=int, default=None,
                   help="also pair this many of the collection's own drawings with their sketches")
    p.add_argument("--encoder-steps", type=int, default=None, help="encoder training steps (preset's default)")
    p.add_argument("--encoder-lr", type=float, default=None, help="encoder learning rate (preset's default)")
    p.add_argument("--encoder-batch", type=int, default=None, help="encoder batch size (preset's default)")
    p.add_argument("--fp16", action="store_true", default=None, help="export an fp16 bundle")
    p.add_argument("--inception", default=None, help="TorchScript Inception file for FID/KID")
    p.add_argument("--lpips", default=None, help="TorchScript LPIPS file (default: D's features)")
    _preset_flags(p, "all")
    _gan_flags(p)
    p.set_defaults(handler=_plain_errors(cmd_all))
    # The DDPM serves only the h-space editing research (Paper V): `newsnow hspace train-ddpm`.
