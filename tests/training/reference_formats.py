"""Files in the reference formats, written by the tests themselves (no published file can
be downloaded here): rosinality stylegan2-pytorch state dicts, NVlabs stylegan2-ada-pytorch
network pickles (persistent objects, pickled through stand-ins of NVlabs' modules) and
pSp / e4e training checkpoints. Names, shapes and pickling conventions follow the
reference code; widths are small so that the tests stay fast.
"""
import math
import pickle
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn

from inference.networks import Generator

KERNEL = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0]))


def fir_generator(resolution=32, channels=3, conv_clamp=None, seed=0):
    torch.manual_seed(seed)
    g = Generator(resolution, channels=channels, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
                  channel_max=16, conv_clamp=conv_clamp, resample="fir").eval()
    with torch.no_grad():  # trained-looking values: noise on, biases and w_avg not zero
        for name, p in g.named_parameters():
            if name.endswith(("noise_strength", "bias")) and "affine" not in name:
                p.copy_(torch.randn_like(p) * 0.3)
        g.mapping.w_avg.copy_(torch.randn(16) * 0.2)
    return g


def images(g, ws):
    with torch.no_grad():
        return g.synthesis(ws, noise_mode="const")


def codes(g, n=2, seed=1):
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = g.mapping(z)
    return ws + 0.3 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(seed + 1))  # true W+ codes


# ---------------------------------------------------------------------------------------
# rosinality: names and shapes of stylegan2-pytorch's Generator.state_dict()

