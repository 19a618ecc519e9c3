"""W+ codes of the collection's drawings, found once and stored with the pairs (`newsnow train
pair-codes`).

The encoder's latent term needs the code of each pair's whole drawing. Generated pairs
carry theirs; a collection drawing's code is found here by W+ optimisation, started from
the encoder's code of its whole sketch when a trained encoder is given (else from w_avg),
and then serves every pair of that drawing: the whole sketch and each of its first strokes.
A first stroke is then taught the code of a real drawing of the collection, not the
encoder's own (poorer) guess. Codes belong to one generator: find them with the generator
the encoder will train against.

Costly on a CPU (about 10 ms per drawing per step at 64 px on one thread; 60 steps at
lr 0.05 from the encoder's code reach what 100 at 0.02 do), so it works in
batches and writes codes.npy and the manifest after each: stopped, it resumes where it was,
and `--count` can grow over several runs.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from storage import atomic_write, atomic_write_json


def drawings_without_code(manifest: dict) -> list[str]:
    """The collection's training drawings (by file) none of whose pairs has a code, in pair order."""
    coded = {e["drawing"] for e in manifest["pairs"] if e.get("code") is not None}
    seen, out = set(), []
    for e in manifest["pairs"]:
        d = e["drawing"]
        if e.get("source") == "collection" and e["split"] == "train" and d not in coded and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_pair_codes(pairs: Path, model: Path, count: int, steps: int = 60, lr: float = 0.05, batch: int = 64,
                    seed: int = 0, progress=None) -> dict:
    """Find W+ codes for up to `count` more collection drawings of `pairs` (a seeded choice
    among those without one) with the generator (and encoder) of `model`; returns a summary."""
    import cv2
    import torch

    from inference.tensors import from_uint8
    from training.report import load_networks, optimise_wplus
    from training.sketches import CODES, MANIFEST, check_codes_generator, generator_fingerprint, load_manifest_file

    pairs = Path(pairs)
    manifest = load_manifest_file(pairs)
    generator, encoder, _, described = load_networks(Path(model))
    check_codes_generator(pairs, manifest, generator)
    todo = drawings_without_code(manifest)
    rng = np.random.default_rng(seed)
    chosen = [todo[i] for i in sorted(rng.choice(len(todo), min(count, len(todo)), replace=False))] if todo else []
    whole_sketch = {e["drawing"]: e["sketch"] for e in manifest["pairs"] if e.get("part", "whole") == "whole"}
    codes_path = pairs / CODES
    stored = list(np.load(codes_path)) if manifest.get("codes") and codes_path.is_file() else []
    read = lambda f: cv2.imread(str(pairs / f), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    errors, started = [], time.time()
    for start in range(0, len(chosen), batch):
        part = chosen[start:start + batch]
        drawings = np.stack([read(d) for d in part])
        with torch.no_grad():
            if encoder is not None:
                sketches = np.stack([read(whole_sketch[d]) for d in part])
                init = encoder(from_uint8(torch.from_numpy(sketches))[:, None]) + generator.w_avg
            else:
                init = generator.w_avg.expand(len(part), generator.num_ws, -1).clone()
        images, w = optimise_wplus(generator, drawings, init, steps, lr)
        errors.extend(((from_uint8(images) - from_uint8(drawings)) ** 2).mean(axis=(1, 2)).tolist())
        index = {d: len(stored) + i for i, d in enumerate(part)}
        stored.extend(w.numpy().astype(np.float16))
        for e in manifest["pairs"]:
            if e["drawing"] in index:
                e["code"] = index[e["drawing"]]
        # codes first, then the manifest that points into them: a kill in between loses a batch, never the pairs
        atomic_write(codes_path, lambda f: np.save(f, np.stack(stored)))
        manifest["codes"] = CODES
        manifest["codes_generator"] = generator_fingerprint(generator)
        manifest["found_codes"] = {"model": described, "steps": steps, "lr": lr,
                                   "drawings": len({e["drawing"] for e in manifest["pairs"]
                                                    if e.get("source") == "collection" and e.get("code") is not None}),
                                   "mse_last_run": round(float(np.mean(errors)), 4)}
        atomic_write_json(pairs / MANIFEST, manifest)
        if progress:
            done = start + len(part)
            progress(f"pair codes: {done}/{len(chosen)} drawings, MSE {np.mean(errors):.3f}, "
                     f"{(time.time() - started) / done:.2f} s a drawing")
    return {"found": len(chosen), "left": len(todo) - len(chosen), "mse": float(np.mean(errors)) if errors else None,
            "seconds": time.time() - started}
