"""Differentiable augmentation for GAN training on little data.

ADA (Karras et al. 2020): every op is applied to each image with probability p, and p
is tuned during training so that the discriminator's sign on real images, E[sign D(x)],
stays near a target (0.6): over-confident D -> more augmentation. The ops are the ones
that do not leak into the generator when p < ~0.8: integer translation, 90-degree
rotations (off for drawings, which have an up), isotropic scaling, brightness, contrast
and cutout. With ADA off, the same ops at p = 1 with a fixed policy stand in for
DiffAugment (Zhao et al. 2020: colour, translation, cutout).

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
    translate: bool = True
    rotate90: bool = False   # drawings have an up: off by default
    scale: bool = True
    brightness: bool = True
    contrast: bool = True
    cutout: bool = True
    translate_std: float = 0.125   # of the image side, rounded to whole pixels
    scale_std: float = 0.2         # log2 of the zoom
    brightness_std: float = 0.2    # added, images in [-1, 1]
    contrast_std: float = 0.5      # log2 of the gain
    cutout_size: float = 0.5       # side of the erased square, of the image side


ADA_SPEC = AugmentSpec()
DIFFAUGMENT_SPEC = AugmentSpec(scale=False, translate_std=0.0625, brightness_std=0.25,
                               contrast_std=0.35)


def augment(images: torch.Tensor, p: float, spec: AugmentSpec = ADA_SPEC) -> torch.Tensor:
    """Augment a batch [B, C, R, R] in [-1, 1]; each op hits each image with probability p.
    Differentiable with respect to `images` (gradients pass to G and into R1)."""
    if p <= 0:
        return images
    b, _, h, w = images.shape
    device = images.device

    def chosen() -> torch.Tensor:  # [B] float mask of the images this op hits
        return (torch.rand(b, device=device) < p).float()

    # Geometry: one affine per image (output -> input, normalised coords), one resample.
    theta = torch.eye(3, device=device).repeat(b, 1, 1)
    if spec.translate:
        shift = torch.round(torch.randn(b, 2, device=device) * spec.translate_std * h) * 2 / h
        move = torch.eye(3, device=device).repeat(b, 1, 1)
        move[:, :2, 2] = shift * chosen()[:, None]
        theta = theta @ move
    if spec.rotate90:
        quarter = torch.randint(0, 4, (b,), device=device).float() * chosen()
        c, s = torch.cos(quarter * math.pi / 2).round(), torch.sin(quarter * math.pi / 2).round()
        rot = torch.eye(3, device=device).repeat(b, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
        theta = theta @ rot
    if spec.scale:
        zoom = torch.exp2(torch.randn(b, device=device) * spec.scale_std * chosen())
        theta = theta @ torch.diag_embed(torch.stack([1 / zoom, 1 / zoom, torch.ones_like(zoom)], 1))
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
