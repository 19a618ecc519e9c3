"""Shared tiny data for the training tests: a few dozen 32 px KanjiVG renders and one
`train all --tiny` run that the step tests reuse (one process, one thread)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory):
    """40 KanjiVG characters rendered at 32 px (simple ones, up to 8 strokes)."""
    from training.collections.kanjivg import render_collection
    folder = tmp_path_factory.mktemp("collection")
    render_collection(folder, size=32, count=40, max_strokes=8, seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tiny_collection, tmp_path_factory):
    from training.ingest import IngestSettings, ingest
    out = tmp_path_factory.mktemp("dataset")
    ingest(tiny_collection, out, IngestSettings(resolution=32, validation=0.1))
    return out


def tiny_gan_config(**overrides):
    from training.config import config_from
    values = dict(kimg=0.032, snapshot_kimg=0.016, batch=8)
    values.update(overrides)
    return config_from("tiny", **values)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_collection, tmp_path_factory):
    """One `train all --tiny` run (shortened): DIR with dataset, gan, pairs, encoder, bundle."""
    from training.config import encoder_config_from
    from training.pipeline import train_all
    out = tmp_path_factory.mktemp("all")
    train_all(tiny_collection, out, tiny_gan_config(kimg=0.064, snapshot_kimg=0.064),
              encoder_config_from("tiny", steps=6, val_every=6), preset="tiny", pair_count=24,
              licence="CC BY-SA 3.0", credit="KanjiVG", progress=False)
    return out
