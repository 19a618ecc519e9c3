"""Differentiable augmentation for GAN training on little data.

ADA (Karras et al. 2020): every op is applied to each image with probability p, and p
is tuned during training so that the discriminator's sign on real images, E[sign D(x)],
stays near a target (0.6): over-confident D -> more augmentation. The default pipeline is
stylegan2-ada-pytorch's 'bgc' less what does not suit gray drawings: integer translation,
isotropic scaling, rotation (before and after the anisotropic scaling, each with
1 - sqrt(1 - p) so that some rotation hits p of the images), anisotropic scaling,
fractional translation, brightness and contrast. These do not leak into the generator for
p below ~0.8. Flips and 90-degree rotations are off (drawings have an up and a hand), luma
flip, hue and saturation do not apply to one channel, and cutout is off: at p 0.25 it
erased half the drawing of a quarter of D's inputs. With ADA off, a fixed policy at p = 1
stands in for DiffAugment (Zhao et al. 2020: colour, translation, cutout).

All ops run on the batch with `torch` random numbers from the global generator, so a
training run that restores the RNG state repeats its augmentations exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSpec:
    translate: bool = True         # integer translation (whole pixels)
    rotate90: bool = False         # drawings have an up: off by default
    scale: bool = True             # isotropic
    rotate: bool = True            # arbitrary angle
    aniso: bool = True             # anisotropic scaling
    translate_frac: bool = True    # fractional translation
    brightness: bool = True
    contrast: bool = True
    cutout: bool = False
    translate_max: float = 0.125   # uniform, of the image side, rounded to whole pixels
    scale_std: float = 0.2         # log2 of the zoom
    rotate_max: float = 1.0        # of a half turn (1: any angle)
    aniso_std: float = 0.2         # log2 of the x/y stretch
    translate_frac_std: float = 0.125  # of the image side
    brightness_std: float = 0.2    # added, images in [-1, 1]
    contrast_std: float = 0.5      # log2 of the gain
    cutout_size: float = 0.5       # side of the erased square, of the image side

    @property
    def ops(self) -> list[str]:
        """The names of the ops that are on, in the order they are applied."""
        names = ("translate", "rotate90", "scale", "rotate", "aniso", "translate_frac",
                 "brightness", "contrast", "cutout")
        return [n for n in names if getattr(self, n)]


ADA_SPEC = AugmentSpec()
DIFFAUGMENT_SPEC = AugmentSpec(scale=False, rotate=False, aniso=False, translate_frac=False,
                               cutout=True, translate_max=0.125, brightness_std=0.25,
                               contrast_std=0.35)


def only(*ops: str, **settings) -> AugmentSpec:
    """A spec with just these ops on (for tests and experiments)."""
    off = {n: False for n in AugmentSpec().ops + ["rotate90", "cutout"]}
    return AugmentSpec(**{**off, **{n: True for n in ops}, **settings})


def _eye(b: int, device) -> torch.Tensor:
    return torch.eye(3, device=device).repeat(b, 1, 1)


def _translate(t: torch.Tensor) -> torch.Tensor:
    m = _eye(len(t), t.device)
    m[:, :2, 2] = t
    return m


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(torch.stack([sx, sy, torch.ones_like(sx)], 1))


def _rotate(angle: torch.Tensor) -> torch.Tensor:
    m = _eye(len(angle), angle.device)
    c, s = torch.cos(angle), torch.sin(angle)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def augment(images: torch.Tensor, p: float, spec: AugmentSpec = ADA_SPEC) -> torch.Tensor:
    """Augment a batch [B, C, R, R] in [-1, 1]; each op hits each image with probability p.
    Differentiable with respect to `images` (gradients pass to G and into R1)."""
    if p <= 0:
        return images
    b, _, h, w = images.shape
    device = images.device

    def chosen(prob: float = p) -> torch.Tensor:  # [B] float mask of the images this op hits
        return (torch.rand(b, device=device) < prob).float()

    # Geometry: one affine per image (output -> input, normalised coords [-1, 1]), composed
    # in the reference's order and resampled once.
    theta = _eye(b, device)
    if spec.translate:
        pixels = torch.round((torch.rand(b, 2, device=device) * 2 - 1) * spec.translate_max * h)
        theta = theta @ _translate(pixels * 2 / h * chosen()[:, None])
    if spec.rotate90:
        quarter = torch.randint(0, 4, (b,), device=device).float() * chosen()
        theta = theta @ _rotate(quarter * math.pi / 2).round()
    if spec.scale:
        zoom = torch.exp2(torch.randn(b, device=device) * spec.scale_std * chosen())
        theta = theta @ _scale(1 / zoom, 1 / zoom)
    p_rot = 1 - math.sqrt(max(0.0, 1 - p))
    if spec.rotate:
        angle = (torch.rand(b, device=device) * 2 - 1) * math.pi * spec.rotate_max * chosen(p_rot)
        theta = theta @ _rotate(-angle)
    if spec.aniso:
        stretch = torch.exp2(torch.randn(b, device=device) * spec.aniso_std * chosen())
        theta = theta @ _scale(1 / stretch, stretch)
    if spec.rotate:
        angle = (torch.rand(b, device=device) * 2 - 1) * math.pi * spec.rotate_max * chosen(p_rot)
        theta = theta @ _rotate(-angle)
    if spec.translate_frac:
        shift = torch.randn(b, 2, device=device) * spec.translate_frac_std * 2
        theta = theta @ _translate(shift * chosen()[:, None])
    if not torch.equal(theta, torch.eye(3, device=device).expand_as(theta)):
        grid = F.affine_grid(theta[:, :2], list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                               align_corners=False)
    # Colour: brightness adds, contrast scales about mid-grey (0).
    if spec.brightness:
        images = images + (torch.randn(b, device=device) * spec.brightness_std * chosen())[:, None, None, None]
    if spec.contrast:
        gain = torch.exp2(torch.randn(b, device=device) * spec.contrast_std * chosen())
        images = images * gain[:, None, None, None]
    if spec.cutout:
        centre = torch.rand(b, 2, 1, 1, device=device)
        ys = (torch.arange(h, device=device).float() + 0.5) / h
        xs = (torch.arange(w, device=device).float() + 0.5) / w
        inside = (((xs[None, None, None, :] - centre[:, 0:1]).abs() < spec.cutout_size / 2)
                  & ((ys[None, None, :, None] - centre[:, 1:2]).abs() < spec.cutout_size / 2))
        keep = 1 - inside.float() * chosen()[:, None, None, None]
        images = images * keep
    return images


def ada_update(p: float, sign_real: float, target: float, images_seen: int, speed_kimg: float) -> float:
    """ADA's controller: move p towards more (less) augmentation when E[sign D(real)] is
    above (below) target, fast enough to go 0 -> 1 in `speed_kimg` thousand images."""
    step = math.copysign(images_seen / (speed_kimg * 1000), sign_real - target)
    return min(max(p + step, 0.0), 1.0)
