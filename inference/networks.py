"""The networks that turn a sketch into a drawing: StyleGAN2 generator and discriminator, pSp encoder.

Built bottom-up like NVlabs' stylegan2-ada-pytorch (fully connected -> modulated conv ->
synthesis layer -> synthesis block -> mapping -> generator), but every op is plain PyTorch
so that the graphs export to ONNX and run fast in ONNX Runtime:

- The modulated convolution uses the NON-FUSED form: scale the input by the style, run a
  static-weight conv2d, multiply by the demodulation factors. The fused form (per-sample
  weights in a grouped conv) is kept beside it as the reference (`modulated_conv2d_fused`)
  and the tests check both agree; ORT ran the fused form 2x slower than PyTorch eager.
- Noise has three modes: 'random' (training), 'const' (a stored buffer: export and the
  table, so one sketch always gives one drawing) and 'none'.
- Up/downsampling is bilinear interpolation / average pooling instead of upfirdn2d. A
  generator built with resample='fir' upsamples as the published StyleGAN2 networks do
  (transposed conv, then the [1, 3, 3, 1] filter), so that their checkpoints load and draw
  the same images (`training.editing.rosinality`, `training.editing.stylegan2_ada`).

Every network keeps its construction arguments in `init_kwargs`, so a checkpoint can
rebuild it (see `inference.checkpoint`).

Tensors: images and sketches are [B, C, R, R] in [-1, 1]; W+ is [B, num_ws, w_dim].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from capture.binarize import resolution_problem

# A randomly initialised encoder feeding the generator produced denormal floats that made
# CPU inference ~20x slower; flushing them to zero costs nothing in image quality.
torch.set_flush_denormal(True)

LRELU_GAIN = math.sqrt(2.0)


def _check_resolution(resolution: int, what: str) -> int:
    resolution = int(resolution)
    if problem := resolution_problem(resolution):
        raise ValueError(f"{what}: resolution {resolution} {problem}")
    return resolution


def _check_channels(channels: int, what: str) -> int:
    if channels not in (1, 3):
        raise ValueError(f"{what}: channels {channels} must be 1 (gray) or 3 (RGB)")
    return channels


def num_ws_for(resolution: int) -> int:
    """Number of W+ styles of a generator: two per block from 8x8 up, one for 4x4, one final toRGB."""
    return 2 * int(math.log2(_check_resolution(resolution, "generator"))) - 2


def _activate(x: torch.Tensor, activation: str, clamp: float | None = None,
              gain_applied: bool = False) -> torch.Tensor:
    """Activation, its gain, the clamp. `gain_applied`: the caller has already scaled x by
    LRELU_GAIN (folded into a small weight or coefficient tensor; lrelu(g x) = g lrelu(x)
    for g > 0), which saves a pass over x forward and backward."""
    if activation == "lrelu":
        x = F.leaky_relu(x, 0.2)
        if not gain_applied:
            x = x * LRELU_GAIN
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r} (use 'lrelu' or 'linear')")
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ---------------------------------------------------------------------------------------
# Layers with equalized learning rate: weights stored at unit variance, scaled at run time.


class FullyConnected(nn.Module):
    """Linear layer with equalized learning rate (weights ~ N(0, 1/lr_multiplier), scaled by gain)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        return _activate(F.linear(x, w, b), self.activation)


class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate; optional 2x downsampling (average pool first)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: bool = False, conv_clamp: float | None = None):
        super().__init__()
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        fast = fast_ops()
        fold = fast and self.activation == "lrelu"  # the activation's gain into weight and bias
        gain = LRELU_GAIN if fold else 1.0
        bias = (self.bias * gain).to(x.dtype) if self.bias is not None else None
        weight = (self.weight * (self.weight_gain * gain)).to(x.dtype)
        conv = conv1x1_gray if fast and weight.shape[1:] == (1, 1, 1) else conv2d_reference
        return _activate(conv(x, weight, bias, self.padding), self.activation, self.conv_clamp, gain_applied=fold)


