import pytest
import torch

from training.augment import ADA_SPEC, DIFFAUGMENT_SPEC, ada_update, augment, only


def test_p_zero_is_identity():
    """With p = 0 the batch passes through untouched."""
    x = torch.randn(4, 1, 16, 16)
    assert augment(x, 0.0) is x


def test_integer_translation_moves_pixels_exactly():
    """Translation alone moves a dot by whole pixels without blurring it."""
    torch.manual_seed(3)
    x = torch.zeros(16, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0
    y = augment(x, 1.0, only("translate"))
    assert torch.allclose(y.sum(dim=[1, 2, 3]), torch.ones(16), atol=1e-5)
    assert torch.allclose(y.amax(dim=[1, 2, 3]), torch.ones(16), atol=1e-5)
    assert (y.flatten(1).argmax(1) != 8 * 16 + 8).any()


def test_augment_is_differentiable_and_changes_images():
    """Gradients reach the input (needed for G's loss and R1) under both policies."""
    for spec, p in ((ADA_SPEC, 0.7), (DIFFAUGMENT_SPEC, 1.0)):
        x = torch.randn(8, 1, 16, 16, requires_grad=True)
        y = augment(x, p, spec)
        assert y.shape == x.shape and not torch.equal(y, x)
        y.square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_rotate90_off_keeps_orientation():
    """With only 90-degree rotation enabled, images are exact rotations of the input."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 8, 8)
    y = augment(x, 1.0, only("rotate90"))
    for a, b in zip(x, y):
        assert any(torch.allclose(torch.rot90(a, k, dims=(1, 2)), b, atol=1e-5) for k in range(4))


def test_default_pipeline_is_the_references_bgc_for_gray_drawings():
    """ADA's default ops are stylegan2-ada-pytorch's 'bgc' without flips, 90-degree turns
    and the colour ops of RGB; cutout, which erased half of a drawing, is off."""
    assert ADA_SPEC.ops == ["translate", "scale", "rotate", "aniso", "translate_frac",
                            "brightness", "contrast"]
    assert not ADA_SPEC.cutout and not ADA_SPEC.rotate90
    assert "cutout" in DIFFAUGMENT_SPEC.ops


def test_rotation_turns_a_bar_about_the_centre():
    """Rotation alone keeps a centred disk's ink (reflection padding adds none) and turns a
    horizontal bar away from horizontal in most images at p = 1."""
    torch.manual_seed(1)
    x = -torch.ones(32, 1, 32, 32)
    x[:, 0, 15:17, 6:26] = 1.0
    y = augment(x, 1.0, only("rotate"))
    rows_with_ink = (y[:, 0] > 0).any(dim=2).sum(dim=1)
    assert (rows_with_ink > 4).float().mean() > 0.7
    assert torch.allclose((y > 0).float().sum(dim=[1, 2, 3]), (x > 0).float().sum(dim=[1, 2, 3]), rtol=0.35)


def test_each_op_hits_about_p_of_the_images():
    """At p = 0.3 an op changes about 30% of a batch (rotation too, through its two draws)."""
    torch.manual_seed(2)
    x = torch.rand(400, 1, 16, 16) * 2 - 1
    for op in ("scale", "rotate", "aniso", "brightness", "contrast"):
        y = augment(x, 0.3, only(op))
        hit = ((y - x).abs().flatten(1).amax(1) > 1e-4).float().mean()
        assert 0.22 < hit < 0.38, (op, float(hit))


@pytest.mark.parametrize("sign,direction", [(0.9, 1), (0.2, -1)])
def test_ada_update_moves_towards_target(sign, direction):
    """An over-confident D (sign above target) raises p; an unsure one lowers it; p stays in [0, 1]."""
    p = ada_update(0.5, sign, 0.6, images_seen=64, speed_kimg=100)
    assert (p - 0.5) * direction > 0 and abs(p - 0.5) == pytest.approx(64 / 100_000)
    assert ada_update(0.0, 0.0, 0.6, 64, 1e-3) == 0.0
    assert ada_update(1.0, 1.0, 0.6, 64, 1e-3) == 1.0
