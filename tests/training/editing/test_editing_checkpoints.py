"""Published StyleGAN2 checkpoints load into the project's generator and draw the same images.

The files are written here in the two formats (rosinality's `.pt` state dict names and
shapes; NVlabs' persistent-object pickle, made with stand-ins for NVlabs' modules), from
a random project generator. The rosinality images are also computed by an independent
forward pass written from that format's definition (upfirdn2d with zero insertion and
padding, per-sample modulated weights), so the 'fir' networks are checked against the
format, not only against themselves.
"""
import argparse
import math
import pickle
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inference.networks import Generator
from training.editing.checkpoints import CheckpointFormatError, load_stylegan

torch.set_num_threads(1)
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


@pytest.mark.parametrize("resolution", [16, 32])
def test_rosinality_checkpoint_draws_the_saved_networks_images(tmp_path, resolution):
    """A g_ema .pt (training-snapshot layout, with argparse args and latent_avg) loads into a
    Generator whose images equal the saved network's and the format's own forward pass."""
    g = fir_generator(resolution)
    sd = rosinality_state(g)
    path = tmp_path / "550000.pt"
    latent_avg = torch.randn(1, 16)
    torch.save({"g_ema": sd, "g": sd, "d": {}, "args": argparse.Namespace(size=resolution),
                "latent_avg": latent_avg}, path)
    loaded = load_stylegan(path)
    assert loaded.format == "rosinality" and loaded.generator.resolution == resolution
    assert loaded.generator.num_ws == g.num_ws and loaded.generator.channels == 3
    ws = codes(g)
    ours, saved = images(loaded.generator, ws), images(g, ws)
    assert torch.allclose(ours, saved, atol=1e-6), (ours - saved).abs().max()
    reference = rosinality_reference(sd, ws)
    assert torch.allclose(ours, reference, atol=1e-4), (ours - reference).abs().max()
    assert torch.allclose(loaded.generator.w_avg, latent_avg[0]) and "latent_avg" in loaded.w_avg_source
    z = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.generator.mapping(z), g.mapping(z), atol=1e-6)


def test_the_bilinear_networks_would_not_draw_them(tmp_path):
    """The check above can fail: the table's own (bilinear) upsampling gives other images."""
    g = fir_generator()
    bilinear = Generator(**{**g.init_kwargs, "resample": "bilinear"}).eval()
    bilinear.load_state_dict(g.state_dict())
    ws = codes(g)
    assert (images(bilinear, ws) - rosinality_reference(rosinality_state(g), ws)).abs().max() > 1e-2


def test_pSp_checkpoint_and_missing_latent_avg(tmp_path):
    """pSp/e4e keep the generator as state_dict['decoder.*']; without latent_avg, w_avg is the mean mapped z."""
    g = fir_generator()
    path = tmp_path / "psp.pt"
    torch.save({"state_dict": {**{f"decoder.{k}": v for k, v in rosinality_state(g).items()},
                               "encoder.input_layer.0.weight": torch.zeros(1)}, "opts": {"stylegan_size": 32}}, path)
    loaded = load_stylegan(path)
    ws = codes(g)
    assert torch.allclose(images(loaded.generator, ws), images(g, ws), atol=1e-6)
    with torch.no_grad():
        mean = g.mapping(torch.randn(20000, 16))[:, 0].mean(0)
    assert (loaded.generator.w_avg - mean).abs().max() < 0.05 and "mean of 10000" in loaded.w_avg_source


def test_partial_and_unknown_rosinality_files_are_refused_by_name(tmp_path):
    g = fir_generator()
    sd = rosinality_state(g)
    partial = {k: v for k, v in sd.items() if k not in ("convs.3.conv.weight", "noises.noise_2")}
    torch.save({"g_ema": partial}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointFormatError, match=r"missing noises\.noise_2, convs\.3\.conv\.weight;"):
        load_stylegan(tmp_path / "partial.pt")
    torch.save({"g_ema": {**sd, "convs.0.conv.extra": torch.zeros(1)}}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointFormatError, match=r"does not know .*convs\.0\.conv\.extra"):
        load_stylegan(tmp_path / "extra.pt")
    torch.save({"model": sd}, tmp_path / "other.pt")
    with pytest.raises(CheckpointFormatError, match="no 'g_ema'"):
        load_stylegan(tmp_path / "other.pt")
    bad = dict(sd, **{"convs.0.conv.blur.kernel": torch.ones(4, 4) / 16})
    torch.save({"g_ema": bad}, tmp_path / "blur.pt")
    with pytest.raises(CheckpointFormatError, match=r"convs\.0\.conv\.blur\.kernel is not the \[1, 3, 3, 1\]"):
        load_stylegan(tmp_path / "blur.pt")
    with pytest.raises(CheckpointFormatError, match="no such file"):
        load_stylegan(tmp_path / "absent.pt")


