"""The encoders of the published sketch models (pSp, e4e), for bundles imported from their checkpoints.

Written from the papers (Richardson et al. 2021, "Encoding in Style"; Tov et al. 2021,
"Designing an Encoder for StyleGAN Image Manipulation") and the layouts of their
checkpoints, so that `encoder.*` of a pSp or e4e `.pt` loads here tensor for tensor:

- IR-SE50 backbone (ArcFace's ResNet-50 "IR-SE" variant): an input layer (3x3 conv, batch
  norm, PReLU) and 24 bottleneck units in 4 stages of 3, 4, 14, 3 (widths 64, 128, 256,
  512, each stage's first unit strides 2). A unit is BN -> 3x3 conv -> PReLU -> 3x3 conv
  (the stride) -> BN -> squeeze-excitation (reduction 16), plus a shortcut: a 1x1 strided
  conv + BN where the width changes, else plain subsampling.
- pSp's GradualStyleEncoder: a feature pyramid on the ends of stages 2, 3, 4 (c1, c2, c3);
  p2 = up(c3) + lateral(c2), p1 = up(p2) + lateral(c1) (bilinear, corners aligned). Styles
  0-2 come from c3, 3-6 from p2, the rest from p1, each through its own "map2style" block
  (stride-2 3x3 convs with leaky ReLU 0.01 down to 1x1, then an equalised linear layer).
- e4e's Encoder4Editing: the same modules, but style 0 gives one w for every layer and
  styles 1.. add deltas to it (its inference stage: all deltas on).
- pSp's BackboneEncoderUsingLastLayerIntoW (`learn_in_w`): the backbone, a global average
  and one equalised linear layer: one w for every layer.

The checkpoint's own conventions travel inside the module, so the table's graph needs
nothing else: the input stage (the table's sketch in [-1, 1] at the bundle's resolution
-> the range and size the original was trained on), `latent_avg` added where the original
starts from it, and the result given as offsets from the generator's w_avg, as the
project's `SketchToDrawing` takes them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.networks import FullyConnected, PSPEncoder, _check_resolution

# Encoder kinds a bundle can record in model.encoder.kind; absent means the project's own.
PUBLISHED_KINDS = ("psp", "e4e", "psp-w")
IRSE50_UNITS = (3, 4, 14, 3)
IRSE50_WIDTHS = (64, 128, 256, 512)
COARSE, MEDIUM = 3, 7  # styles [0, 3) from c3, [3, 7) from p2, the rest from p1
INPUT_RANGES = ("0:1", "-1:1")


class SqueezeExcitation(nn.Module):
    """Channel gates from the global average: x * sigmoid(fc2(relu(fc1(mean x))))."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))


