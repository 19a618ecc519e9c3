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




# ---------------------------------------------------------------------------------------
# pSp / e4e: coach.py's {'state_dict': net.state_dict(), 'opts': vars(opts), 'latent_avg': ...}
# with the encoder under encoder.* (IR-SE50 names) and the rosinality generator under decoder.*

IRSE50_UNITS = (3, 4, 14, 3)  # pSp taps the ends of units 6, 20 and 23
SMALL_WIDTHS = (16, 32, 48, 64)  # IR-SE50's are (64, 128, 256, 512)


def _batch_norm_state(prefix: str, channels: int, gen: torch.Generator) -> dict:
    return {f"{prefix}.weight": 1 + 0.1 * torch.randn(channels, generator=gen),
            f"{prefix}.bias": 0.1 * torch.randn(channels, generator=gen),
            f"{prefix}.running_mean": 0.1 * torch.randn(channels, generator=gen),
            f"{prefix}.running_var": 0.5 + torch.rand(channels, generator=gen),
            f"{prefix}.num_batches_tracked": torch.tensor(1000)}


def psp_encoder_state(kind: str = "psp", input_nc: int = 1, num_styles: int = 10, w_dim: int = 32,
                      widths=SMALL_WIDTHS, seed: int = 0) -> dict:
    """The encoder's state dict with pSp's / e4e's names and shapes, random trained-looking values
    (He-scaled convs, batch norm statistics away from 0 and 1). kind: 'psp', 'e4e' (the same
    tensors) or 'psp-w' (BackboneEncoderUsingLastLayerIntoW: `linear` instead of the styles)."""
    gen = torch.Generator().manual_seed(seed)

    def conv(out_ch, in_ch, k, gain=1.0):
        return torch.randn(out_ch, in_ch, k, k, generator=gen) * gain * math.sqrt(2 / (in_ch * k * k))

    sd = {"input_layer.0.weight": conv(widths[0], input_nc, 3),
          **_batch_norm_state("input_layer.1", widths[0], gen),
          "input_layer.2.weight": 0.25 + 0.05 * torch.randn(widths[0], generator=gen)}
    i, ch = 0, widths[0]
    for depth, count in zip(widths, IRSE50_UNITS):
        for _ in range(count):
            p = f"body.{i}"
            sd.update(_batch_norm_state(f"{p}.res_layer.0", ch, gen))
            sd[f"{p}.res_layer.1.weight"] = conv(depth, ch, 3)
            sd[f"{p}.res_layer.2.weight"] = 0.25 + 0.05 * torch.randn(depth, generator=gen)
            sd[f"{p}.res_layer.3.weight"] = conv(depth, depth, 3, gain=0.3)
            sd.update(_batch_norm_state(f"{p}.res_layer.4", depth, gen))
            sd[f"{p}.res_layer.5.fc1.weight"] = conv(depth // 16, depth, 1)
            sd[f"{p}.res_layer.5.fc2.weight"] = conv(depth, depth // 16, 1)
            if ch != depth:
                sd[f"{p}.shortcut_layer.0.weight"] = conv(depth, ch, 1)
                sd.update(_batch_norm_state(f"{p}.shortcut_layer.1", depth, gen))
            i, ch = i + 1, depth
    if kind == "psp-w":
        sd["linear.weight"] = torch.randn(w_dim, widths[3], generator=gen)
        sd["linear.bias"] = 0.1 * torch.randn(w_dim, generator=gen)
        return sd
    for j in range(num_styles):
        spatial = 16 if j < 3 else 32 if j < 7 else 64
        in_ch = widths[3]
        for k in range(int(math.log2(spatial))):
            sd[f"styles.{j}.convs.{2 * k}.weight"] = conv(w_dim, in_ch, 3)
            sd[f"styles.{j}.convs.{2 * k}.bias"] = 0.1 * torch.randn(w_dim, generator=gen)
            in_ch = w_dim
        sd[f"styles.{j}.linear.weight"] = torch.randn(w_dim, w_dim, generator=gen)
        sd[f"styles.{j}.linear.bias"] = 0.1 * torch.randn(w_dim, generator=gen)
    for name, lateral in (("latlayer1", widths[2]), ("latlayer2", widths[1])):
        sd[f"{name}.weight"] = conv(widths[3], lateral, 1)
        sd[f"{name}.bias"] = 0.1 * torch.randn(widths[3], generator=gen)
    return sd


def psp_opts(kind: str, output_size: int, input_nc: int = 1, **changes) -> dict:
    """vars(opts) as pSp's / e4e's train.py leave them (a subset of their many options)."""
    if kind == "e4e":
        opts = dict(exp_dir="experiments/e4e", dataset_type="ffhq_encode", encoder_type="Encoder4Editing",
                    batch_size=8, lpips_lambda=0.8, id_lambda=0.1, l2_lambda=1.0, w_discriminator_lambda=0.1,
                    stylegan_size=output_size, stylegan_weights="pretrained_models/stylegan2-ffhq-config-f.pt",
                    start_from_latent_avg=True, progressive_steps=[0, 3000], delta_norm=2, device="cuda:0",
                    checkpoint_path=None, max_steps=200000)
    else:
        opts = dict(exp_dir="experiments/sketch", dataset_type="celebs_sketch_to_face",
                    encoder_type="BackboneEncoderUsingLastLayerIntoW" if kind == "psp-w" else "GradualStyleEncoder",
                    input_nc=input_nc, label_nc=0, output_size=output_size, batch_size=8, learning_rate=0.0001,
                    optim_name="ranger", train_decoder=False, start_from_latent_avg=True,
                    learn_in_w=kind == "psp-w", lpips_lambda=0.8, id_lambda=0.0, l2_lambda=1.0,
                    w_norm_lambda=0.005, stylegan_weights="pretrained_models/stylegan2-ffhq-config-f.pt",
                    checkpoint_path=None, max_steps=500000, device="cuda:0")
    opts.update(changes)
    return opts


def write_psp_checkpoint(path, g: Generator, kind: str = "psp", input_nc: int = 1, latent_avg=None,
                         opts: dict | None = None, seed: int = 0) -> dict:
    """A pSp/e4e checkpoint of generator g and a random encoder; returns the encoder's state dict."""
    encoder = psp_encoder_state(kind, input_nc, g.num_ws, g.w_dim, seed=seed)
    state = {**{f"encoder.{k}": v for k, v in encoder.items()},
             **{f"decoder.{k}": v for k, v in rosinality_state(g).items()}}
    record = {"state_dict": state, "opts": opts if opts is not None else psp_opts(kind, g.resolution, input_nc)}
    if latent_avg is not None:
        record["latent_avg"] = latent_avg
    torch.save(record, path)
    return encoder


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        training=False, eps=1e-5)


def psp_reference_codes(sd: dict, x: torch.Tensor, kind: str = "psp") -> torch.Tensor:
    """The encoder's output (before latent_avg) computed from the state dict as pSp's and e4e's
    forward define it, for an input already at the original's range and size."""
    x = F.prelu(_bn(F.conv2d(x, sd["input_layer.0.weight"], padding=1), sd, "input_layer.1"),
                sd["input_layer.2.weight"])
    taps = {}
    for i in range(sum(IRSE50_UNITS)):
        p = f"body.{i}"
        w1 = sd[f"{p}.res_layer.1.weight"]
        stride = 2 if i in (0, 3, 7, 21) else 1  # each get_block's first unit strides
        r = F.prelu(F.conv2d(_bn(x, sd, f"{p}.res_layer.0"), w1, padding=1), sd[f"{p}.res_layer.2.weight"])
        r = _bn(F.conv2d(r, sd[f"{p}.res_layer.3.weight"], stride=stride, padding=1), sd, f"{p}.res_layer.4")
        gate = F.adaptive_avg_pool2d(r, 1)
        gate = torch.sigmoid(F.conv2d(F.relu(F.conv2d(gate, sd[f"{p}.res_layer.5.fc1.weight"])),
                                      sd[f"{p}.res_layer.5.fc2.weight"]))
        if f"{p}.shortcut_layer.0.weight" in sd:
            shortcut = _bn(F.conv2d(x, sd[f"{p}.shortcut_layer.0.weight"], stride=stride), sd, f"{p}.shortcut_layer.1")
        else:
            shortcut = F.max_pool2d(x, 1, stride)
        x = r * gate + shortcut
        if i in (6, 20, 23):
            taps[i] = x
    c1, c2, c3 = taps[6], taps[20], taps[23]
    if kind == "psp-w":
        w = F.adaptive_avg_pool2d(c3, 1).flatten(1)
        return F.linear(w, sd["linear.weight"] / math.sqrt(w.shape[1]), sd["linear.bias"])

    def style(j, feat):
        k = 0
        while f"styles.{j}.convs.{2 * k}.weight" in sd:
            feat = F.leaky_relu(F.conv2d(feat, sd[f"styles.{j}.convs.{2 * k}.weight"],
                                         sd[f"styles.{j}.convs.{2 * k}.bias"], stride=2, padding=1), 0.01)
            k += 1
        feat = feat.reshape(feat.shape[0], -1)
        return F.linear(feat, sd[f"styles.{j}.linear.weight"] / math.sqrt(feat.shape[1]), sd[f"styles.{j}.linear.bias"])

    def up_add(a, b):
        return F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=True) + b

    count = len([k for k in sd if k.startswith("styles.") and k.endswith(".linear.weight")])
    p2 = up_add(c3, F.conv2d(c2, sd["latlayer1.weight"], sd["latlayer1.bias"]))
    p1 = up_add(p2, F.conv2d(c1, sd["latlayer2.weight"], sd["latlayer2.bias"]))
    feats = [c3 if j < 3 else p2 if j < 7 else p1 for j in range(count)]
    if kind == "e4e":  # w0 repeated, a delta added to each later layer
        w0 = style(0, c3)
        return torch.stack([w0] + [w0 + style(j, feats[j]) for j in range(1, count)], dim=1)
    return torch.stack([style(j, feats[j]) for j in range(count)], dim=1)
