"""A generator to make sketch pairs and train an encoder for: a GAN run of New Snow's, or a
researcher's generator file (rosinality `.pt`, NVlabs `.pkl`, a pSp/e4e file's decoder),
so that a curator can reuse a generator trained elsewhere (`newsnow train sketches FILE`,
`newsnow train encoder PAIRS --generator FILE`).

A file has no discriminator of the project's architecture, whose features are the encoder's
perceptual loss when no LPIPS file is given; the encoder then trains on the pixel and
w-norm terms alone (`--lpips PATH` brings the perceptual term back), and says so.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from inference.checkpoint import load_model_checkpoint
from inference.networks import Generator

log = logging.getLogger(__name__)


@dataclass
class GeneratorSource:
    generator: Generator  # eval mode
    meta: dict            # what the model card and the pairs' manifest record
    path: Path            # the generator's file
    run: Path | None      # the GAN run folder (its trained discriminator), or None for a file


def generator_source(source: str | Path, mapping_lr_multiplier: float | None = None) -> GeneratorSource:
    """A GAN run folder (its generator.pt) or a generator file of any supported format."""
    from training.gan import GENERATOR

    source = Path(source)
    if source.is_dir() and not (source / "bundle.json").exists():
        if mapping_lr_multiplier is not None:
            raise ValueError(f"{source}: --mapping-lr-multiplier is for a generator file; a GAN run records it")
        generator, _, meta = load_model_checkpoint(source / GENERATOR)
        return GeneratorSource(generator, meta, source / GENERATOR, source)
    from training.editing.checkpoints import load_stylegan
    from training.imports.bundle import sha256_of

    loaded = load_stylegan(source, mapping_lr_multiplier)
    g = loaded.generator
    meta = {"dataset": f"unknown: a {loaded.format} generator trained elsewhere", "licence": "unknown (not in the file)",
            "generator_file": str(source.resolve()), "generator_format": loaded.format,
            "generator_sha256": sha256_of(source), "w_avg": loaded.w_avg_source,
            "mapping_lr_multiplier": g.init_kwargs["mapping_lr_multiplier"], "resolution": g.resolution}
    log.info("%s: %s generator, %d px, %d channel(s), mapping lr multiplier %g; w_avg from %s", source,
             loaded.format, g.resolution, g.channels, g.init_kwargs["mapping_lr_multiplier"], loaded.w_avg_source)
    return GeneratorSource(g, meta, source, None)


class NoPerceptual(torch.nn.Module):
    """A perceptual term of zero, for a generator file without a discriminator and no LPIPS file."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0])