# Fast ops and their plain references (as NVlabs keeps them): FAST_OPS False runs the
# references everywhere; tests/inference/test_networks.py checks that both agree. ONNX
# export (tracing) always takes the references, so exported graphs do not change.
FAST_OPS = True


def fast_ops() -> bool:
    return FAST_OPS and not torch.jit.is_tracing()


def conv2d_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     padding: int) -> torch.Tensor:
    return F.conv2d(x, weight, bias, padding=padding)


def conv1x1_gray(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 padding: int = 0) -> torch.Tensor:
    """A 1x1 conv from ONE input channel (D's fromRGB on gray images) as a linear layer over
    channels-last pixels: the same products, bit for bit, but oneDNN's backward of a
    1-channel conv took 7x the time of this (100 ms a step at batch 32, 64 px)."""
    out = F.linear(x.permute(0, 2, 3, 1), weight.reshape(weight.shape[0], 1), bias)
    return out.permute(0, 3, 1, 2)  # [B, O, H, W] in channels-last memory


def demodulation_norms(weight: torch.Tensor) -> torch.Tensor:
    """|w_oi|^2 over the kernel taps -> [O, I]. Written as a norm because the ONNX exporter
    folds it to an [O, I] constant; square().sum() left a second full-size copy of every
    conv weight in the graph (+70% file size). The norm runs on a contiguous copy: on
    channels-last weights (as training keeps them) it took 15x as long (17 ms for 256x256)."""
    if fast_ops():
        weight = weight.contiguous()
    return torch.linalg.vector_norm(weight, dim=(2, 3)).square()


# ---------------------------------------------------------------------------------------
# Modulated convolution.


RESAMPLE_MODES = ("bilinear", "fir")
# [1, 3, 3, 1] outer itself / 16 (sum 4: the gain of 2x upsampling); a constant made once,
# so that tracing for export does not register a new tensor in every call
_FIR_KERNEL = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])) / 16.0


def _fir_filter(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """StyleGAN2's 4x4 resampling filter ([1, 3, 3, 1] outer itself, sum 4: the gain of 2x
    upsampling), one per channel, for a depthwise conv.

    `channels` is a Python int, never `x.shape[1]`: traced with a dynamic batch axis, a shape
    read from x becomes a graph value and the ONNX exporter refuses a conv kernel of unknown
    shape."""
    return _FIR_KERNEL.to(device=device, dtype=dtype).expand(channels, 1, 4, 4)


def upsample_fir(x: torch.Tensor, channels: int) -> torch.Tensor:
    """2x upsampling as upfirdn2d(up=2, pad=(2, 1)) with the [1, 3, 3, 1] filter: zeros
    between the samples, then the filter (zero padding at the border, unlike bilinear).
    x has `channels` channels (a Python int, see `_fir_filter`)."""
    return F.conv_transpose2d(x, _fir_filter(channels, x.dtype, x.device), stride=2, padding=1, groups=channels)


def _conv_up_fir(x: torch.Tensor, weight: torch.Tensor, channels: int) -> torch.Tensor:
    """3x3 conv with 2x upsampling as StyleGAN2 does it: stride-2 transposed conv (2R+1
    wide), then the filter with padding 1 (back to 2R). channels: weight's output channels."""
    x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    return F.conv2d(x, _fir_filter(channels, x.dtype, x.device), padding=1, groups=channels)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, padding: int = 0, up_fir: bool = False,
                     out_channels: int | None = None, up_bilinear: bool = False, gain: float = 1.0
                     ) -> torch.Tensor:
    """Non-fused modulated convolution: x * style -> static-weight conv2d -> * demodulation.

    x [B, I, H, W], weight [O, I, k, k] (already gain-scaled), styles [B, I]. Equivalent to
    convolving each sample with its own weights w'_oik = s_i w_oik normalised over (i, k)
    (thesis eq. 2.17), but every op is a plain Conv/Mul that ONNX Runtime runs fast.
    up_fir: upsample 2x inside the conv as StyleGAN2 does (`padding` is then unused);
    out_channels: weight.shape[0] as a Python int, which an exported module passes (see
    `_fir_filter`).
    up_bilinear: upsample 2x bilinearly after the modulation, before the conv. The same
    function as upsampling first (a per-channel scale commutes with the per-channel
    interpolation) with the multiply on a 4x smaller tensor: 40% of the 64 px up-layer's
    training time. Rounding differs from upsampling first by ~1e-7 relative.
    gain: an output scale folded into the demodulation factors (requires `demodulate`).
    """
    x = x * styles[:, :, None, None]
    if up_bilinear:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    if up_fir:
        x = _conv_up_fir(x, weight, int(weight.shape[0]) if out_channels is None else out_channels)
    else:
        x = F.conv2d(x, weight, padding=padding)
    if demodulate:
        # sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 * sum_k w_oik^2  -> [B, O]
        dcoefs = (styles.square() @ demodulation_norms(weight).t() + 1e-8).rsqrt()
        x = x * (dcoefs * gain if gain != 1.0 else dcoefs)[:, :, None, None]
    elif gain != 1.0:
        raise ValueError("modulated_conv2d: gain is folded into the demodulation; it needs demodulate")
    return x