def rosinality_state(g: Generator) -> dict:
    sd = g.state_dict()
    out = {}
    for i in range(g.init_kwargs["mapping_layers"]):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.layers.{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.layers.{i}.bias"]

    def styled(src, dst, noise):
        out[f"{dst}.conv.weight"] = sd[f"{src}.conv.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.conv.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.conv.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[noise] = sd[f"{src}.noise_const"][None, None]

    def to_rgb(src, dst):
        out[f"{dst}.conv.weight"] = sd[f"{src}.conv.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.conv.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.conv.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)

    out["input.input"] = sd["synthesis.blocks.0.const"][None]
    styled("synthesis.blocks.0.conv1", "conv1", "noises.noise_0")
    to_rgb("synthesis.blocks.0.torgb", "to_rgb1")
    for b in range(1, len(g.synthesis.blocks)):
        styled(f"synthesis.blocks.{b}.conv0", f"convs.{2 * b - 2}", f"noises.noise_{2 * b - 1}")
        styled(f"synthesis.blocks.{b}.conv1", f"convs.{2 * b - 1}", f"noises.noise_{2 * b}")
        to_rgb(f"synthesis.blocks.{b}.torgb", f"to_rgbs.{b - 1}")
        out[f"convs.{2 * b - 2}.conv.blur.kernel"] = KERNEL / 16
        out[f"to_rgbs.{b - 1}.upsample.kernel"] = KERNEL / 16
    return {k: v.clone() for k, v in out.items()}


def _upfirdn(x, kernel, up, pad0, pad1):
    """upfirdn2d as the formats define it: insert up-1 zeros after each sample, pad, convolve."""
    if up > 1:
        y = x.new_zeros(x.shape[0], x.shape[1], x.shape[2] * up, x.shape[3] * up)
        y[..., ::up, ::up] = x
        x = y
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    return F.conv2d(x, kernel.flip([0, 1]).expand(x.shape[1], 1, *kernel.shape), groups=x.shape[1])


def rosinality_reference(sd: dict, ws: torch.Tensor) -> torch.Tensor:
    """Images of a rosinality state dict for W+ codes, fixed noise (randomize_noise=False)."""
    def modulated(x, prefix, w, demodulate, up=False):
        weight = sd[f"{prefix}.conv.weight"][0]  # [O, I, k, k]
        mod_w, mod_b = sd[f"{prefix}.conv.modulation.weight"], sd[f"{prefix}.conv.modulation.bias"]
        style = w @ (mod_w / math.sqrt(mod_w.shape[1])).t() + mod_b
        k = weight.shape[-1]
        out = []
        for i in range(len(x)):
            wi = weight / math.sqrt(weight.shape[1] * k * k) * style[i][None, :, None, None]
            if demodulate:
                wi = wi * (wi.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
            if up:
                y = F.conv_transpose2d(x[i:i + 1], wi.transpose(0, 1), stride=2)
                out.append(_upfirdn(y, KERNEL / 16, 1, 1, 1))
            else:
                out.append(F.conv2d(x[i:i + 1], wi, padding=k // 2))
        return torch.cat(out)

    def styled(x, prefix, w, noise, up=False):
        x = modulated(x, prefix, w, True, up) + sd[f"{prefix}.noise.weight"] * sd[noise]
        return F.leaky_relu(x + sd[f"{prefix}.activate.bias"][None, :, None, None], 0.2) * math.sqrt(2)

    x = sd["input.input"].repeat(len(ws), 1, 1, 1)
    x = styled(x, "conv1", ws[:, 0], "noises.noise_0")
    skip = modulated(x, "to_rgb1", ws[:, 1], False) + sd["to_rgb1.bias"]
    n_up = len([k for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight")])
    for b in range(1, n_up + 1):
        i = 2 * b - 1
        x = styled(x, f"convs.{2 * b - 2}", ws[:, i], f"noises.noise_{2 * b - 1}", up=True)
        x = styled(x, f"convs.{2 * b - 1}", ws[:, i + 1], f"noises.noise_{2 * b}")
        rgb = modulated(x, f"to_rgbs.{b - 1}", ws[:, i + 2], False) + sd[f"to_rgbs.{b - 1}.bias"]
        skip = rgb + _upfirdn(skip, KERNEL / 16, 2, 2, 1)
    return skip


def install_nvlabs_stand_ins(monkeypatch):
    """Stand-ins for torch_utils.persistence and dnnlib.util, so pickle writes the same globals
    NVlabs' code does; returns (persistence module, EasyDict class)."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # what NVlabs' unpickling would call
        raise AssertionError("the loader must not call NVlabs' reconstruction")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    easydict = type("EasyDict", (dict,), {"__module__": "dnnlib.util", "__qualname__": "EasyDict"})
    util.EasyDict = easydict
    for name, module in {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                         "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return persistence, easydict


class Persistent(nn.Module):
    """Pickles as NVlabs' persistent classes do: _reconstruct_persistent_obj(meta with __dict__)."""

    def __init__(self, class_name, params=(), buffers=(), children=(), **attrs):
        super().__init__()
        self.nv_class = class_name
        for name, value in params:
            self.register_parameter(name, nn.Parameter(value.clone()))
        for name, value in buffers:
            self.register_buffer(name, value.clone())
        for name, child in children:
            self.add_module(name, child)
        self.__dict__.update(attrs)

    def __reduce__(self):
        reconstruct = sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj
        return reconstruct, (dict(type="class", version=6, module_src="# networks.py (not run)",
                                  class_name=self.nv_class, state=dict(self.__dict__)),)


def nvlabs_g_ema(g: Generator, easydict) -> Persistent:
    sd = g.state_dict()
    kw = g.init_kwargs
    lr = kw["mapping_lr_multiplier"]
    filt = KERNEL / 64

    def fc(prefix, activation="linear", lr_multiplier=1.0):
        w = sd[f"{prefix}.weight"]
        return Persistent("FullyConnectedLayer", [("weight", w), ("bias", sd[f"{prefix}.bias"])],
                          activation=activation, weight_gain=lr_multiplier / math.sqrt(w.shape[1]),
                          bias_gain=lr_multiplier)

    mapping = Persistent("MappingNetwork", buffers=[("w_avg", sd["mapping.w_avg"])],
                         children=[(f"fc{i}", fc(f"mapping.layers.{i}", "lrelu", lr))
                                   for i in range(kw["mapping_layers"])],
                         z_dim=kw["z_dim"], c_dim=0, w_dim=kw["w_dim"], num_ws=g.num_ws,
                         num_layers=kw["mapping_layers"], w_avg_beta=kw["w_avg_beta"])
    blocks = []
    for b, block in enumerate(g.synthesis.blocks):
        p, r = f"synthesis.blocks.{b}", block.resolution
        children = []
        for conv in (["conv0"] if b else []) + ["conv1"]:
            children.append((conv, Persistent(
                "SynthesisLayer",
                [("weight", sd[f"{p}.{conv}.conv.weight"]), ("noise_strength", sd[f"{p}.{conv}.noise_strength"]),
                 ("bias", sd[f"{p}.{conv}.bias"])],
                [("resample_filter", filt), ("noise_const", sd[f"{p}.{conv}.noise_const"])],
                [("affine", fc(f"{p}.{conv}.conv.affine"))],
                resolution=r, up=2 if conv == "conv0" else 1, use_noise=True, activation="lrelu",
                conv_clamp=kw["conv_clamp"])))
        children.append(("torgb", Persistent(
            "ToRGBLayer", [("weight", sd[f"{p}.torgb.conv.weight"]), ("bias", sd[f"{p}.torgb.bias"])],
            children=[("affine", fc(f"{p}.torgb.conv.affine"))], conv_clamp=kw["conv_clamp"])))
        blocks.append((f"b{r}", Persistent(
            "SynthesisBlock", [("const", sd[f"{p}.const"])] if b == 0 else [], [("resample_filter", filt)],
            children, resolution=r, architecture="skip", is_last=b == len(g.synthesis.blocks) - 1)))
    synthesis = Persistent("SynthesisNetwork", children=blocks, img_resolution=g.resolution,
                           img_channels=g.channels, num_ws=g.num_ws)
    return Persistent("Generator", children=[("synthesis", synthesis), ("mapping", mapping)],
                      z_dim=kw["z_dim"], c_dim=0, w_dim=kw["w_dim"], img_resolution=g.resolution,
                      img_channels=g.channels, num_ws=g.num_ws,
                      _init_kwargs=dict(z_dim=kw["z_dim"], c_dim=0, w_dim=kw["w_dim"],
                                        img_resolution=g.resolution, img_channels=g.channels,
                                        mapping_kwargs=easydict(num_layers=kw["mapping_layers"]),
                                        synthesis_kwargs=easydict(channel_base=kw["channel_base"],
                                                                  conv_clamp=kw["conv_clamp"])))


def write_nvlabs_pickle(path, g, easydict, **extra):
    g_ema = nvlabs_g_ema(g, easydict)
    record = dict(G=g_ema, D=Persistent("Discriminator"), G_ema=g_ema, augment_pipe=None,
                  training_set_kwargs=easydict(path="faces.zip", resolution=g.resolution), **extra)
    with open(path, "wb") as f:
        pickle.dump(record, f)


