"""A tiny GAN run for the benchmarks that read one (they must leave it as it is)."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_gan_run(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, run): 48 KanjiVG drawings at 32 px, a fifth held out, and 16 images of a
    --tiny GAN run on them."""
    torch = pytest.importorskip("torch")
    from training.collections.kanjivg import render_collection
    from training.config import config_from
    from training.gan import train_gan
    from training.ingest import IngestSettings, ingest
    root = tmp_path_factory.mktemp("tiny-gan-run")
    render_collection(root / "renders", size=32, count=48, max_strokes=8, seed=0)
    ingest(root / "renders", root / "ds", IngestSettings(resolution=32, validation=0.2))
    torch.set_num_threads(1)
    train_gan(root / "ds", root / "run", config_from("tiny", kimg=0.016, snapshot_kimg=0.016, batch=8),
              progress=False)
    return root / "ds", root / "run"
