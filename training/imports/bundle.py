"""`newsnow import`: a sketch model trained elsewhere as a table bundle, with a model card.

- A pSp or e4e checkpoint: its decoder and its encoder (`training.imports.psp`), the input
  stage inside the graphs.
- A researcher's generator alone (rosinality `.pt`, NVlabs `.pkl`, a bare g_ema state
  dict or pickled G_ema) with `--encoder MODEL.pt`: the New Snow encoder that `newsnow
  train encoder --generator FILE` trained for it (its checkpoint must hold this very
  generator).
- A New Snow checkpoint: exported as `newsnow export` does.

The bundle's `binarize` is the table's default at the model's resolution with what
`--binarize NAME=VALUE` changes, so the table's sketches can be made to look like the
ones the model was trained on; its provenance and MODEL_CARD.md say where it came from.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import torch

from capture.binarize import BinarizeParams
from inference.bundle import Bundle
from inference.export import check_parity, export_bundle, require_parity
from training.editing.checkpoints import Checkpoint, generator_of, open_checkpoint
from training.provenance import software
from storage import atomic_write

log = logging.getLogger(__name__)

WANTED = ("a pSp or e4e checkpoint (.pt), or a StyleGAN2 generator file (rosinality .pt, NVlabs .pkl) "
          "with --encoder")
CARD = "MODEL_CARD.md"
ENCODER_NAMES = {"psp": "pSp's GradualStyleEncoder on IR-SE50", "e4e": "e4e's Encoder4Editing on IR-SE50",
                 "psp-w": "pSp's BackboneEncoderUsingLastLayerIntoW on IR-SE50"}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def binarize_settings(resolution: int, changes: dict | None) -> dict:
    """The table's binarizer at the model's resolution, with `changes` (validated by BinarizeParams)."""
    changes = dict(changes or {})
    if "resolution" in changes and changes["resolution"] != resolution:
        raise ValueError(f"--binarize resolution={changes['resolution']}: the model takes {resolution} px sketches; "
                         f"leave resolution out")
    values = {**BinarizeParams(resolution=resolution).to_dict(), **changes, "resolution": resolution}
    return BinarizeParams.from_dict(values).to_dict()


def _networks(checkpoint: Checkpoint, encoder_checkpoint: Path | None, input_range: str | None,
              mapping_lr_multiplier: float | None) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """(generator, encoder, what the card and provenance say about them)."""
    path, fmt = checkpoint.path, checkpoint.format
    if fmt in ("psp", "e4e"):
        from training.imports.psp import read_sketch_model

        if encoder_checkpoint is not None:
            raise ValueError(f"{path}: a {fmt} checkpoint brings its own encoder; leave --encoder out")
        model = read_sketch_model(checkpoint, input_range, mapping_lr_multiplier)
        encoder = model.encoder
        stage = (f"table sketch [-1, 1] at {encoder.resolution} px -> {encoder.init_kwargs['input_range'].replace(':', ' to ')} "
                 f"at {encoder.input_size} px, {encoder.input_nc} channel(s); drawings at the decoder's "
                 f"{encoder.resolution} px (the original's pooling of its output to 256 px is left out)")
        return model.loaded.generator, encoder, {
            "encoder": {"kind": encoder.kind, "source": f"the checkpoint's encoder.* ({ENCODER_NAMES[encoder.kind]})",
                        "input_stage": stage},
            "opts": model.opts, "w_avg_source": model.loaded.w_avg_source, "notes": model.notes}
    if input_range is not None:
        raise ValueError("--input-range describes a pSp/e4e encoder's input; this file has none")
    if fmt == "newsnow":
        from inference.checkpoint import load_model_checkpoint

        generator, encoder, meta = load_model_checkpoint(path)
        if encoder is None:
            raise ValueError(f"{path}: a New Snow generator without an encoder; train one with `newsnow train "
                             f"encoder` and import (or export) its model.pt")
        return generator, encoder, {"encoder": {"kind": "newsnow-psp", "source": str(path)}, "meta": meta,
                                    "w_avg_source": "the checkpoint's tracked w_avg", "notes": []}
    loaded = generator_of(checkpoint, mapping_lr_multiplier)
    if encoder_checkpoint is None:
        raise ValueError(f"{path}: a {fmt} generator without an encoder; a bundle needs both: make sketch pairs "
                         f"(`newsnow train sketches {path} --out PAIRS`), train an encoder (`newsnow train encoder "
                         f"PAIRS --generator {path} --out ENC`), then `newsnow import {path} --encoder ENC/model.pt "
                         f"--out BUNDLE`")
    from inference.checkpoint import load_model_checkpoint

    trained_for, encoder, meta = load_model_checkpoint(encoder_checkpoint)
    if encoder is None:
        raise ValueError(f"{encoder_checkpoint}: holds no encoder; pass the model.pt that `newsnow train encoder` "
                         f"wrote")
    if not _same_generator(trained_for, loaded.generator):
        raise ValueError(f"{encoder_checkpoint}: its encoder was trained for another generator than {path} "
                         f"(their weights differ); train it with `--generator {path}`")
    return loaded.generator, encoder, {
        "encoder": {"kind": "newsnow-psp", "source": str(encoder_checkpoint),
                    "trained": (meta.get("provenance") or {}).get("date")},
        "meta": meta, "w_avg_source": loaded.w_avg_source, "notes": []}


def _same_generator(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return (a.init_kwargs == b.init_kwargs and sa.keys() == sb.keys()
            and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa))


def import_checkpoint(source: str | os.PathLike, out: str | os.PathLike, *, encoder: str | os.PathLike | None = None,
                      input_range: str | None = None, mapping_lr_multiplier: float | None = None,
                      binarize: dict | None = None, licence: str | None = None, credit: str | None = None,
                      fp16: bool = False, check: bool = False, weights: bool = True, command: str | None = None
                      ) -> tuple[Bundle, dict[str, float] | None]:
    """Write a bundle (and its MODEL_CARD.md) for a checkpoint trained elsewhere; with
    `check`, ONNX Runtime against the torch networks (ExportError beyond the tolerance)."""
    torch.set_flush_denormal(True)
    checkpoint = open_checkpoint(source, WANTED)
    generator, encoder_net, about = _networks(checkpoint, Path(encoder) if encoder else None, input_range,
                                              mapping_lr_multiplier)
    path = checkpoint.path
    trained_meta = about.get("meta") or {}
    provenance = {
        "imported_from": str(path.resolve()), "source_format": checkpoint.format,
        "source_sha256": sha256_of(path), "source_bytes": path.stat().st_size,
        "encoder": about["encoder"], "w_avg": about["w_avg_source"],
        "mapping_lr_multiplier": generator.init_kwargs["mapping_lr_multiplier"],
        "licence": licence or (trained_meta.get("provenance") or {}).get("licence") or "unknown (not in the file)",
        "credit": credit or "", "imported": software(),
    }
    if about.get("opts"):
        provenance["opts"] = {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
                              for k, v in about["opts"].items()}
        provenance["dataset"] = str(about["opts"].get("dataset_type", "unknown (not in the file)"))
    if about["notes"]:
        provenance["assumed"] = list(about["notes"])
    meta = {"binarize": binarize_settings(generator.resolution, binarize), "provenance": provenance}
    started = time.time()
    bundle = export_bundle(generator, encoder_net, out, meta=meta, fp16=fp16, weights=weights, command=command)
    export_seconds = time.time() - started
    diffs = None
    if check:
        diffs = check_parity(generator, encoder_net, bundle)
    write_card(bundle, provenance, about, diffs, export_seconds)
    if diffs is not None:
        require_parity(bundle, diffs)
    return bundle, diffs


def write_card(bundle: Bundle, provenance: dict, about: dict, diffs: dict | None, export_seconds: float) -> Path:
    """MODEL_CARD.md: what the model is, where it came from, what the import assumed, parity."""
    fmt = provenance["source_format"]
    enc = provenance["encoder"]
    names = {"psp": "pixel2style2pixel (pSp)", "e4e": "encoder4editing (e4e)", "rosinality": "rosinality stylegan2-pytorch",
             "stylegan2-ada": "NVlabs stylegan2-ada-pytorch", "newsnow": "New Snow"}
    lines = [
        "# Model card", "",
        f"A sketch -> drawing model **imported** from a {names.get(fmt, fmt)} checkpoint: StyleGAN2 generator "
        f"({bundle.resolution} x {bundle.resolution}, {bundle.channels} channel(s), {bundle.num_ws} styles of "
        f"{bundle.w_dim}) with a {enc['kind']} encoder, {bundle.precision} ONNX.", "",
        "**Not judged by New Snow:** it was trained elsewhere; the model report (`newsnow train evaluate "
        f"{bundle.path}`) says whether it is fit for the table.", "",
        "## Provenance",
        f"- Source file: `{provenance['imported_from']}` ({provenance['source_bytes'] / 1e6:.1f} MB, sha256 "
        f"{provenance['source_sha256']})",
        f"- Format: {names.get(fmt, fmt)}, told by the file's content",
        f"- Encoder: {enc['kind']} from {enc['source']}",
    ]
    if "input_stage" in enc:
        lines.append(f"- Input stage (inside the graphs): {enc['input_stage']}")
    if provenance.get("opts"):
        lines.append("- Training options read: " + ", ".join(f"{k}={v!r}" for k, v in provenance["opts"].items()))
    lines += [
        f"- w_avg: {provenance['w_avg']}",
        f"- Mapping lr multiplier: {provenance['mapping_lr_multiplier']:g}",
        f"- Data set: {provenance.get('dataset', 'as the source says')}",
        f"- Licence: {provenance['licence']}" + (f"; credit: {provenance['credit']}" if provenance["credit"] else ""),
        f"- Imported: {provenance['imported']['date']} with newsnow {provenance['imported']['newsnow_version']}, "
        f"commit {provenance['imported']['git_commit']}",
        f"- Command: `{bundle.provenance.get('export_command', 'newsnow import (from Python)')}`", "",
    ]
    if provenance.get("assumed"):
        lines += ["## Assumed by the import"] + [f"- {note}" for note in provenance["assumed"]] + [""]
    lines += ["## Table settings",
              "- Binarization: " + ", ".join(f"{k}={v}" for k, v in bundle.binarize.items()),
              "  (set with `--binarize NAME=VALUE` at import so that the table's sketches look like the model's "
              "training sketches)", "",
              "## Parity"]
    if diffs is None:
        lines.append("- Not checked (import with --check)")
    else:
        lines.append("- max |PyTorch - ONNX Runtime|: " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    lines.append(f"- Export took {export_seconds:.0f} s")
    text = "\n".join(lines) + "\n"
    return atomic_write(bundle.path / CARD, lambda f: f.write(text), binary=False)
