"""`newsnow train all SRC --out DIR`: ingest -> gan -> sketches -> encoder -> export
(checked) -> report -> model card, each step in its own sub-folder of DIR:

    DIR/dataset  DIR/gan  DIR/pairs  DIR/encoder  DIR/bundle (with MODEL_CARD.md)  DIR/report

DIR/run.json records the run's settings, the command as run and each finished stage's
result, so `--resume` skips the finished stages and continues the one in progress (the
GAN and the encoder from their last checkpoint, exactly; the others from their start).
DIR/train.log keeps what the terminal showed, less the live bars.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from storage import atomic_write, atomic_write_json, atomic_write_png, output_folder
from training.config import EncoderConfig, GanConfig

log = logging.getLogger(__name__)

# Sketch pairs per preset (the thesis sampled 10K).
PAIR_COUNTS = {"tiny": 48, "cpu-demo": 4000, "full": 10000, None: 10000}
# The model report's size per preset (tiny: seconds, for smoke tests).
RUN_RECORD = "run.json"
RUN_FORMAT = "newsnow-run"
STAGES = ("ingest", "gan", "sketches", "encoder", "export", "report")
# What `train all` writes into DIR (removed by --force; nothing else in DIR is touched).
RUN_CONTENTS = ("dataset", "gan", "pairs", "encoder", "bundle", "report", RUN_RECORD, "summary.json",
                "held_out_contact_sheet.png")


class RunStopped(Exception):
    """Ctrl-C or SIGTERM stopped `train all` after saving; says where and the exit code."""

    def __init__(self, where: str, signal: str, exit_code: int):
        super().__init__(f"stopped by {signal} {where}")
        self.where, self.signal, self.exit_code = where, signal, exit_code


def read_run(out: Path) -> dict:
    """DIR/run.json of a `train all` run, for --resume."""
    path = Path(out) / RUN_RECORD
    if not path.is_file():
        held = [name for name in RUN_CONTENTS if (Path(out) / name).exists()]
        raise FileNotFoundError(f"{path}: nothing to resume" + (
            " (the folder has a run without run.json, made by an older version); start it again with --force"
            if held else "; run without --resume"))
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: damaged ({exc}); start the run again with --force") from exc
    if record.get("format") != RUN_FORMAT:
        raise ValueError(f"{path}: not a New Snow run record")
    return record


def held_out_sheet(bundle: Path, pairs: Path, dataset: Path, out_png: Path) -> Path:
    """Contact sheet (sketch | drawing by the exported bundle, through ONNX Runtime) of
    sketches the encoder never saw: validation pairs, sketches of held-out real drawings
    from the collection, and visitor-like strokes."""
    from inference.runtime import open_backend
    from inference.tensors import from_uint8, to_uint8
    from training.ingest import load_images
    from training.report import strokes_like_a_visitor
    from training.sketches import SketchSettings, labelled, load_pairs, make_sketch, default_binarize, contact_sheet

    backend = open_backend(bundle, kind="onnxruntime")
    r = backend.bundle.resolution
    val_sketches, _, _ = load_pairs(pairs, "validation")
    real = load_images(dataset, "validation")
    real = real[np.random.default_rng(0).choice(len(real), min(8, len(real)), replace=False)]  # not the first names
    params = default_binarize(r)
    groups = [("validation pairs: sketch | drawing", list(val_sketches[:8])),
              ("held-out collection drawings, never trained on: their sketch | drawing",
               [make_sketch(d, SketchSettings(), params) for d in real]),
              ("fixed test strokes (visitor-like): sketch | drawing", strokes_like_a_visitor(r, 8))]
    parts = []
    for title, sketches in groups:
        if sketches:
            drawings = to_uint8(backend.sketch_to_drawing(from_uint8(np.stack(sketches)[:, None]))[:, 0])
            parts.append(labelled(contact_sheet(sketches, list(drawings), columns=4, scale=2), title))
    width = max(part.shape[1] for part in parts)
    sheet = np.vstack([np.pad(part, ((0, 0), (0, width - part.shape[1])), constant_values=160) for part in parts])
    return atomic_write_png(out_png, sheet)


def exhibition_warnings(preset: str | None, report: dict | None) -> list[str]:
    """Plain reasons why a model must not go on a table in front of visitors (none: it may)."""
    reasons = []
    if preset == "tiny":
        reasons.append("a --tiny smoke test: it checks that the chain works, its drawings are not meant to be seen")
    if report is None:
        reasons.append("the model report was not made")
    else:
        if report["generator"]["variety"] < 0.5:
            reasons.append(f"its samples are all (nearly) one template: variety "
                           f"{report['generator']['variety']:.2f} of the collection's")
        if not report["fit_for_table"]:
            reasons.append("the model report finds it unfit for the table (see the verdict)")
    return reasons


def bundle_verdict(report: dict, preset: str | None, report_path: Path) -> dict:
    """The report's verdict as bundle.json carries it (`inference.bundle.VERDICT_KEY`), so the
    table, `doctor` and the status can say what the model card says."""
    import datetime as dt

    # the card's "(see the verdict)" points below it; outside the card the warning names the card
    reasons = [r.replace(" (see the verdict)", "") for r in exhibition_warnings(preset, report)]
    return {"fit_for_table": bool(report["fit_for_table"]), "reasons": reasons,
            "verdicts": list(report["verdicts"]), "preset": preset, "report": str(report_path),
            "evaluated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _marked(line: str) -> str:
    """A verdict line with its mark in bold, so failures stand out among the passes."""
    mark, sep, text = line.partition(": ")
    return f"**{mark}**: {text}" if sep and mark in ("pass", "MISS") else line


def write_model_card(bundle: Path, *, gan: dict, encoder: dict, pairs: dict, dataset: dict,
                     metrics: dict, parity: dict | None, timings: dict, commands: list[str],
                     report: dict | None = None, preset: str | None = None, provenance: dict | None = None
                     ) -> Path:
    """MODEL_CARD.md in the bundle: warnings, verdict, provenance, data, licence, steps,
    losses, metrics, time, commands."""
    from inference.bundle import Bundle

    b = Bundle.load(bundle)
    counts = dataset.get("counts", {})
    val = encoder.get("validation", {})
    provenance = provenance or {}
    warnings = exhibition_warnings(preset, report)
    unreadable = dataset.get("unreadable", [])
    lines = [
        "# Model card", "",
        f"A New Snow sketch -> drawing model: StyleGAN2 generator ({b.resolution} x {b.resolution}, "
        f"{b.channels} channel, {b.num_ws} styles of {b.w_dim}) with a pSp encoder, {b.precision} ONNX.", "",
        *(["**Not for exhibition:** " + "; ".join(warnings) + ".", ""] if warnings else []),
        *(["## Verdict",
            f"**{'Fit' if report['fit_for_table'] else 'Not fit'} for the table** by the model report "
            f"(`newsnow train evaluate`):", *(f"- {_marked(line)}" for line in report["verdicts"]),
            "", "Report settings (the same for `train all` and `train evaluate`): "
            + ", ".join(f"{k} {v}" for k, v in report.get("settings", {}).items()), ""] if report else []),
        "## Provenance",
        f"- Trained: {provenance.get('date', '?')} with newsnow {provenance.get('newsnow_version', '?')}, "
        f"commit {provenance.get('git_commit', '?')}",
        f"- Preset: {preset or 'none (every setting from its default or the command line)'}",
        f"- Command as run: `{provenance.get('command', '?')}`",
        "",
        "## Data",
        f"- Collection: {dataset.get('source', '?')}",
        f"- Source files: {dataset.get('source_files', counts.get('found', '?'))} image files, sha256 of their names "
        f"and contents {dataset.get('source_sha256', '?')}; each kept file's name is in the dataset's "
        f"manifest.json",
        f"- Licence: {dataset.get('licence', 'unknown')}",
        f"- Credit: {dataset.get('credit') or '-'}",
        f"- Images: {counts.get('images', '?')} ({counts.get('train', '?')} train, "
        f"{counts.get('validation', '?')} validation); {counts.get('unreadable', 0)} unreadable, "
        f"{counts.get('exact_duplicates', 0)} exact duplicates skipped, "
        f"{counts.get('near_duplicate_pairs', 0)} near-duplicate pairs reported.",
        *(f"- Unreadable, skipped: {u['file']} ({u['error']})" for u in unreadable[:50]),
        *([f"- ... and {len(unreadable) - 50} more unreadable files (manifest.json)"] if len(unreadable) > 50 else []),
        "",
        "## Training",
        f"- GAN: {gan.get('kimg', 0):.1f} kimg ({gan.get('steps', '?')} steps, batch "
        f"{gan.get('batch', '?')}), final ADA p {gan.get('ada_p', 0):.3f}, "
        f"loss G {gan.get('loss_G', float('nan')):.3f}, loss D {gan.get('loss_D', float('nan')):.3f}, "
        f"{gan.get('seconds', 0) / 60:.1f} min.",
        f"- Sketch pairs: {pairs.get('count', '?')} ({pairs.get('from_collection', 0)} of them the "
        f"collection's own drawings, the rest generated; {pairs.get('partial', 0)} of them partial: first "
        f"strokes in, the whole drawing out), pencil-sketch filter + skeleton simplification + the runtime "
        f"binarizer ({pairs.get('binarize', {}).get('method', '?')}).",
        f"- Encoder: {encoder.get('steps', '?')} steps, {encoder.get('seconds', 0) / 60:.1f} min; "
        f"final training loss {encoder.get('train', {}).get('loss', float('nan')):.4f}.",
        "",
        "## Metrics",
        f"- Encoder validation (held-out pairs): L2 {val.get('l2', float('nan')):.4f}, "
        f"perceptual {val.get('perceptual', float('nan')):.4f}, w-norm {val.get('w_norm', float('nan')):.2f}.",
    ]
    if "fid" in metrics:
        lines.append(f"- FID {metrics['fid']:.2f}, KID {metrics['kid']:.4f} ({metrics['fake']} generated "
                     f"vs {metrics['real']} real).")
    else:
        # the reason may itself begin "FID/KID skipped:"; say it once
        why = str(metrics.get("skipped", "")).removeprefix("FID/KID skipped:").strip()
        lines.append(f"- FID/KID: not computed: {why or 'no reason recorded'}")
    if parity:
        lines.append("- Export parity, max |PyTorch - ONNX Runtime|: "
                     + ", ".join(f"{k} {v:.2g}" for k, v in parity.items()))
    lines += ["", "## Time", *(f"- {k}: {v / 60:.1f} min" for k, v in timings.items()),
              "", "## Commands", "", "```", *commands, "```", ""]
    path = Path(bundle) / "MODEL_CARD.md"
    atomic_write(path, lambda f: f.write("\n".join(lines)), binary=False)
    return path


def _open_run(out: Path, settings: dict, resume: bool, force: bool) -> dict:
    """The run record to continue (resume: the settings checked against the run's) or a
    new one (an existing run refused, or removed with force)."""
    from training.config import ENCODER_CHANGEABLE, GAN_CHANGEABLE, resumed_settings

    output_folder(out)
    if resume:
        record = read_run(out)
        saved = record["settings"]
        changes = []
        for part, changeable in (("gan", GAN_CHANGEABLE), ("encoder", ENCODER_CHANGEABLE)):
            changes += [f"{part} {c}" for c in resumed_settings(
                f"train all ({part} settings)", saved[part], settings[part], changeable=changeable)[1]]
        top = [k for k in settings if k not in ("gan", "encoder")]
        changes += resumed_settings("train all", {k: saved.get(k) for k in top}, {k: settings[k] for k in top},
                                    changeable=frozenset({"inception"}))[1]
        for change in changes:
            log.info("resume: %s (applied)", change)
        record["settings"] = settings
        return record
    held = [name for name in RUN_CONTENTS if (out / name).exists()]
    if held:
        if not force:
            raise FileExistsError(f"{out}: already holds a run ({', '.join(held)}); continue it with --resume, "
                                  f"or start it again from scratch with --force")
        for name in held:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        log.info("--force: removed the earlier run's %s from %s", ", ".join(held), out)
    return {"format": RUN_FORMAT, "format_version": 1, "settings": settings, "commands_run": [], "stages": {}}


def train_all(src: Path, out: Path, gan_cfg: GanConfig, enc_cfg: EncoderConfig, *,
              preset: str | None = None, pair_count: int | None = None, fit: str = "crop",
              licence: str = "unknown", credit: str = "", fp16: bool = False,
              inception: Path | None = None, lpips: Path | None = None, progress: bool = True,
              collection_pairs: int = 0, resume: bool = False, force: bool = False,
              command: str | None = None) -> Path:
    """The whole chain; returns the bundle folder. Raises RunStopped when Ctrl-C/SIGTERM
    stopped it (the stage in progress saved; `resume=True` continues)."""
    import dataclasses

    from inference.bundle import record_verdict
    from inference.export import export_checkpoint
    from training import encoder as encoder_stage
    from training import gan as gan_stage
    from training.ingest import IngestSettings, ingest, load_manifest, scan_files
    from training.progress import run_log, stage_header
    from training.provenance import command_line, software
    from training.report import TARGETS, ReportSettings, crisp, evaluate
    from training.sketches import make_pairs
    from training.state import previous_of
    from training.stopping import StopRequest

    src, out = Path(src), Path(out)
    count = pair_count or PAIR_COUNTS[preset]
    settings = {"src": str(src.resolve()), "preset": preset, "pairs": count, "fit": fit, "licence": licence,
                "credit": credit, "fp16": fp16, "collection_pairs": collection_pairs,
                "inception": str(inception) if inception else None, "lpips": str(lpips) if lpips else None,
                "gan": dataclasses.asdict(gan_cfg), "encoder": dataclasses.asdict(enc_cfg)}
    if not resume:  # a mistyped scans folder must not leave a run.json that then needs --force
        scan_files(src)
    record = _open_run(out, settings, resume, force)
    record["commands_run"].append(command or f"train_all() from Python ({command_line()})")
    stages = record["stages"]
    dataset_dir, gan_dir, pairs_dir, enc_dir = out / "dataset", out / "gan", out / "pairs", out / "encoder"

    def save_record() -> None:
        atomic_write_json(out / RUN_RECORD, record)

    def begin(name: str, detail: str = "") -> None:
        for later in STAGES[STAGES.index(name):]:  # what follows a stage depends on it
            stages.pop(later, None)
        save_record()
        stage_header(STAGES.index(name) + 1, len(STAGES), name, detail)

    def finish(name: str, result: dict, started: float) -> None:
        stages[name] = {"result": result, "seconds": time.time() - started}
        save_record()

    def skip(name: str) -> dict:
        stage_header(STAGES.index(name) + 1, len(STAGES), name, "finished earlier, skipped")
        return stages[name]["result"]

    def has_state(path: Path) -> bool:
        return path.is_file() or previous_of(path).is_file()

    with run_log(out), StopRequest() as stop:
        def stopped(where: str) -> None:  # a signal outside the GAN/encoder loops ends the stage, then the run
            if stop.signal:
                raise RunStopped(where, stop.signal, stop.exit_code)

        log.info("train all: %s -> %s (%s)", src, out, "resumed" if resume else "new run")
        rerun = False  # once a stage runs again, the ones after it start from scratch
        if "ingest" in stages:
            skip("ingest")
        else:
            begin("ingest", f"{src} at {gan_cfg.resolution} px, {fit}")
            t = time.time()
            manifest = ingest(src, dataset_dir, IngestSettings(resolution=gan_cfg.resolution, fit=fit,
                                                               seed=gan_cfg.seed),
                              licence=licence, credit=credit, force=True)
            finish("ingest", manifest["counts"], t)
            rerun = True
        dataset = load_manifest(dataset_dir)
        stopped("after the ingest")

        if "gan" in stages and stages["gan"]["result"]["steps"] >= gan_cfg.total_steps:
            gan = skip("gan")
        else:
            go_on = has_state(gan_dir / gan_stage.STATE) and not rerun
            begin("gan", f"{gan_cfg.kimg:g} kimg, {gan_cfg.total_steps} steps of batch {gan_cfg.batch}"
                  + (", continuing from its last checkpoint" if go_on else ""))
            t = time.time()
            gan = gan_stage.train_gan(dataset_dir, gan_dir, gan_cfg, resume=go_on, force=not go_on,
                                      progress=progress)
            gan["batch"] = gan_cfg.batch
            if gan.get("stopped_by"):
                raise RunStopped(f"at GAN step {gan['steps']} ({gan['kimg']:.2f} kimg)", gan["stopped_by"],
                                 gan["exit_code"])
            finish("gan", gan, t)
            rerun = True

        if "sketches" in stages:
            skip("sketches")
        else:
            begin("sketches", f"{count} generated pairs" + (f" + {collection_pairs} of the collection"
                                                            if collection_pairs else ""))
            t = time.time()
            shutil.rmtree(pairs_dir, ignore_errors=True)  # a stage cut short leaves a partial folder
            made = make_pairs(gan_dir, pairs_dir, count, seed=gan_cfg.seed, collection=dataset_dir,
                              collection_count=collection_pairs)
            log.info("sketches: %d pairs (%d blank samples dropped); look at %s", made["count"],
                     made["dropped_blank"], pairs_dir / "contact_sheet.png")
            finish("sketches", {"count": made["count"], "dropped_blank": made["dropped_blank"]}, t)
            rerun = True
        pairs = json.loads((pairs_dir / "manifest.json").read_text())
        stopped("after the sketches")

        if "encoder" in stages and stages["encoder"]["result"]["steps"] >= enc_cfg.steps:
            encoder = skip("encoder")
        else:
            go_on = has_state(enc_dir / encoder_stage.STATE) and not rerun
            begin("encoder", f"{enc_cfg.steps} steps of batch {enc_cfg.batch}"
                  + (", continuing from its last checkpoint" if go_on else ""))
            t = time.time()
            encoder = encoder_stage.train_encoder(
                pairs_dir, gan_dir, enc_dir, enc_cfg, resume=go_on, force=not go_on, lpips=lpips,
                progress=progress, meta={"preset": preset, "commands": record["commands_run"],
                                         "sources_sha256": dataset.get("source_sha256")})
            if encoder.get("stopped_by"):
                raise RunStopped(f"at encoder step {encoder['steps']}", encoder["stopped_by"], encoder["exit_code"])
            finish("encoder", encoder, t)
            rerun = True

        model = enc_dir / encoder_stage.MODEL
        export_command = f"newsnow export {model} --out {out / 'bundle'} --check" + (" --fp16" if fp16 else "")
        if "export" in stages:
            parity = skip("export")["parity"]
        else:
            begin("export", f"{'fp16' if fp16 else 'fp32'} ONNX, checked against PyTorch")
            t = time.time()
            bundle, parity = export_checkpoint(model, out / "bundle", fp16=fp16, check=True, command=export_command)
            for name, diff in parity.items():
                log.info("export parity %s: max |PyTorch - ONNX Runtime| = %.3g", name, diff)
            finish("export", {"parity": parity}, t)
        stopped("after the export")

        bundle_dir = out / "bundle"
        if "report" in stages:
            skip("report")
            log.info("the run is complete: %s", bundle_dir / "MODEL_CARD.md")
            return bundle_dir
        begin("report", "the model report, the model card, the held-out contact sheet")
        t = time.time()
        report = evaluate(bundle_dir, out / "report", dataset=dataset_dir, inception=inception,
                          settings=ReportSettings())  # the same as `train evaluate`'s: comparable figures
        metrics = report["fid_kid"]
        for line in report["verdicts"]:
            log.info("report: %s", line)
        idle_command = None
        if report["generator"]["variety"] < TARGETS["variety"] or not crisp(report["generator"]):
            # the generator's samples would make the idle picture one template (or smudges)
            from training.idle_codes import add_to_bundle, collection_codes
            from training.report import load_networks
            generator, encoder_net, _, _ = load_networks(bundle_dir)
            codes, error = collection_codes(generator, encoder_net, dataset_dir)
            add_to_bundle(bundle_dir, codes, {"source": f"W+ optimisation of {len(codes)} collection drawings",
                                              "mse": round(error, 4)})
            log.info("idle: the generator's variety is %.2f of the collection's, grey share %.2f (the "
                     "collection's %.2f), so the idle wander moves between %d collection drawings' codes (MSE %.3f)",
                     report["generator"]["variety"], report["generator"]["grey"], report["generator"]["grey_real"],
                     len(codes), error)
            idle_command = f"newsnow train idle-codes {bundle_dir} --dataset {dataset_dir} --bundle {bundle_dir}"
        timings = {name: stages[name]["seconds"] for name in STAGES if name in stages}
        # the training stages' own clocks include the time before a resume
        timings.update(gan=gan["seconds"], encoder=encoder["seconds"], report=time.time() - t)
        write_model_card(bundle_dir, gan=gan, encoder=encoder, pairs=pairs, dataset=dataset, metrics=metrics,
                         parity=parity, timings=timings, report=report, preset=preset,
                         provenance={**software(), "command": " ; ".join(record["commands_run"])},
                         commands=step_commands(out, settings, preset) + [
                             export_command,
                             f"newsnow train evaluate {bundle_dir} --out {out / 'report'} --dataset {dataset_dir}"]
                         + ([idle_command] if idle_command else []))
        record_verdict(bundle_dir, bundle_verdict(report, preset, out / "report" / "report.json"))
        held_out_sheet(bundle_dir, pairs_dir, dataset_dir, out / "held_out_contact_sheet.png")
        atomic_write_json(out / "summary.json", {"gan": gan, "encoder": encoder, "metrics": metrics,
                                                 "report": report, "parity": parity, "timings": timings})
        finish("report", {"fit_for_table": report["fit_for_table"]}, t)
        for warning in exhibition_warnings(preset, report):
            log.warning("not for exhibition: %s", warning)
    return bundle_dir


def step_commands(out: Path, settings: dict, preset: str | None) -> list[str]:
    """The single-step commands that `train all` amounts to (for the model card)."""
    flag = f" --{preset}" if preset else ""
    collection = (f" --collection {out / 'dataset'} --collection-count {settings['collection_pairs']}"
                  if settings["collection_pairs"] else "")
    return [f"newsnow train ingest {settings['src']} --out {out / 'dataset'} --resolution "
            f"{settings['gan']['resolution']} --fit {settings['fit']}",
            f"newsnow train gan {out / 'dataset'} --out {out / 'gan'}{flag}",
            f"newsnow train sketches {out / 'gan'} --out {out / 'pairs'} --count {settings['pairs']}{collection}",
            f"newsnow train encoder {out / 'pairs'} --gan {out / 'gan'} --out {out / 'encoder'}{flag}"]
