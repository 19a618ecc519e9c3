"""StyleGAN2's losses (stylegan2-ada-pytorch's `StyleGAN2Loss`), one function a phase.

- G main: non-saturating logistic loss, softplus(-D(aug(G(z)))); optionally MSGAN's
  mode-seeking term, which rewards two z far apart for drawings far apart.
- G path length (lazy, every `pl_interval` steps): the Jacobian of the image with
  respect to W, probed with random image-space noise, should have one length everywhere;
  its running mean `pl_mean` is part of the training state.
- D main: softplus(D(aug(fake))) + softplus(-D(aug(real))).
- D R1 (lazy, every `r1_interval` steps): gamma / 2 * |grad_real D|^2, on the reals.
Lazy terms are multiplied by their interval so their weight per image stays as set.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from inference.networks import Generator


def mapped_ws(G: Generator, z: torch.Tensor, mixing: float) -> torch.Tensor:
    """W+ for z, with style mixing: from a random layer on, the styles of a second z."""
    ws = G.mapping(z, update_w_avg=True)
    if mixing > 0 and torch.rand(()) < mixing:
        cutoff = int(torch.randint(1, ws.shape[1], ()))
        ws2 = G.mapping(torch.randn_like(z), update_w_avg=False)
        ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
    return ws


def generator_loss(G: Generator, disc: Callable, z: torch.Tensor, mixing: float,
                   mode_seeking: float = 0.0) -> torch.Tensor:
    """Make D call the fakes real (and, with `mode_seeking`, tell them apart)."""
    fake = G.synthesis(mapped_ws(G, z, mixing))
    loss = F.softplus(-disc(fake)).mean()
    if mode_seeking > 0:
        loss = loss + mode_seeking * mode_seeking_penalty(fake, z)
    return loss


def mode_seeking_penalty(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN (Mao et al. 2019): 1 / (|G(z1) - G(z2)| / |z1 - z2|) over the batch's two
    halves, paired: small when different latents give different drawings, large when the
    generator draws one template for all of them."""
    half = z.shape[0] // 2
    images = (fake[:half] - fake[half:2 * half]).abs().mean(dim=(1, 2, 3))
    latents = (z[:half] - z[half:2 * half]).abs().mean(dim=1)
    return (1 / (images / latents + 1e-5)).mean()


def imle_penalty(G: Generator, reals: torch.Tensor, candidates: int) -> torch.Tensor:
    """IMLE's pull (Li & Malik 2018, "Implicit Maximum Likelihood Estimation"): of
    `candidates` samples a real drawing, the one nearest each real is drawn again and pulled
    towards it. The adversarial loss is content with a few characters drawn well; this asks
    every drawing of the collection to have a sample near it. Distances and the pull are on
    16x16 averages: the layout of the strokes, whose pixels the adversarial loss keeps sharp."""
    def layout(images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 16).flatten(1)

    target = layout(reals)
    z = torch.randn(len(reals) * candidates, G.z_dim, device=reals.device)
    with torch.no_grad():  # in batches of the reals' size: the memory of one G step
        pool = torch.cat([layout(G.synthesis(G.mapping(chunk))) for chunk in z.split(len(reals))])
        nearest = torch.cdist(target, pool).argmin(dim=1)
    return (layout(G.synthesis(G.mapping(z[nearest]))) - target).square().mean()


def path_length_loss(G: Generator, z: torch.Tensor, mixing: float, pl_mean: torch.Tensor,
                     weight: float, decay: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(penalty, new pl_mean, mean path length) for the batch z (already shrunk)."""
    ws = mapped_ws(G, z, mixing)
    image = G.synthesis(ws)
    noise = torch.randn_like(image) / math.sqrt(image.shape[2] * image.shape[3])
    grad, = torch.autograd.grad((image * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean().detach(), decay)
    penalty = (lengths - new_mean).square().mean() * weight
    # `image * 0` keeps every synthesis parameter in the graph (as the reference does).
    return penalty + image[:, 0, 0, 0].mean() * 0, new_mean, float(lengths.mean().detach())


def discriminator_loss(disc: Callable, fake: torch.Tensor, reals: torch.Tensor,
                       r1_weight: float) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    """(loss, D's logits on the reals, R1 or None). `r1_weight` 0 skips R1; otherwise it is
    gamma / 2 times the lazy interval."""
    logits_fake = disc(fake)
    reals = reals.detach().requires_grad_(r1_weight > 0)
    logits_real = disc(reals)
    loss = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
    r1 = None
    if r1_weight > 0:
        grad, = torch.autograd.grad(logits_real.float().sum(), reals, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3]).mean()
        loss = loss + penalty * r1_weight
        r1 = float(penalty.detach())
    return loss, logits_real.detach(), r1
