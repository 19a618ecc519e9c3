"""Checkpoint -> model bundle: the ONNX graphs, the safetensors weights, bundle.json.

`newsnow export CHECKPOINT --out BUNDLE [--fp16] [--check]`. The graphs (opset 17, TorchScript
exporter with dynamo=False so each is one self-contained file, dynamic batch axis):

    encoder    sketch [B,1,R,R] -> wplus [B,num_ws,w_dim] (absolute: offsets + w_avg)
    generator  wplus            -> drawing              (latent-space transitions, editing)
    mapping    z [B,z_dim]      -> w [B,w_dim]          (untruncated; truncate with w_avg)
    fused      sketch -> drawing [B,C,R,R]              (only with --fused: encoder then
                                                        generator costs 1.05x it on the CPU,
                                                        and it repeats both graphs' weights)

The weights (model.safetensors) are what the torch backend, inversion and the editing
methods load; `--no-weights` leaves them out.

Drawings are clamped to [-1, 1] in the graphs (the contract's range); training uses the
unclamped networks. Noise is the generator's constant buffers. fp16 bundles convert the
weights and arithmetic to float16 but keep float32 inputs and outputs.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from inference.bundle import GRAPH_IO, GRAPH_NAMES, OPTIONAL_GRAPHS, Bundle, write_bundle_json
from inference.checkpoint import load_model_checkpoint
from inference.graphs import graph_modules
from inference.networks import Generator, PSPEncoder

log = logging.getLogger(__name__)

OPSET = 17
WEIGHTS_FILE = "model.safetensors"
# Largest |PyTorch - ONNX Runtime| allowed by `--check`, on drawings in [-1, 1].
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


class ExportError(ValueError):
    """The checkpoint cannot be exported, or the exported graphs disagree with PyTorch."""


def _example_inputs(generator: Generator, encoder: PSPEncoder, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Inputs like the table's: binary sketches (mostly paper), their W+ codes, normal z."""
    g = torch.Generator().manual_seed(seed)
    r = generator.resolution
    sketch = torch.where(torch.rand(batch, 1, r, r, generator=g) < 0.1, -1.0, 1.0)
    with torch.no_grad():
        wplus = encoder(sketch) + generator.w_avg
    z = torch.randn(batch, generator.z_dim, generator=g)
    return {"fused": sketch, "encoder": sketch, "generator": wplus, "mapping": z}


def _to_fp16(path: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(path))
    # keep_io_types: float32 in and out, as the contract says; Cast nodes at the edges.
    model16 = OnnxModel(convert_float_to_float16(model, keep_io_types=True))
    model16.topological_sort()  # the converter appends its input Casts after their users
    onnx.save(model16.model, str(path))


def export_bundle(generator: Generator, encoder: PSPEncoder, out: str | os.PathLike, *, meta: dict | None = None,
                  fp16: bool = False, weights: bool = True, command: str | None = None,
                  fused: bool = False) -> Bundle:
    """Write a bundle folder for (generator, encoder) and return it loaded (hence validated).

    bundle.json is written last, so an export that fails midway leaves no loadable bundle.
    """
    import onnx

    meta = dict(meta or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = generator.cpu().eval()
    encoder = encoder.cpu().eval()
    if encoder.num_ws != generator.num_ws or encoder.w_dim != generator.w_dim:
        raise ExportError(f"encoder gives [{encoder.num_ws}, {encoder.w_dim}] styles but the generator takes "
                          f"[{generator.num_ws}, {generator.w_dim}]: the encoder was trained for another generator")
    modules = graph_modules(generator, encoder)
    examples = _example_inputs(generator, encoder, batch=1, seed=0)
    graphs = {}
    for old in OPTIONAL_GRAPHS:  # a graph left out now must not linger from an earlier export
        (out / f"{old}.onnx").unlink(missing_ok=True)
    for name in GRAPH_NAMES + (("fused",) if fused else ()):
        file = f"{name}.onnx"
        in_name, out_name = GRAPH_IO[name]
        with torch.no_grad(), warnings.catch_warnings():
            # dynamo=False is deliberate (one self-contained file, proven opset-17 graphs);
            # torch warns that this exporter is the legacy one.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(modules[name], (examples[name],), str(out / file), dynamo=False,
                              opset_version=OPSET, input_names=[in_name], output_names=[out_name],
                              dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}})
        if fp16:
            _to_fp16(out / file)
        onnx.checker.check_model(str(out / file))
        graphs[name] = file
    if weights:
        from safetensors.torch import save_file

        def plain(v: torch.Tensor) -> torch.Tensor:
            return (v.float() if v.is_floating_point() else v).detach().contiguous()

        tensors = {f"generator.{k}": plain(v) for k, v in generator.state_dict().items()}
        tensors.update({f"encoder.{k}": plain(v) for k, v in encoder.state_dict().items()})
        save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "newsnow-weights"})
        os.chmod(out / WEIGHTS_FILE, 0o644)
    else:
        (out / WEIGHTS_FILE).unlink(missing_ok=True)
    write_bundle_json(
        out, resolution=generator.resolution, channels=generator.channels, num_ws=generator.num_ws,
        w_dim=generator.w_dim, z_dim=generator.z_dim, w_avg=generator.w_avg.detach().cpu().numpy(),
        precision="fp16" if fp16 else "fp32", graphs=graphs, weights=WEIGHTS_FILE if weights else None,
        model={"generator": generator.init_kwargs, "encoder": encoder.init_kwargs},
        binarize=_binarize_params(meta, generator.resolution), provenance=_provenance(meta, command),
    )
    return Bundle.load(out)


