"""Pair codes: collection drawings get W+ codes by optimisation, stored for all their pairs."""
import numpy as np


def test_pair_codes_serve_every_pair_of_a_drawing_and_continue_where_they_stopped(tiny_pipeline, tmp_path):
    """`find_pair_codes` codes the chosen drawings only, every pair of a coded drawing (whole
    sketch and first strokes) points to its code, the code draws the drawing better than
    w_avg does, and a second run adds the rest without touching the first run's codes."""
    import torch

    from inference.tensors import from_uint8
    from training.gan import to_uint8
    from training.pair_codes import drawings_without_code, find_pair_codes
    from training.report import load_networks
    from training.sketches import load_codes, load_pairs, make_pairs

    pairs = tmp_path / "pairs"
    manifest = make_pairs(tiny_pipeline / "gan", pairs, 0, collection=tiny_pipeline / "dataset",
                          collection_count=12, partial_share=0.5)
    todo = drawings_without_code(manifest)
    assert todo and manifest["codes"] is None
    first = find_pair_codes(pairs, tiny_pipeline / "encoder", count=3, steps=40, batch=2)
    assert first["found"] == 3 and first["left"] == len(todo) - 3
    _, drawings, coded = load_pairs(pairs, None)
    codes, known = load_codes(pairs, coded)
    by_drawing = {}
    for i, e in enumerate(coded["pairs"]):
        by_drawing.setdefault(e["drawing"], []).append(i)
    with_code = [d for d, rows in by_drawing.items() if known[rows].any()]
    assert len(with_code) == 3
    assert any(len(by_drawing[d]) > 1 for d in with_code)  # first strokes share the code
    for d in with_code:
        rows = by_drawing[d]
        assert known[rows].all() and all(np.array_equal(codes[rows[0]], codes[r]) for r in rows)
    generator, _, _, _ = load_networks(tiny_pipeline / "encoder")
    rows = [by_drawing[d][0] for d in with_code]
    target = from_uint8(drawings[rows])
    with torch.no_grad():
        found = from_uint8(to_uint8(generator.synthesis(torch.from_numpy(codes[rows]), noise_mode="const")))
        mean = from_uint8(to_uint8(generator.synthesis(generator.w_avg.expand(len(rows), generator.num_ws, -1),
                                                       noise_mode="const")))
    assert ((found - target) ** 2).mean() < ((mean - target) ** 2).mean()

    second = find_pair_codes(pairs, tiny_pipeline / "encoder", count=100, steps=5, batch=4)
    assert second["found"] == len(todo) - 3 and second["left"] == 0
    _, _, again = load_pairs(pairs, None)
    codes2, known2 = load_codes(pairs, again)
    train = np.array([e["split"] == "train" for e in again["pairs"]])
    assert known2[train].all() and not known2[~train].any()  # held-out drawings stay unseen
    assert np.array_equal(codes2[rows], codes[rows])
    assert again["found_codes"]["drawings"] == len(todo)


def test_codes_of_another_generator_are_refused(tiny_pipeline, tmp_path):
    """Codes are found for one generator: training against another is refused with what to
    do, the same generator passes."""
    import pytest
    import torch

    from training.pair_codes import find_pair_codes
    from training.report import load_networks
    from training.sketches import check_codes_generator, load_manifest_file, make_pairs

    pairs = tmp_path / "pairs"
    make_pairs(tiny_pipeline / "gan", pairs, 0, collection=tiny_pipeline / "dataset", collection_count=4,
               partial_share=0.5)
    find_pair_codes(pairs, tiny_pipeline / "gan", count=1, steps=1)
    manifest = load_manifest_file(pairs)
    generator, _, _, _ = load_networks(tiny_pipeline / "gan")
    check_codes_generator(pairs, manifest, generator)
    with torch.no_grad():
        next(generator.synthesis.parameters()).add_(0.01)
    with pytest.raises(ValueError, match="belong to another generator"):
        check_codes_generator(pairs, manifest, generator)
