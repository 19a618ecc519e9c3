"""The DDPM shipped for trying h-space on the project's own material
(training/editing/models/ddpm_kanjivg32, trained by `newsnow hspace train-ddpm` on the KanjiVG demo
collection): it loads from its folder and samples drawings."""
from pathlib import Path

import torch

import training.editing
from training.editing.hspace import load_model, sample

DEMO_DDPM = Path(training.editing.__file__).parent / "models" / "ddpm_kanjivg32"


def _contrast_and_mean(x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: paper minus ink (90th minus 10th percentile, in [-1, 1] units) and the mean."""
    flat = x0.clamp(-1, 1).flatten(1)
    return torch.quantile(flat, 0.9, dim=1) - torch.quantile(flat, 0.1, dim=1), flat.mean(dim=1)


def test_demo_ddpm_samples_drawings_and_clipping_keeps_them_off_black():
    """16 samples with the paper's 10 steps, η = 1. With P_t clipped as the scheduler says, each
    has paper and ink (contrast 0.58 to 1.38 measured) and none is black; unclipped, the same
    x_T and z give black squares (5 of 16 measured with a mean below -0.9)."""
    torch.set_num_threads(1)
    model = load_model(DEMO_DDPM)
    assert model.image_shape == (1, 32, 32) and model.clip_range == 1.0
    x_T = torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(10, 16, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    contrast, mean = _contrast_and_mean(sample(model, x_T, steps=10, eta=1.0, noise=noise).x0)
    _, mean_unclipped = _contrast_and_mean(sample(model, x_T, steps=10, eta=1.0, noise=noise, clip=False).x0)
    print(f"clipped: contrast {contrast.min():.2f}..{contrast.max():.2f}, black {int((mean < -0.9).sum())}; "
          f"unclipped: black {int((mean_unclipped < -0.9).sum())} of 16")
    assert int((contrast > 0.5).sum()) >= 14
    assert int((mean < -0.9).sum()) == 0
    assert int((mean_unclipped < -0.9).sum()) >= 3