def _binarize_params(meta: dict, resolution: int) -> dict:
    """The checkpoint's binarize params, or the binarizer's defaults at the model's resolution."""
    if "binarize" in meta:
        return dict(meta["binarize"])
    try:
        from capture.binarize import BinarizeParams
    except ImportError:
        return {"resolution": resolution}
    return BinarizeParams(resolution=resolution).to_dict()


def _provenance(meta: dict, command: str | None) -> dict:
    provenance = dict(meta.get("provenance") or {})
    for key in ("dataset", "licence", "steps", "kimg", "date", "command"):
        if key in meta and key not in provenance:
            provenance[key] = meta[key]
    provenance["exported"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if command:
        provenance["export_command"] = command
    return provenance


def check_parity(generator: Generator, encoder: PSPEncoder, bundle: Bundle, batch: int = 2,
                 seed: int = 1, provider: str = "CPUExecutionProvider") -> dict[str, float]:
    """Largest |PyTorch (CPU, fp32) - ONNX Runtime| per graph on the same inputs (batch 2: the
    batch axis is free), ONNX Runtime on `provider` (fp16 graphs run natively on CUDA only)."""
    import onnxruntime as ort

    modules = graph_modules(generator.cpu().eval(), encoder.cpu().eval())
    inputs = _example_inputs(generator, encoder, batch=batch, seed=seed)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    diffs = {}
    for name in bundle.graphs:
        session = ort.InferenceSession(str(bundle.graphs[name]), options, providers=[provider])
        with torch.no_grad():
            want = modules[name](inputs[name]).numpy()
        in_name, _ = GRAPH_IO[name]
        got = session.run(None, {in_name: inputs[name].numpy()})[0]
        if got.shape != want.shape:
            raise ExportError(f"{bundle.graphs[name]}: ONNX output shape {got.shape} != PyTorch {want.shape}")
        diffs[name] = float(np.abs(got.astype(np.float64) - want).max())
    return diffs


def require_parity(bundle: Bundle, diffs: dict[str, float]) -> None:
    """Raise ExportError if any graph is further from PyTorch than the bundle's precision allows."""
    limit = TOLERANCE[bundle.precision]
    worst = {k: v for k, v in diffs.items() if not v <= limit}
    if worst:
        raise ExportError(f"{bundle.path}: ONNX Runtime disagrees with PyTorch beyond {limit:g} "
                          f"({', '.join(f'{k} {v:.3g}' for k, v in worst.items())}); do not ship this bundle")


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *, fp16: bool = False,
                      check: bool = False, weights: bool = True, command: str | None = None, fused: bool = False
                      ) -> tuple[Bundle, dict[str, float] | None]:
    """`newsnow export`: load a training checkpoint, write the bundle, optionally check parity."""
    torch.set_flush_denormal(True)
    generator, encoder, meta = load_model_checkpoint(checkpoint)
    if encoder is None:
        raise ExportError(f"{checkpoint}: has a generator but no pSp encoder; a bundle needs both "
                          f"(train the encoder on this generator first)")
    bundle = export_bundle(generator, encoder, out, meta=meta, fp16=fp16, weights=weights, command=command,
                           fused=fused)
    diffs = None
    if check:
        diffs = check_parity(generator, encoder, bundle)
        require_parity(bundle, diffs)
    return bundle, diffs


def run(args) -> int:
    """CLI handler of `newsnow export`."""
    flags = [f for f, on in (("--fp16", args.fp16), ("--check", args.check), ("--no-weights", args.no_weights),
                             ("--fused", args.fused)) if on]
    command = " ".join(["newsnow export", str(args.checkpoint), "--out", str(args.out)] + flags)
    bundle, diffs = export_checkpoint(args.checkpoint, args.out, fp16=args.fp16, check=args.check,
                                      weights=not args.no_weights, command=command, fused=args.fused)
    size = sum(p.stat().st_size for p in bundle.path.iterdir() if p.is_file())
    print(f"wrote {bundle.path} ({bundle.precision}, {bundle.resolution}x{bundle.resolution}, "
          f"{bundle.channels} channel(s), {bundle.num_ws} styles, {size / 1e6:.1f} MB)")
    if diffs is not None:
        limit = TOLERANCE[bundle.precision]
        for name, diff in diffs.items():
            print(f"check {name:9s} max |torch - onnxruntime| = {diff:.3g} (limit {limit:g})")
    return 0
