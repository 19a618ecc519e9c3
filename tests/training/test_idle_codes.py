"""Idle codes: the bundle's idle wander can move between the collection's own drawings."""
import json
import shutil

import numpy as np
import pytest


def test_idle_codes_reach_the_bundle_and_the_wander_moves_between_them(tiny_pipeline, tmp_path):
    """`collection_codes` finds W+ codes whose drawings are near the collection's; added to
    a bundle, they load with it and every keyframe of the idle wander is one of them."""
    from inference.bundle import Bundle
    from inference.runtime import open_backend
    from table.motion import Wander
    from training.idle_codes import add_to_bundle, collection_codes
    from training.report import load_networks

    generator, encoder, _, _ = load_networks(tiny_pipeline / "bundle")
    codes, error = collection_codes(generator, encoder, tiny_pipeline / "dataset", count=6, steps=30)
    assert codes.shape == (6, generator.num_ws, generator.w_dim) and 0 <= error < 0.5
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_pipeline / "bundle", bundle)
    add_to_bundle(bundle, codes, {"source": "test"})
    loaded = Bundle.load(bundle)
    assert np.allclose(loaded.idle_codes, codes, atol=1e-2)  # stored as float16
    wander = Wander(open_backend(bundle, threads=1), psi=0.7, speed=1.0, t0=0.0, seed=3)
    for t in range(1, 6):  # at each whole second the wander sits on a keyframe
        w = wander.at(float(t))
        assert np.min(np.abs(loaded.idle_codes - w).max(axis=(1, 2))) < 1e-6


def test_idle_codes_of_the_wrong_shape_are_refused(tiny_bundle, tmp_path):
    """A bundle whose idle codes do not fit its generator is refused before the table starts."""
    from inference.bundle import Bundle, BundleError
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    np.save(bundle / "idle_codes.npy", np.zeros((4, 3, 64), np.float16))
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["idle"] = {"codes": "idle_codes.npy"}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"idle_codes\.npy: idle codes have shape \[4, 3, 64\], expected \[N, 8, 64\]"):
        Bundle.load(bundle, check_graphs=False)