def modulated_conv2d_fused(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                           demodulate: bool = True, padding: int = 0, up_fir: bool = False) -> torch.Tensor:
    """Reference: per-sample modulated weights in one grouped conv (the StyleGAN2 paper's form).

    Kept to check `modulated_conv2d` against; not used by the networks (it exports to a
    graph ONNX Runtime runs ~2x slower than PyTorch eager).
    """
    batch, in_ch, height, width = x.shape
    w = weight[None] * styles[:, None, :, None, None]  # [B, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    out_ch, k = weight.shape[0], weight.shape[-1]
    x = x.reshape(1, batch * in_ch, height, width)
    if up_fir:  # grouped transposed conv takes [groups * I, O, k, k]
        w = w.transpose(1, 2).reshape(batch * in_ch, out_ch, k, k)
        y = F.conv_transpose2d(x, w, stride=2, groups=batch)
        y = F.conv2d(y, _fir_filter(batch * out_ch, y.dtype, y.device), padding=1, groups=batch * out_ch)
    else:
        y = F.conv2d(x, w.reshape(batch * out_ch, in_ch, k, k), padding=padding, groups=batch)
    return y.reshape(batch, out_ch, *y.shape[2:])


class ModulatedConv(nn.Module):
    """A convolution whose input channels are scaled by a style computed from w (affine "A")."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 3,
                 demodulate: bool = True, up_fir: bool = False):
        super().__init__()
        self.demodulate = demodulate
        self.up_fir = up_fir
        self.out_channels = int(out_channels)
        self.padding = kernel_size // 2
        # bias_init=1: styles start at 1, so an untrained layer passes features through.
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, up_bilinear: bool = False, gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight * self.weight_gain
        if x.dtype == torch.float16 and self.demodulate:
            # As the reference: scale weights and styles to at most 1 before fp16 so that
            # x * styles and the demodulation sums cannot overflow; demodulation undoes it.
            weight = weight / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True) * self.weight_gain
            styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        return modulated_conv2d(x, weight.to(x.dtype), styles.to(x.dtype),
                                demodulate=self.demodulate, padding=self.padding, up_fir=self.up_fir,
                                out_channels=self.out_channels, up_bilinear=up_bilinear, gain=gain)

    def affine_weight(self) -> torch.Tensor:
        """Effective style weight [in_channels, w_dim] (what SeFa factorizes)."""
        return (self.affine.weight * self.affine.weight_gain).detach()


# ---------------------------------------------------------------------------------------
# Synthesis network.

NOISE_MODES = ("random", "const", "none")


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsampling), per-pixel noise, bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 up: bool = False, conv_clamp: float | None = None, resample: str = "bilinear"):
        super().__init__()
        self.up_bilinear = up and resample == "bilinear"
        self.resolution = resolution
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv(in_channels, out_channels, w_dim, kernel_size=3, up_fir=up and resample == "fir")
        # A stored noise image for 'const' mode: exported graphs and the table use it, so a
        # sketch always gives the same drawing.
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        fast = fast_ops()
        if self.up_bilinear and not fast:  # the reference: upsample, then modulate
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        # Fast: the activation's gain scales the demodulation, noise strength and bias (small
        # tensors) instead of the output.
        gain = LRELU_GAIN if fast else 1.0
        x = self.conv(x, w, up_bilinear=self.up_bilinear and fast, gain=gain)
        strength = self.noise_strength * gain if fast else self.noise_strength
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution,
                                device=x.device, dtype=x.dtype) * strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * strength).to(x.dtype)
        elif noise_mode != "none":
            raise ValueError(f"noise_mode {noise_mode!r} must be one of {NOISE_MODES}")
        bias = self.bias * gain if fast else self.bias
        x = x + bias.to(x.dtype)[None, :, None, None]
        return _activate(x, "lrelu", self.conv_clamp, gain_applied=fast)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) from features to image channels."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv(in_channels, img_channels, w_dim, kernel_size=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w) + self.bias.to(x.dtype)[None, :, None, None]
        return _activate(x, "linear", self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip architecture: (const | up-conv) -> conv -> toRGB added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, conv_clamp: float | None = None, use_fp16: bool = False,
                 resample: str = "bilinear"):
        super().__init__()
        if resample not in RESAMPLE_MODES:
            raise ValueError(f"generator: resample {resample!r} must be one of {RESAMPLE_MODES}")
        self.in_channels = in_channels
        self.img_channels = int(img_channels)
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.resample = resample
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True,
                                        conv_clamp=conv_clamp, resample=resample)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
        """ws: [B, num_conv + 1, w_dim]; the last one feeds toRGB. Features run in fp16 in a
        use_fp16 block on CUDA; the image skip stays fp32."""
        dtype = torch.float16 if self.use_fp16 and ws.device.type == "cuda" else torch.float32
        if self.conv0 is None:
            x = self.const.to(dtype)[None].expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x.to(dtype), ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv]).float()
        if img is not None:
            y = y + (upsample_fir(img, self.img_channels) if self.resample == "fir" else
                     F.interpolate(img, scale_factor=2.0, mode="bilinear", align_corners=False))
        return x, y


def _channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // resolution, channel_max))


def fp16_resolutions(resolution: int, num_fp16_res: int) -> set[int]:
    """The block resolutions that run in fp16: the `num_fp16_res` highest, never below 8
    (the reference's rule; the 4x4 const block, the mapping and D's epilogue stay fp32)."""
    if num_fp16_res <= 0:
        return set()
    lowest = max(2 ** (int(math.log2(resolution)) + 1 - num_fp16_res), 8)
    return {2 ** i for i in range(3, int(math.log2(resolution)) + 1) if 2 ** i >= lowest}


class SynthesisNetwork(nn.Module):
    """W+ [B, num_ws, w_dim] -> image [B, C, R, R]; blocks at 4, 8, ..., R."""

    def __init__(self, resolution: int, img_channels: int, w_dim: int, channel_base: int,
                 channel_max: int, conv_clamp: float | None = None, num_fp16_res: int = 0,
                 resample: str = "bilinear"):
        super().__init__()
        self.resolution = resolution
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        half = fp16_resolutions(resolution, num_fp16_res)
        self.blocks = nn.ModuleList()
        for res in self.block_resolutions:
            in_ch = 0 if res == 4 else _channels_at(res // 2, channel_base, channel_max)
            out_ch = _channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels, conv_clamp,
                                              use_fp16=res in half, resample=resample))
        # Consecutive blocks share one w: a block's toRGB w is the next block's conv0 w.
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if not torch.jit.is_tracing() and (ws.ndim != 3 or ws.shape[1] != self.num_ws):
            raise ValueError(f"synthesis: ws has shape {tuple(ws.shape)}, expected [B, {self.num_ws}, w_dim]")
        x = img = None
        index = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, index:index + block.num_conv + 1], noise_mode)
            index += block.num_conv
        return img


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w broadcast to [B, num_ws, w_dim]; tracks w_avg (the centre of mass of W)."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"mapping: mapping_layers {num_layers} must be at least 1")
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        features = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[
            FullyConnected(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        ])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_w_avg: bool = False) -> torch.Tensor:
        # Normalize z to unit second moment (the "pixel norm" of StyleGAN).
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        w = self.layers(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = w[:, None, :].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = ws.clone()
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network + synthesis network with skip toRGB outputs.

    channel_base / channel_max set the width (features at resolution r: min(base / r, max)):
    the defaults (32768, 512) are full width; e.g. (4096, 128) gives a model a CPU runs in
    tens of milliseconds at 256x256. resample: 'bilinear' (the table's networks) or 'fir'
    (the published StyleGAN2's upsampling, for their checkpoints).
    """

    def __init__(self, resolution: int, channels: int = 1, z_dim: int = 512, w_dim: int = 512,
                 mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
                 mapping_lr_multiplier: float = 0.01, w_avg_beta: float = 0.995,
                 conv_clamp: float | None = None, num_fp16_res: int = 0, resample: str = "bilinear"):
        super().__init__()
        self.init_kwargs = dict(resolution=int(resolution), channels=int(channels), z_dim=int(z_dim),
                                w_dim=int(w_dim), mapping_layers=int(mapping_layers),
                                channel_base=int(channel_base), channel_max=int(channel_max),
                                mapping_lr_multiplier=float(mapping_lr_multiplier),
                                w_avg_beta=float(w_avg_beta), conv_clamp=conv_clamp,
                                num_fp16_res=int(num_fp16_res), resample=str(resample))
        self.resolution = _check_resolution(resolution, "generator")
        self.channels = _check_channels(channels, "generator")
        self.z_dim, self.w_dim = z_dim, w_dim
        self.synthesis = SynthesisNetwork(resolution, channels, w_dim, channel_base, channel_max, conv_clamp,
                                          num_fp16_res, resample)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers,
                                      mapping_lr_multiplier, w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        """The average w [w_dim] (a buffer of the mapping network, EMA-tracked in training)."""
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "random") -> torch.Tensor:
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def style_affine_weights(self) -> list[tuple[str, torch.Tensor]]:
        """(name, weight [in_channels, w_dim]) of every style affine, in W+ order of use.

        Names are module paths such as 'synthesis.blocks.2.conv0' or '...torgb' (SeFa
        usually keeps the conv layers and drops the toRGB ones).
        """
        out = []
        for name, module in self.named_modules():
            if isinstance(module, ModulatedConv):
                out.append((name.removesuffix(".conv"), module.affine_weight()))
        return out