class BottleneckIRSE(nn.Module):
    """One IR-SE unit; its state-dict names are the checkpoints' (res_layer.0-5, shortcut_layer.0-1)."""

    def __init__(self, in_channels: int, depth: int, stride: int, reduction: int = 16):
        super().__init__()
        self.stride = stride
        self.shortcut_layer = (None if in_channels == depth else
                               nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                             nn.BatchNorm2d(depth)))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SqueezeExcitation(depth, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_layer is not None:
            shortcut = self.shortcut_layer(x)
        else:  # same width: every stride-th pixel (a 1x1 max pool in the original)
            shortcut = x if self.stride == 1 else x[:, :, ::self.stride, ::self.stride]
        return self.res_layer(x) + shortcut


class MapToStyle(nn.Module):
    """pSp's map2style: stride-2 3x3 convs (leaky ReLU 0.01) from `spatial` down to 1x1, then
    an equalised linear layer (weights at unit variance, scaled by 1/sqrt(fan-in))."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int):
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(max(1, spatial.bit_length() - 1)):
            layers += [nn.Conv2d(ch, out_channels, 3, stride=2, padding=1), nn.LeakyReLU(0.01)]
            ch = out_channels
        self.convs = nn.Sequential(*layers)
        self.linear = FullyConnected(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class PublishedEncoder(nn.Module):
    """A pSp / e4e encoder with its input stage: table sketch [B, 1, R, R] -> W+ offsets from w_avg.

    kind: 'psp' (GradualStyleEncoder), 'e4e' (Encoder4Editing) or 'psp-w' (one w).
    input_nc, input_range ('0:1': pSp's sketches, ToTensor only; '-1:1': normalised
    images), input_size (256: the size the originals resize to) describe what the original
    takes. units / widths / style_width are IR-SE50's (3, 4, 14, 3) / (64, 128, 256, 512) /
    512 in every published file; smaller ones serve tests.
    """

    def __init__(self, kind: str, resolution: int, num_ws: int, w_dim: int = 512, input_nc: int = 1,
                 input_range: str = "0:1", input_size: int = 256, units=IRSE50_UNITS, widths=IRSE50_WIDTHS,
                 style_width: int = 512, se_reduction: int = 16, start_from_latent_avg: bool = True):
        super().__init__()
        units, widths = [int(u) for u in units], [int(w) for w in widths]
        self.init_kwargs = dict(kind=str(kind), resolution=int(resolution), num_ws=int(num_ws), w_dim=int(w_dim),
                                input_nc=int(input_nc), input_range=str(input_range), input_size=int(input_size),
                                units=units, widths=widths, style_width=int(style_width),
                                se_reduction=int(se_reduction), start_from_latent_avg=bool(start_from_latent_avg))
        if kind not in PUBLISHED_KINDS:
            raise ValueError(f"encoder: kind {kind!r} must be one of {PUBLISHED_KINDS}")
        if input_range not in INPUT_RANGES:
            raise ValueError(f"encoder: input_range {input_range!r} must be one of {INPUT_RANGES}")
        if input_nc not in (1, 3):
            raise ValueError(f"encoder: input_nc {input_nc} must be 1 (sketch) or 3 (RGB)")
        if len(units) != 4 or len(widths) != 4 or min(units) < 1:
            raise ValueError(f"encoder: units {units} and widths {widths} must describe 4 stages")
        self.kind, self.num_ws, self.w_dim = kind, int(num_ws), int(w_dim)
        self.resolution = _check_resolution(resolution, "encoder")
        self.input_size = _check_resolution(input_size, "encoder input")
        self.input_nc, self.input_low = int(input_nc), 0.0 if input_range == "0:1" else -1.0
        self.start_from_latent_avg = bool(start_from_latent_avg)
        self.input_layer = nn.Sequential(nn.Conv2d(input_nc, widths[0], 3, 1, 1, bias=False),
                                         nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        body, ch, self.stage_ends = [], widths[0], []
        for depth, count in zip(widths, units):
            for i in range(count):
                body.append(BottleneckIRSE(ch, depth, 2 if i == 0 else 1, se_reduction))
                ch = depth
            self.stage_ends.append(len(body) - 1)  # pSp taps units 6, 20, 23 of IR-SE50
        self.body = nn.Sequential(*body)
        size = self.input_size
        if kind == "psp-w":
            self.linear = FullyConnected(widths[3], w_dim)
        else:
            if style_width != w_dim:
                raise ValueError(f"encoder: style_width {style_width} must be w_dim {w_dim}")
            spatial = {0: size // 16, 1: size // 8, 2: size // 4}  # c3, p2, p1
            self.styles = nn.ModuleList([
                MapToStyle(widths[3], style_width, spatial[0 if i < COARSE else 1 if i < MEDIUM else 2])
                for i in range(num_ws)])
            self.latlayer1 = nn.Conv2d(widths[2], widths[3], 1)
            self.latlayer2 = nn.Conv2d(widths[1], widths[3], 1)
        # The original adds latent_avg ([num_ws, w_dim]; zeros when it does not start from
        # it); the table's SketchToDrawing adds the generator's w_avg, so it is taken off.
        self.register_buffer("latent_avg", torch.zeros(num_ws, w_dim))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def input_stage(self, sketch: torch.Tensor) -> torch.Tensor:
        """The table's sketch (ink -1, paper +1, R x R) as the original's input."""
        x = sketch if self.input_low == -1.0 else (sketch + 1.0) * 0.5
        r, size = self.resolution, self.input_size
        if r > size:  # powers of two: an area average (the originals' PIL resize antialiases)
            x = F.avg_pool2d(x, r // size)
        elif r < size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x.expand(-1, 3, -1, -1) if self.input_nc == 3 else x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """c1, c2, c3: the ends of stages 2, 3 and 4."""
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.stage_ends[1:]:
                taps.append(x)
        return taps

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """What the original encoder returns, as W+ [B, num_ws, w_dim] (before latent_avg)."""
        c1, c2, c3 = self.features(x)
        if self.kind == "psp-w":
            return self.linear(c3.mean(dim=(2, 3)))[:, None].expand(-1, self.num_ws, -1)
        p2 = _upsample_add(c3, self.latlayer1(c2))
        p1 = _upsample_add(p2, self.latlayer2(c1))
        level = [c3 if i < COARSE else p2 if i < MEDIUM else p1 for i in range(self.num_ws)]
        if self.kind == "psp":
            return torch.stack([style(feat) for style, feat in zip(self.styles, level)], dim=1)
        w0 = self.styles[0](c3)  # e4e: one w for all layers, then a delta per layer
        deltas = [torch.zeros_like(w0)] + [style(feat) for style, feat in zip(self.styles[1:], level[1:])]
        return w0[:, None] + torch.stack(deltas, dim=1)

    def absolute(self, sketch: torch.Tensor) -> torch.Tensor:
        """Absolute W+ codes, as the original's forward hands them to its decoder."""
        codes = self.codes(self.input_stage(sketch))
        return codes + self.latent_avg if self.start_from_latent_avg else codes

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.absolute(sketch) - self.w_avg


def build_encoder(init_kwargs: dict) -> nn.Module:
    """The encoder a bundle's model.encoder describes: a published kind, or the project's PSPEncoder."""
    kwargs = dict(init_kwargs)
    if kwargs.get("kind") in PUBLISHED_KINDS:
        return PublishedEncoder(**kwargs)
    if "kind" in kwargs:
        raise ValueError(f"encoder kind {kwargs['kind']!r} is not one this New Snow knows "
                         f"({', '.join(PUBLISHED_KINDS)} or the project's own)")
    return PSPEncoder(**kwargs)