def test_channel_widths_the_networks_cannot_hold_are_refused(tmp_path):
    """rosinality channel_multiplier 4 at 64 px (1024 wide above 512 ones) is not min(base / r, max)."""
    from training.editing.stylegan_state import channel_schedule

    assert channel_schedule(tmp_path, {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256}) == (32768, 512)
    assert channel_schedule(tmp_path, {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128}) == (16384, 512)
    with pytest.raises(CheckpointFormatError, match="not min"):
        channel_schedule(tmp_path, {4: 512, 8: 512, 16: 512, 32: 512, 64: 1024})


# ---------------------------------------------------------------------------------------
# NVlabs stylegan2-ada-pytorch: a pickle of persistent objects, written with stand-ins


@pytest.fixture
def nvlabs_modules(monkeypatch):
    """Stand-ins for torch_utils.persistence and dnnlib.util, so pickle writes the same globals."""
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


@pytest.mark.parametrize("channels,conv_clamp", [(3, None), (1, 0.5)])
def test_stylegan2_ada_pickle_draws_the_saved_networks_images(tmp_path, nvlabs_modules, channels, conv_clamp):
    """A network-snapshot .pkl loads without NVlabs' code; images (with conv_clamp read from the
    pickle: 0.5 clamps hard, so a lost clamp shows) equal the saved network's; w_avg is the pickle's."""
    _, easydict = nvlabs_modules
    g = fir_generator(channels=channels, conv_clamp=conv_clamp)
    path = tmp_path / "network-snapshot-000100.pkl"
    write_nvlabs_pickle(path, g, easydict)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        del sys.modules[name]  # the loader must not need them
    loaded = load_stylegan(path)
    assert loaded.format == "stylegan2-ada" and loaded.generator.init_kwargs["conv_clamp"] == conv_clamp
    ws = codes(g)
    assert torch.allclose(images(loaded.generator, ws), images(g, ws), atol=1e-6)
    assert torch.equal(loaded.generator.w_avg, g.w_avg)
    if conv_clamp is not None:
        unclamped = Generator(**{**g.init_kwargs, "conv_clamp": None}).eval()
        unclamped.load_state_dict(g.state_dict())
        assert (images(unclamped, ws) - images(g, ws)).abs().max() > 1e-2


def test_stylegan2_ada_pickle_refusals(tmp_path, nvlabs_modules):
    """Code in a pickle is never run; a partial G_ema is named; a pickle without G_ema is refused."""
    _, easydict = nvlabs_modules
    evil = tmp_path / "evil.pkl"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    with open(evil, "wb") as f:
        pickle.dump({"G_ema": Evil()}, f)
    with pytest.raises(CheckpointFormatError, match=r"refers to (posix|os)\.system"):
        load_stylegan(evil)
    assert not marker.exists()

    g = fir_generator()
    g_ema = nvlabs_g_ema(g, easydict)
    del g_ema.synthesis.b16.conv1._parameters["weight"]
    del g_ema.mapping.fc1._parameters["bias"]
    with open(tmp_path / "partial.pkl", "wb") as f:
        pickle.dump({"G_ema": g_ema}, f)
    with pytest.raises(CheckpointFormatError, match=r"missing mapping\.fc1\.bias, synthesis\.b16\.conv1\.weight"):
        load_stylegan(tmp_path / "partial.pkl")
    with open(tmp_path / "d.pkl", "wb") as f:
        pickle.dump({"D": Persistent("Discriminator")}, f)
    with pytest.raises(CheckpointFormatError, match="no 'G_ema'"):
        load_stylegan(tmp_path / "d.pkl")
