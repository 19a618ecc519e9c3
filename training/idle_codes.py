"""W+ codes of the collection's own drawings for the idle wander (`newsnow train idle-codes`).

A generator that draws less variety than its collection would make the idle picture one
template all day. The bundle can carry instead the W+ codes of some of the collection's
drawings, found once by W+ optimisation (started from the encoder's code of each drawing's
sketch), and the table's idle wander moves between those (table.motion.Wander).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from storage import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

IDLE_CODES = "idle_codes.npy"


def collection_codes(generator, encoder, dataset: Path, count: int = 256, steps: int = 200, lr: float = 0.02,
                     seed: int = 0, batch: int = 64) -> tuple[np.ndarray, float]:
    """W+ codes [count, num_ws, w_dim] of `count` training drawings of `dataset` (a seeded
    choice), and the mean squared error their images keep ([-1, 1] range)."""
    import torch

    from inference.tensors import from_uint8
    from training.ingest import load_images
    from training.report import optimise_wplus
    from training.sketches import SketchSettings, default_binarize, make_sketch

    drawings = load_images(dataset, "train")
    drawings = drawings[np.random.default_rng(seed).choice(len(drawings), min(count, len(drawings)), replace=False)]
    params = default_binarize(generator.resolution)
    codes, errors = [], []
    for i in range(0, len(drawings), batch):
        part = drawings[i:i + batch]
        with torch.no_grad():
            if encoder is not None:
                sketches = np.stack([make_sketch(d, SketchSettings(), params) for d in part])
                init = encoder(torch.from_numpy(from_uint8(sketches))[:, None]) + generator.w_avg
            else:
                init = generator.w_avg.expand(len(part), generator.num_ws, -1).clone()
        images, w = optimise_wplus(generator, part, init, steps, lr)
        codes.append(w.numpy())
        errors.append(((from_uint8(images) - from_uint8(part)) ** 2).mean(axis=(1, 2)))
    return np.concatenate(codes), float(np.concatenate(errors).mean())


def add_to_bundle(bundle: Path, codes: np.ndarray, source: dict) -> Path:
    """Write `codes` (float16) into the bundle folder and name them in bundle.json."""
    from inference.bundle import BUNDLE_JSON, Bundle

    bundle = Path(bundle)
    atomic_write(bundle / IDLE_CODES, lambda f: np.save(f, codes.astype(np.float16)))
    meta = json.loads((bundle / BUNDLE_JSON).read_text())
    meta["idle"] = {"codes": IDLE_CODES, "count": int(len(codes)), **source}
    atomic_write_json(bundle / BUNDLE_JSON, meta)
    Bundle.load(bundle, check_graphs=False)  # refuse now, not on the table
    return bundle / IDLE_CODES
