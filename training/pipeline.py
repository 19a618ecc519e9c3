"""`newsnow train all SRC --out DIR`: ingest -> gan -> sketches -> encoder -> export
(checked) -> model card, each step in its own sub-folder of DIR:

    DIR/dataset  DIR/gan  DIR/pairs  DIR/encoder  DIR/bundle (with MODEL_CARD.md)
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from training.config import EncoderConfig, GanConfig

log = logging.getLogger(__name__)

# Sketch pairs per preset (the thesis sampled 10K).
PAIR_COUNTS = {"tiny": 48, "cpu-demo": 4000, "full": 10000, None: 10000}
# The model report's size per preset (tiny: seconds, for smoke tests).
REPORT_SETTINGS = {"tiny": dict(samples=32, real=32, held_out=4, inversion_steps=20)}


def held_out_sheet(bundle: Path, pairs: Path, dataset: Path, out_png: Path) -> Path:
    """Contact sheet (sketch | drawing by the exported bundle, through ONNX Runtime) of
    sketches the encoder never saw: validation pairs, sketches of held-out real drawings
    from the collection, and visitor-like strokes."""
    import cv2

    from inference.runtime import open_backend
    from inference.tensors import from_uint8, to_uint8
    from training.ingest import load_images
    from training.report import strokes_like_a_visitor
    from training.sketches import SketchSettings, load_pairs, make_sketch, default_binarize, contact_sheet

    backend = open_backend(bundle, kind="onnxruntime")
    r = backend.bundle.resolution
    val_sketches, _, _ = load_pairs(pairs, "validation")
    real = load_images(dataset, "validation")
    params = default_binarize(r)
    shown = (list(val_sketches[:8]) + [make_sketch(d, SketchSettings(), params) for d in real[:8]]
             + strokes_like_a_visitor(r, 8))
    drawings = to_uint8(backend.sketch_to_drawing(from_uint8(np.stack(shown)[:, None]))[:, 0])
    cv2.imwrite(str(out_png), contact_sheet(shown, list(drawings), columns=4, scale=2))
    return Path(out_png)


def write_model_card(bundle: Path, *, gan: dict, encoder: dict, pairs: dict, dataset: dict,
                     metrics: dict, parity: dict | None, timings: dict, commands: list[str],
                     report: dict | None = None) -> Path:
    """MODEL_CARD.md in the bundle: data, licence, steps, losses, metrics, time."""
    from inference.bundle import Bundle

    b = Bundle.load(bundle)
    counts = dataset.get("counts", {})
    val = encoder.get("validation", {})
    lines = [
        "# Model card", "",
        f"A New Snow sketch -> drawing model: StyleGAN2 generator ({b.resolution} x {b.resolution}, "
        f"{b.channels} channel, {b.num_ws} styles of {b.w_dim}) with a pSp encoder, {b.precision} ONNX.", "",
        *(["## Verdict",
            f"**{'Fit' if report['fit_for_table'] else 'Not fit'} for the table** by the model report "
            f"(`newsnow train evaluate`):", *(f"- {line}" for line in report["verdicts"]), ""] if report else []),
        "## Data",
        f"- Collection: {dataset.get('source', '?')}",
        f"- Licence: {dataset.get('licence', 'unknown')}",
        f"- Credit: {dataset.get('credit') or '-'}",
        f"- Images: {counts.get('images', '?')} ({counts.get('train', '?')} train, "
        f"{counts.get('validation', '?')} validation); {counts.get('unreadable', 0)} unreadable, "
        f"{counts.get('exact_duplicates', 0)} exact duplicates skipped, "
        f"{counts.get('near_duplicate_pairs', 0)} near-duplicate pairs reported.",
        "",
        "## Training",
        f"- GAN: {gan.get('kimg', 0):.1f} kimg ({gan.get('steps', '?')} steps, batch "
        f"{gan.get('batch', '?')}), final ADA p {gan.get('ada_p', 0):.3f}, "
        f"loss G {gan.get('loss_G', float('nan')):.3f}, loss D {gan.get('loss_D', float('nan')):.3f}, "
        f"{gan.get('seconds', 0) / 60:.1f} min.",
        f"- Sketch pairs: {pairs.get('count', '?')} ({pairs.get('from_collection', 0)} of them the "
        f"collection's own drawings, the rest generated), pencil-sketch filter + "
        f"skeleton simplification + the runtime binarizer ({pairs.get('binarize', {}).get('method', '?')}).",
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
        lines.append(f"- FID/KID: {metrics.get('skipped', 'not computed')}")
    if parity:
        lines.append("- Export parity, max |PyTorch - ONNX Runtime|: "
                     + ", ".join(f"{k} {v:.2g}" for k, v in parity.items()))
    lines += ["", "## Time", *(f"- {k}: {v / 60:.1f} min" for k, v in timings.items()),
              "", "## Commands", "", "```", *commands, "```", ""]
    path = Path(bundle) / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


def train_all(src: Path, out: Path, gan_cfg: GanConfig, enc_cfg: EncoderConfig, *,
              preset: str | None = None, pair_count: int | None = None, fit: str = "crop",
              licence: str = "unknown", credit: str = "", fp16: bool = False,
              inception: Path | None = None, lpips: Path | None = None, progress: bool = True,
              collection_pairs: int = 0) -> Path:
    """The whole chain; returns the bundle folder."""
    import torch

    from inference.checkpoint import load_model_checkpoint
    from inference.export import export_checkpoint
    from training.encoder import MODEL, train_encoder
    from training.gan import GENERATOR, to_uint8, train_gan
    from training.ingest import IngestSettings, ingest, load_images
    from training.metrics import gan_metrics
    from training.report import ReportSettings, evaluate
    from training.sketches import make_pairs

    src, out = Path(src), Path(out)
    timings, commands = {}, []
    t = time.time()
    dataset = ingest(src, out / "dataset", IngestSettings(resolution=gan_cfg.resolution, fit=fit,
                                                          seed=gan_cfg.seed), licence=licence, credit=credit)
    timings["ingest"] = time.time() - t
    commands.append(f"newsnow train ingest {src} --out {out / 'dataset'} --resolution {gan_cfg.resolution} "
                    f"--fit {fit}")
    t = time.time()
    gan = train_gan(out / "dataset", out / "gan", gan_cfg, progress=progress)
    gan["batch"] = gan_cfg.batch
    timings["gan"] = time.time() - t
    commands.append(f"newsnow train gan {out / 'dataset'} --out {out / 'gan'}" + (f" --{preset}" if preset else ""))
    t = time.time()
    count = pair_count or PAIR_COUNTS[preset]
    pairs = make_pairs(out / "gan", out / "pairs", count, seed=gan_cfg.seed, collection=out / "dataset",
                       collection_count=collection_pairs)
    timings["sketches"] = time.time() - t
    commands.append(f"newsnow train sketches {out / 'gan'} --out {out / 'pairs'} --count {count}"
                    + (f" --collection {out / 'dataset'} --collection-count {collection_pairs}"
                       if collection_pairs else ""))
    t = time.time()
    encoder = train_encoder(out / "pairs", out / "gan", out / "encoder", enc_cfg, lpips=lpips, progress=progress)
    timings["encoder"] = time.time() - t
    commands.append(f"newsnow train encoder {out / 'pairs'} --gan {out / 'gan'} --out {out / 'encoder'}"
                    + (f" --{preset}" if preset else ""))
    t = time.time()
    bundle, parity = export_checkpoint(out / "encoder" / MODEL, out / "bundle", fp16=fp16, check=True,
                                       command=f"newsnow export {out / 'encoder' / MODEL} --out {out / 'bundle'}")
    timings["export"] = time.time() - t
    commands.append(f"newsnow export {out / 'encoder' / MODEL} --out {out / 'bundle'} --check"
                    + (" --fp16" if fp16 else ""))
    generator, _, _ = load_model_checkpoint(out / "gan" / GENERATOR)
    real = load_images(out / "dataset", None)
    with torch.no_grad():
        z = torch.randn(len(real), generator.z_dim, generator=torch.Generator().manual_seed(1))
        fake = np.concatenate([to_uint8(generator(z[i:i + 64], noise_mode="const"))
                               for i in range(0, len(z), 64)])
    metrics = gan_metrics(inception, real, fake)
    t = time.time()
    report = evaluate(bundle.path, out / "report", dataset=out / "dataset", inception=inception,
                      settings=ReportSettings(**REPORT_SETTINGS.get(preset, {})))
    timings["report"] = time.time() - t
    commands.append(f"newsnow train evaluate {bundle.path} --out {out / 'report'} --dataset {out / 'dataset'}")
    write_model_card(bundle.path, gan=gan, encoder=encoder, pairs=pairs, dataset=dataset, metrics=metrics,
                     parity=parity, timings=timings, commands=commands, report=report)
    held_out_sheet(bundle.path, out / "pairs", out / "dataset", out / "held_out_contact_sheet.png")
    (out / "summary.json").write_text(json.dumps({"gan": gan, "encoder": encoder, "metrics": metrics,
                                                  "report": report,
                                                  "parity": parity, "timings": timings}, indent=1))
    return bundle.path
