"""NVlabs stylegan2-ada-pytorch network pickles (`.pkl`) as the project's generator.

The file is a pickle of a dict {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
whose networks are NVlabs "persistent" classes: each pickles as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, meta holding the source code
of networks.py, the class name and the module's `__dict__` (parameters, buffers,
submodules, attributes such as conv_clamp). Unpickling it normally would exec that source.
Here a restricted Unpickler maps that call (and dnnlib's EasyDict) to inert stand-ins and
allows nothing else but containers, tensors and numpy arrays: the source is never run and
NVlabs' code need not be on the path.

Names (G_ema, skip architecture, r = 4 .. R, block index b = log2(r) - 2):

    mapping.fc{i}.weight, .bias              -> mapping.layers.{i}.weight, .bias
    mapping.w_avg                            -> mapping.w_avg
    synthesis.b{r}.const                     -> synthesis.blocks.{b}.const
    synthesis.b{r}.conv0|conv1.affine.*      -> ....conv0|conv1.conv.affine.*
    synthesis.b{r}.conv0|conv1.weight        -> ....conv.weight
    ...noise_const, noise_strength, bias     -> the same names
    synthesis.b{r}.torgb.affine.*, .weight   -> ....torgb.conv.affine.*, .conv.weight
    synthesis.b{r}.torgb.bias                -> ....torgb.bias

conv_clamp (256 in NVlabs' training configs) and the mapping's lr multiplier are read
from the pickled attributes. fp16 blocks (num_fp16_res) run in fp32 on the CPU, as NVlabs'
own networks do with force_fp32.
"""
from __future__ import annotations

import collections
import io
import pickle
import re
from pathlib import Path

import numpy as np
import torch

try:  # numpy >= 2 (numpy.core is its deprecated alias)
    from numpy._core import multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray

from training.editing.stylegan_state import (
    CheckpointFormatError, LoadedGenerator, StateReader, build_generator, channel_schedule,
)

# NVlabs' setup_filter([1, 3, 3, 1]): the 4x4 outer product normalised to sum 1 (the gain
# of 4 is applied at use), the buffer of every block and layer
RESAMPLE_FILTER = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])) / 64.0


class PickledModule:
    """Stand-in for one NVlabs persistent object: its class name and pickled `__dict__`."""

    def __init__(self, meta: dict):
        self.class_name = str(meta.get("class_name"))
        self.state = dict(meta.get("state") or {})

    def attr(self, name: str, default=None):
        return self.state.get(name, default)

    def child(self, name: str):
        return (self.state.get("_modules") or {}).get(name)

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers by dotted name, as nn.Module.state_dict gives them."""
        out = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for key in ("_parameters", "_buffers"):
            for name, value in (self.state.get(key) or {}).items():
                if value is not None and name not in skip:
                    out[prefix + name] = value
        for name, module in (self.state.get("_modules") or {}).items():
            if isinstance(module, PickledModule):
                out.update(module.state_dict(f"{prefix}{name}."))
        return out


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict with attribute access): kept as a dict."""


def _load_storage(data: bytes):
    # torch pickles a storage as torch.save bytes; read them without running code either
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PickledModule,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    # numpy arrays and scalars (e.g. in training_set_kwargs), under numpy 1.x and 2.x names
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): multiarray.scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in _ALLOWED (and torch dtypes); anything else is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a stylegan2-ada network pickle "
                                     f"does not hold")


WANTED = "the network-snapshot .pkl that stylegan2-ada-pytorch's training wrote"


def read_network_pickle(path: Path) -> dict:
    """The pickle's networks as {'G_ema': ...}; a bare pickled G_ema (pickle.dump(G_ema)) counts."""
    from inference.model_files import describe

    try:
        with open(path, "rb") as f:
            data = RestrictedUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("it refers to"):  # RestrictedUnpickler's refusal of a global
            raise CheckpointFormatError(f"{path}: a pickle that {exc}; New Snow never runs a file's code: pass "
                                        f"{WANTED}") from None
        raise _incomplete(path) from None  # "pickle data was truncated" and the like
    except EOFError:
        raise _incomplete(path) from None
    except (ValueError, TypeError, AttributeError, RuntimeError, IndexError, KeyError) as exc:
        raise CheckpointFormatError(f"{path}: a damaged pickle ({type(exc).__name__} while reading it); "
                                    f"copy it again") from None
    except OSError as exc:
        raise CheckpointFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if isinstance(data, PickledModule):
        if data.class_name != "Generator":
            raise CheckpointFormatError(f"{path}: a pickled NVlabs {data.class_name}, not a Generator; pass {WANTED}")
        data = {"G_ema": data}
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PickledModule):
        raise CheckpointFormatError(f"{path}: a pickle holding {describe(data)}: no 'G_ema' network; pass {WANTED}")
    return data


def _incomplete(path: Path) -> CheckpointFormatError:
    return CheckpointFormatError(f"{path}: an incomplete pickle (it ends after {path.stat().st_size} bytes, "
                                 f"mid-network): the download or copy was cut short; copy it again")


def is_stylegan3(synthesis: PickledModule) -> bool:
    """StyleGAN3's SynthesisNetwork (also so named) starts from a Fourier-feature `input` layer."""
    return synthesis.child("input") is not None or any(
        re.fullmatch(r"L\d+_\d+_\d+", name) for name in (synthesis.attr("_modules") or {}))


