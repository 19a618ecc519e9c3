"""Model bundles: the folder that carries a trained model from training to the table.

`bundle.json` + the ONNX graphs (+ optional `model.safetensors`), see docs/CONTRACTS.md and
docs/models.md. `Bundle.load` validates all of it and refuses a bad bundle with a
`BundleError` naming the file and the problem, so a kiosk fails at start-up with a clear
message instead of showing a broken picture to visitors.

No torch and no `onnx` here: a kiosk has only ONNX Runtime, and the graphs are checked
through ONNX Runtime sessions (their inputs and outputs).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from capture.binarize import resolution_problem
from storage import atomic_write_json

BUNDLE_FORMAT = "newsnow-bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
GRAPH_NAMES = ("encoder", "generator", "mapping")
# sketch -> drawing in one graph: optional, since encoder then generator costs about the
# same (1.05x on the CPU) and the fused file repeats both graphs' weights.
OPTIONAL_GRAPHS = ("fused",)
# (input, output) tensor names of each graph; inference/graphs.py holds their modules.
GRAPH_IO = {"fused": ("sketch", "drawing"), "encoder": ("sketch", "wplus"),
            "generator": ("wplus", "drawing"), "mapping": ("z", "w")}
PRECISIONS = ("fp32", "fp16")
DEMO_BUNDLE = Path(__file__).parent / "models" / "demo"


class BundleError(ValueError):
    """A model bundle is missing a file or has a wrong field, shape or graph."""


def graph_io(bundle: "Bundle", name: str) -> tuple[tuple[str, list], tuple[str, list]]:
    """(input name, shape), (output name, shape) a graph must have; 'batch' is the free batch axis."""
    r, c, n, w, z = bundle.resolution, bundle.channels, bundle.num_ws, bundle.w_dim, bundle.z_dim
    shapes = {"sketch": ["batch", 1, r, r], "drawing": ["batch", c, r, r], "wplus": ["batch", n, w],
              "z": ["batch", z], "w": ["batch", w]}
    source, target = GRAPH_IO[name]
    return (source, shapes[source]), (target, shapes[target])


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle. `meta` is bundle.json as read."""

    path: Path
    resolution: int
    channels: int
    num_ws: int
    w_dim: int
    z_dim: int
    w_avg: np.ndarray  # float32 [w_dim]
    precision: str
    graphs: dict[str, Path]
    weights: Path | None
    model: dict[str, Any]
    binarize: dict[str, Any]
    provenance: dict[str, Any]
    meta: dict[str, Any] = field(repr=False)
    # W+ codes of collection drawings [N, num_ws, w_dim] float32: the idle wander's keyframes
    # when the generator's own samples are less varied than the collection (idle.md)
    idle_codes: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike, check_graphs: bool = True) -> "Bundle":
        """Read and validate a bundle folder.

        check_graphs opens each ONNX graph in an ONNX Runtime CPU session (no optimisation)
        and checks its input/output names and shapes against bundle.json; a runtime that
        opens its own sessions passes False and checks those instead (`check_session`).
        """
        folder = Path(path)
        if not folder.is_dir():
            raise BundleError(f"{folder}: no such model bundle folder (pass the folder `newsnow export` wrote)")
        meta_path = folder / BUNDLE_JSON
        if not meta_path.is_file():
            raise BundleError(f"{meta_path}: missing; a bundle folder needs its {BUNDLE_JSON} (re-export the model)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{meta_path}: not readable JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise BundleError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
        bundle = cls._from_meta(folder, meta_path, meta)
        if check_graphs:
            for name in bundle.graphs:
                check_session(bundle, name, open_check_session(bundle, name))
        return bundle

    @classmethod
    def _from_meta(cls, folder: Path, meta_path: Path, meta: dict) -> "Bundle":
        def bad(key: str, why: str) -> BundleError:
            return BundleError(f"{meta_path}: field {key!r} {why}")

        def get(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in meta:
                raise bad(key, "is missing")
            value = meta[key]
            if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
                raise bad(key, f"must be {getattr(kind, '__name__', kind)}, got {value!r:.60}")
            return value

        if meta.get("format") != BUNDLE_FORMAT:
            raise bad("format", f"is {meta.get('format')!r}, expected {BUNDLE_FORMAT!r}: not a New Snow bundle")
        if meta.get("format_version") != FORMAT_VERSION:
            raise bad("format_version", f"is {meta.get('format_version')!r}; this New Snow reads version "
                                        f"{FORMAT_VERSION}: re-export the model with this version")
        resolution = get("resolution", int)
        if problem := resolution_problem(resolution):
            raise bad("resolution", f"is {resolution}, {problem.replace('must be', 'expected')}")
        channels = get("channels", int)
        if channels not in (1, 3):
            raise bad("channels", f"is {channels}, expected 1 or 3")
        num_ws, w_dim, z_dim = get("num_ws", int), get("w_dim", int), get("z_dim", int)
        for key, value in (("num_ws", num_ws), ("w_dim", w_dim), ("z_dim", z_dim)):
            if value < 1:
                raise bad(key, f"is {value}, expected a positive integer")
        w_avg_list = get("w_avg", list)
        if len(w_avg_list) != w_dim:
            raise bad("w_avg", f"has {len(w_avg_list)} values, expected w_dim = {w_dim}")
        try:
            w_avg = np.asarray(w_avg_list, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise bad("w_avg", "must be a list of numbers") from exc
        if w_avg.ndim != 1 or not np.isfinite(w_avg).all():
            raise bad("w_avg", "must be a flat list of finite numbers")
        precision = get("precision", str)
        if precision not in PRECISIONS:
            raise bad("precision", f"is {precision!r}, expected one of {PRECISIONS}")
        graph_files = get("graphs", dict)
        graphs = {}
        for name in GRAPH_NAMES:
            if not isinstance(graph_files.get(name), str):
                raise bad("graphs", f"has no file for the {name!r} graph (needs {', '.join(GRAPH_NAMES)})")
            graphs[name] = _existing_file(folder, graph_files[name], f"the {name!r} graph")
        for name in OPTIONAL_GRAPHS:
            if graph_files.get(name) is not None:
                if not isinstance(graph_files[name], str):
                    raise bad("graphs", f"names no file for the {name!r} graph")
                graphs[name] = _existing_file(folder, graph_files[name], f"the {name!r} graph")
        weights_file = meta.get("weights")
        if weights_file is not None and not isinstance(weights_file, str):
            raise bad("weights", f"must be a file name or null, got {weights_file!r}")
        weights = _existing_file(folder, weights_file, "the weights") if weights_file else None
        model = get("model", dict)
        binarize = get("binarize", dict)
        _check_binarize(meta_path, binarize, resolution)
        provenance = get("provenance", dict)
        idle_codes = None
        if meta.get("idle") is not None:
            idle = get("idle", dict)
            if not isinstance(idle.get("codes"), str):
                raise bad("idle", "needs 'codes', the file of the idle wander's W+ codes")
            path = _existing_file(folder, idle["codes"], "the idle codes")
            try:
                idle_codes = np.load(path, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise BundleError(f"{path}: not a readable .npy file of W+ codes ({exc}); re-export the bundle") from exc
            if idle_codes.ndim != 3 or idle_codes.shape[1:] != (num_ws, w_dim) or not len(idle_codes):
                raise BundleError(f"{path}: idle codes have shape {list(idle_codes.shape)}, expected "
                                  f"[N, {num_ws}, {w_dim}]; re-export the bundle")
            if not np.isfinite(idle_codes).all():
                raise BundleError(f"{path}: idle codes are not all finite numbers; re-export the bundle")
        return cls(path=folder, resolution=resolution, channels=channels, num_ws=num_ws, w_dim=w_dim,
                   z_dim=z_dim, w_avg=w_avg, precision=precision, graphs=graphs, weights=weights,
                   model=model, binarize=binarize, provenance=provenance, meta=meta, idle_codes=idle_codes)

    def binarize_params(self):
        """The bundle's `capture.binarize.BinarizeParams` (the sketches the model was trained on)."""
        from capture.binarize import BinarizeParams

        return BinarizeParams.from_dict(self.binarize)


def _existing_file(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleError(f"{folder / BUNDLE_JSON}: {what} file {name!r} must be a name inside the bundle folder")
    if not path.is_file():
        raise BundleError(f"{path}: missing ({what} named in {BUNDLE_JSON}); re-export the bundle")
    return path


def _check_binarize(meta_path: Path, binarize: dict, resolution: int) -> None:
    try:
        from capture.binarize import BinarizeParams
    except ImportError:  # capture not installed: keep the table as given
        return
    try:
        params = BinarizeParams.from_dict(binarize)
    except ValueError as exc:
        raise BundleError(f"{meta_path}: field 'binarize': {exc}") from exc
    if params.resolution != resolution:
        raise BundleError(f"{meta_path}: field 'binarize' makes {params.resolution}px sketches but the model "
                          f"takes {resolution}px: set binarize.resolution to {resolution}")


def open_check_session(bundle: Bundle, name: str):
    """A cheap CPU session (no graph optimisation) to read a graph's IO; a corrupt file -> BundleError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return load_session(bundle, name, options, ["CPUExecutionProvider"])


def load_session(bundle: Bundle, name: str, options, providers, provider_options=None):
    """An ONNX Runtime session over one of the bundle's graphs; a file ORT cannot read -> BundleError."""
    import onnxruntime as ort

    path = bundle.graphs[name]
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers,
                                    provider_options=provider_options)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types, not a common base
        raise BundleError(f"{path}: not a valid ONNX graph for {name!r} ({type(exc).__name__}: "
                          f"{str(exc).strip()[:300]}); re-export the bundle") from exc


def check_session(bundle: Bundle, name: str, session) -> None:
    """Raise BundleError if a session's inputs/outputs differ from what bundle.json implies."""
    path = bundle.graphs[name]
    (in_name, in_shape), (out_name, out_shape) = graph_io(bundle, name)
    for kind, args, want_name, want_shape in (("input", session.get_inputs(), in_name, in_shape),
                                              ("output", session.get_outputs(), out_name, out_shape)):
        if len(args) != 1:
            raise BundleError(f"{path}: the {name!r} graph has {len(args)} {kind}s "
                              f"{[a.name for a in args]}, expected one named {want_name!r}")
        arg = args[0]
        if arg.name != want_name:
            raise BundleError(f"{path}: the {name!r} graph's {kind} is named {arg.name!r}, expected {want_name!r}")
        if arg.type != "tensor(float)":
            raise BundleError(f"{path}: the {name!r} graph's {kind} {arg.name!r} is {arg.type}, "
                              f"expected tensor(float) (bundles keep float32 IO even in fp16)")
        shape = list(arg.shape)
        fixed = [d if isinstance(d, int) else "batch" for d in shape]
        if len(shape) != len(want_shape) or fixed[1:] != want_shape[1:]:
            raise BundleError(f"{path}: the {name!r} graph's {kind} {arg.name!r} has shape {shape}, but "
                              f"{BUNDLE_JSON} implies {want_shape}")


def write_bundle_json(folder: str | os.PathLike, *, resolution: int, channels: int, num_ws: int, w_dim: int,
                      z_dim: int, w_avg, precision: str, graphs: dict[str, str], weights: str | None,
                      model: dict, binarize: dict, provenance: dict) -> Path:
    """Write bundle.json (atomically) into `folder`; the values are checked by `Bundle.load`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    w_avg = [float(v) for v in np.asarray(w_avg, dtype=np.float64).reshape(-1)]
    if any(not math.isfinite(v) for v in w_avg):
        raise BundleError(f"{folder / BUNDLE_JSON}: w_avg has non-finite values; the generator diverged")
    meta = {
        "format": BUNDLE_FORMAT,
        "format_version": FORMAT_VERSION,
        "resolution": int(resolution),
        "channels": int(channels),
        "num_ws": int(num_ws),
        "w_dim": int(w_dim),
        "z_dim": int(z_dim),
        "precision": precision,
        "graphs": dict(graphs),
        "weights": weights,
        "model": model,
        "binarize": binarize,
        "provenance": provenance,
        "w_avg": w_avg,
    }
    return atomic_write_json(folder / BUNDLE_JSON, meta)
