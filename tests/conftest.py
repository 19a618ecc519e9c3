"""Shared test set-up: no display, no audio, deterministic seeds."""
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


# ---------------------------------------------------------------------------------------
# Model fixtures (inference): a tiny random model, exported like a real one.

import pytest  # noqa: E402


def make_tiny_model(seed: int = 0, resolution: int = 32, channels: int = 1):
    """(generator, encoder): a random model small enough for tests (z/w 64-d, <= 32 channels).

    w_avg is set to the mean w of 1000 z, as training would track it, so it is not zero.
    """
    import torch

    from inference.networks import Generator, PSPEncoder

    torch.manual_seed(seed)
    generator = Generator(resolution, channels=channels, z_dim=64, w_dim=64, mapping_layers=2,
                          channel_base=256, channel_max=32).eval()
    encoder = PSPEncoder(resolution, generator.num_ws, w_dim=64, width=8, head_width=16).eval()
    with torch.no_grad():
        generator.mapping.w_avg.copy_(generator.mapping(torch.randn(1000, 64))[:, 0].mean(dim=0))
    return generator, encoder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Path of a checkpoint (inference.checkpoint format) of the tiny random model."""
    pytest.importorskip("torch")
    from inference.checkpoint import save_model_checkpoint

    generator, encoder = make_tiny_model()
    meta = {"dataset": "random (tests)", "licence": "n/a", "steps": 0}
    return save_model_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.pt", generator, encoder, meta)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """Folder (Path) of an fp32 bundle of the tiny random model: 32x32, 1 channel, 8 styles,
    w_dim = z_dim = 64, all four graphs (the optional fused one too) and model.safetensors. Load it with
    `inference.bundle.Bundle.load(tiny_bundle)` or `inference.runtime.open_backend(tiny_bundle)`."""
    pytest.importorskip("torch")
    import torch

    from inference.export import export_bundle

    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    try:
        generator, encoder = make_tiny_model()
        out = tmp_path_factory.mktemp("bundle") / "tiny"
        export_bundle(generator, encoder, out, meta={"dataset": "random (tests)", "steps": 0}, fused=True)
    finally:
        torch.set_num_threads(threads)
    return out