def _block_resolutions(path: Path, synthesis: PickledModule) -> list[int]:
    names = [name for name in (synthesis.attr("_modules") or {}) if re.fullmatch(r"b\d+", name)]
    resolutions = sorted(int(name[1:]) for name in names)
    expected = [2 ** i for i in range(2, len(resolutions) + 2)]
    if resolutions != expected:
        raise CheckpointFormatError(f"{path}: G_ema.synthesis has blocks {resolutions}, expected {expected}")
    return resolutions


def load_stylegan2_ada(path: str | Path, data: dict | None = None) -> LoadedGenerator:
    """data: the pickle as `read_network_pickle` gives it, when already read."""
    path = Path(path)
    G = (data if data is not None else read_network_pickle(path))["G_ema"]
    mapping, synthesis = G.child("mapping"), G.child("synthesis")
    if G.class_name != "Generator" or not isinstance(mapping, PickledModule) or not isinstance(synthesis, PickledModule):
        raise CheckpointFormatError(f"{path}: its G_ema is an NVlabs {G.class_name} without mapping and synthesis "
                                    f"networks, not a StyleGAN2 generator; pass {WANTED}")
    if is_stylegan3(synthesis):
        raise CheckpointFormatError(f"{path}: a StyleGAN3 generator (alias-free layers from a Fourier-feature "
                                    f"input); the table runs StyleGAN2 networks: train with stylegan3's "
                                    f"--cfg=stylegan2 or with stylegan2-ada-pytorch")
    if synthesis.class_name != "SynthesisNetwork":
        raise CheckpointFormatError(f"{path}: its G_ema.synthesis is an NVlabs {synthesis.class_name}, not "
                                    f"StyleGAN2's SynthesisNetwork; pass {WANTED}")
    if int(G.attr("c_dim", 0) or 0) > 0:
        raise CheckpointFormatError(f"{path}: a class-conditional generator (c_dim={G.attr('c_dim')}); only "
                                    f"unconditional ones are supported")
    resolutions = _block_resolutions(path, synthesis)
    reader = StateReader(path, G.state_dict(), "stylegan2-ada G_ema")
    take, tensors = reader.take, reader.tensors
    layers = sorted(int(m.group(1)) for k in reader.state if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    for i in range(max(layers, default=-1) + 1):
        take(f"mapping.fc{i}.weight", f"mapping.layers.{i}.weight")
        take(f"mapping.fc{i}.bias", f"mapping.layers.{i}.bias")
    take("mapping.w_avg", "mapping.w_avg")
    widths, conv_clamp = {}, None
    for b, r in enumerate(resolutions):
        block = synthesis.child(f"b{r}")
        if block.attr("architecture", "skip") != "skip":
            raise CheckpointFormatError(f"{path}: synthesis.b{r} has the {block.attr('architecture')!r} "
                                        f"architecture; only 'skip' (NVlabs' default for G) is supported")
        source, target = f"synthesis.b{r}", f"synthesis.blocks.{b}"
        if b == 0:
            take(f"{source}.const", f"{target}.const")
        reader.check_filter(f"{source}.resample_filter", RESAMPLE_FILTER)
        for conv in ((["conv0"] if b else []) + ["conv1"]):
            layer = block.child(conv)
            weight = take(f"{source}.{conv}.weight", f"{target}.{conv}.conv.weight")
            take(f"{source}.{conv}.affine.weight", f"{target}.{conv}.conv.affine.weight")
            take(f"{source}.{conv}.affine.bias", f"{target}.{conv}.conv.affine.bias")
            take(f"{source}.{conv}.bias", f"{target}.{conv}.bias")
            reader.check_filter(f"{source}.{conv}.resample_filter", RESAMPLE_FILTER)
            if layer is not None and layer.attr("use_noise", True):
                take(f"{source}.{conv}.noise_const", f"{target}.{conv}.noise_const")
                take(f"{source}.{conv}.noise_strength", f"{target}.{conv}.noise_strength")
            else:  # a layer built without noise adds none: strength 0
                tensors[f"{target}.{conv}.noise_const"] = ("(no noise)", torch.zeros(r, r))
                tensors[f"{target}.{conv}.noise_strength"] = ("(no noise)", torch.zeros([]))
            if layer is not None and weight is not None:
                widths[r] = int(weight.shape[0])
                conv_clamp = layer.attr("conv_clamp")
        take(f"{source}.torgb.weight", f"{target}.torgb.conv.weight")
        take(f"{source}.torgb.affine.weight", f"{target}.torgb.conv.affine.weight")
        take(f"{source}.torgb.affine.bias", f"{target}.torgb.conv.affine.bias")
        take(f"{source}.torgb.bias", f"{target}.torgb.bias")
    reader.finish()
    if not layers:
        raise CheckpointFormatError(f"{path}: G_ema.mapping has no fc layers")
    fc0 = mapping.child("fc0")
    channel_base, channel_max = channel_schedule(path, widths)
    w_dim = int(reader.state["mapping.w_avg"].shape[0])
    generator = build_generator(path, dict(
        resolution=resolutions[-1], channels=int(reader.state[f"synthesis.b{resolutions[-1]}.torgb.weight"].shape[0]),
        z_dim=int(reader.state["mapping.fc0.weight"].shape[1]), w_dim=w_dim, mapping_layers=len(layers),
        channel_base=channel_base, channel_max=channel_max,
        mapping_lr_multiplier=float(fc0.attr("bias_gain", 0.01)) if fc0 is not None else 0.01,
        w_avg_beta=float(mapping.attr("w_avg_beta", 0.995) or 0.995),
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
    ), tensors)
    return LoadedGenerator(generator, path, "stylegan2-ada", "the pickle's tracked w_avg")