# ---------------------------------------------------------------------------------------
# Discriminator (training only).


class MinibatchStd(nn.Module):
    """Appends the std of features across groups of the batch (helps D see mode collapse)."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(self.group_size, n)  # a group must divide the batch
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])          # [n/g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)      # [n, f, h, w]
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second downsamples) plus a 1x1 downsampling skip."""

    def __init__(self, in_channels: int, out_channels: int, img_channels: int | None,
                 conv_clamp: float | None = None, use_fp16: bool = False):
        super().__init__()
        self.use_fp16 = use_fp16
        self.fromrgb = (Conv2dLayer(img_channels, in_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
                        if img_channels else None)
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=True,
                                 conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_fp16 and x.device.type == "cuda":
            x = x.half()
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: image [B, C, R, R] -> score [B, 1].

    `features(img)` returns the activations after each block, usable as a perceptual feature
    loss (no pretrained LPIPS network can be downloaded here).

    `pack` > 1 makes it a packing discriminator (PacGAN, Lin et al. 2018): it scores packs of
    that many drawings stacked as channels, [B, C, R, R] -> [B / pack, 1], so that a
    generator drawing one template is told apart from the collection by the packs' sameness.
    `features` of one drawing then sees it `pack` times.
    """

    def __init__(self, resolution: int, channels: int = 1, channel_base: int = 32768,
                 channel_max: int = 512, mbstd_group: int = 4, mbstd_channels: int = 1,
                 conv_clamp: float | None = None, num_fp16_res: int = 0, pack: int = 1):
        super().__init__()
        self.init_kwargs = dict(resolution=int(resolution), channels=int(channels),
                                channel_base=int(channel_base), channel_max=int(channel_max),
                                mbstd_group=int(mbstd_group), mbstd_channels=int(mbstd_channels),
                                conv_clamp=conv_clamp, num_fp16_res=int(num_fp16_res), pack=int(pack))
        self.resolution = _check_resolution(resolution, "discriminator")
        self.channels = _check_channels(channels, "discriminator")
        if pack < 1:
            raise ValueError(f"discriminator: pack {pack} must be at least 1")
        self.pack = int(pack)
        resolutions = [2 ** i for i in range(int(math.log2(resolution)), 2, -1)]  # R ... 8
        half = fp16_resolutions(resolution, num_fp16_res)
        self.blocks = nn.ModuleList()
        for i, res in enumerate(resolutions):
            self.blocks.append(DiscriminatorBlock(_channels_at(res, channel_base, channel_max),
                                                  _channels_at(res // 2, channel_base, channel_max),
                                                  channels * pack if i == 0 else None, conv_clamp,
                                                  use_fp16=res in half))
        ch4 = _channels_at(4, channel_base, channel_max)
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels)
        self.conv = Conv2dLayer(ch4 + mbstd_channels, ch4, 3, activation="lrelu")
        self.fc = FullyConnected(ch4 * 16, ch4, activation="lrelu")
        self.out = FullyConnected(ch4, 1)

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        return self._features(img.repeat(1, self.pack, 1, 1) if self.pack > 1 else img)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.pack > 1:
            n, c, h, w = img.shape
            if n % self.pack:
                raise ValueError(f"discriminator: a batch of {n} does not split into packs of {self.pack}")
            img = img.reshape(n // self.pack, self.pack * c, h, w)  # consecutive drawings as channels
        x = self._features(img)[-1].float()  # the epilogue runs in fp32
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


# ---------------------------------------------------------------------------------------
# pSp encoder.


class _ResidualBlock(nn.Module):
    """ResNet basic block (conv-BN-lrelu-conv-BN + shortcut); BN folds into the convs at export."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else
                         nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                       nn.BatchNorm2d(out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.body(x) + self.shortcut(x), 0.2)


class _StyleHead(nn.Module):
    """Light map2style for one pyramid level: a narrow conv trunk SHARED by the level's styles.

    pSp gives every style its own full-width (512) stride-2 conv tower: 160-190 M parameters.
    Here one tower of `width` channels runs the feature map down to 1x1 and one linear layer
    emits all the level's styles at once.
    """

    def __init__(self, in_channels: int, width: int, spatial: int, num_styles: int, w_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(max(1, int(math.log2(spatial)))):
            layers += [nn.Conv2d(ch, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch = width
        layers.append(nn.AdaptiveAvgPool2d(1))  # 1x1 already, except for a 1x1 input map
        self.trunk = nn.Sequential(*layers)
        self.linear = FullyConnected(width, num_styles * w_dim)
        self.num_styles, self.w_dim = num_styles, w_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.trunk(x).flatten(1)).reshape(-1, self.num_styles, self.w_dim)


class PSPEncoder(nn.Module):
    """pSp encoder: sketch [B, in_channels, R, R] -> W+ OFFSETS [B, num_ws, w_dim] from w_avg.

    ResNet backbone (stem + 4 stages of `blocks` residual blocks, widths width*1,2,4,8 capped
    at channel_max) gives c1 (R/4), c2 (R/8), c3 (R/16); a feature pyramid adds the upsampled
    coarser map to each finer one; coarse styles come from c3, medium from p2, fine from p1,
    as in pixel2style2pixel.
    """

    def __init__(self, resolution: int, num_ws: int, w_dim: int = 512, in_channels: int = 1,
                 width: int = 64, blocks: tuple[int, ...] | list[int] = (2, 2, 2, 2), channel_max: int = 512,
                 head_width: int = 256, coarse: int = 3, medium: int = 4):
        super().__init__()
        blocks = tuple(int(b) for b in blocks)
        self.init_kwargs = dict(resolution=int(resolution), num_ws=int(num_ws), w_dim=int(w_dim),
                                in_channels=int(in_channels), width=int(width), blocks=list(blocks),
                                channel_max=int(channel_max), head_width=int(head_width),
                                coarse=int(coarse), medium=int(medium))
        self.resolution = _check_resolution(resolution, "encoder")
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"encoder: blocks {blocks} must be 4 stage depths of at least 1")
        if num_ws < 1 or coarse < 1 or medium < 0:
            raise ValueError(f"encoder: num_ws={num_ws}, coarse={coarse}, medium={medium} are not valid")
        self.num_ws, self.w_dim = num_ws, w_dim
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.LeakyReLU(0.2))
        widths = [min(width * 2 ** i, channel_max) for i in range(4)]
        stages = []
        ch = width
        for w, n in zip(widths, blocks):
            stage = [_ResidualBlock(ch, w, stride=2)] + [_ResidualBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            ch = w
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        pyramid = widths[3]
        self.lateral2 = nn.Conv2d(widths[2], pyramid, 1)  # c2 -> p2
        self.lateral1 = nn.Conv2d(widths[1], pyramid, 1)  # c1 -> p1
        # Style counts per level; a small generator may have no medium/fine styles.
        n_coarse = min(coarse, num_ws)
        n_medium = min(medium, num_ws - n_coarse)
        n_fine = num_ws - n_coarse - n_medium
        self.level_sizes = (n_coarse, n_medium, n_fine)
        spatial = (resolution // 16, resolution // 8, resolution // 4)
        self.heads = nn.ModuleList([
            _StyleHead(pyramid, head_width, s, n, w_dim) if n else None
            for s, n in zip(spatial, self.level_sizes)
        ])

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        x = self.stage1(self.stem(sketch))
        c1 = self.stage2(x)
        c2 = self.stage3(c1)
        c3 = self.stage4(c2)
        p2 = F.interpolate(c3, size=c2.shape[-2:], mode="bilinear", align_corners=False) + self.lateral2(c2)
        p1 = F.interpolate(p2, size=c1.shape[-2:], mode="bilinear", align_corners=False) + self.lateral1(c1)
        styles = [head(feat) for head, feat in zip(self.heads, (c3, p2, p1)) if head is not None]
        return torch.cat(styles, dim=1)


class SketchToDrawing(nn.Module):
    """The whole table model: drawing = G.synthesis(E(sketch) + w_avg) with constant noise."""

    def __init__(self, encoder: PSPEncoder, generator: Generator):
        super().__init__()
        if encoder.num_ws != generator.num_ws or encoder.w_dim != generator.w_dim:
            raise ValueError(f"encoder gives [{encoder.num_ws}, {encoder.w_dim}] styles but the generator "
                             f"takes [{generator.num_ws}, {generator.w_dim}]: build the encoder with "
                             f"num_ws=G.num_ws, w_dim=G.w_dim")
        self.encoder = encoder
        self.generator = generator

    def encode(self, sketch: torch.Tensor) -> torch.Tensor:
        """Absolute W+ codes [B, num_ws, w_dim]."""
        return self.encoder(sketch) + self.generator.w_avg

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesis(self.encode(sketch), noise_mode="const")


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))

