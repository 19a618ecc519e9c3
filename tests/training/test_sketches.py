import cv2
import numpy as np

import capture.binarize
from capture.binarize import BinarizeParams, binarize
from training import sketches
from training.sketches import SketchSettings, load_pairs, make_sketch, pencil_sketch, simplify


def test_pencil_sketch_is_psp_filter():
    """The filter is blur -> OR of Sobel edges of image and inverse -> 0.75/0.75 -> invert:
    a black bar on white turns into dark outlines, paper stays white."""
    image = np.full((32, 32), 255, np.uint8)
    image[10:22, 14:18] = 0
    out = pencil_sketch(image)
    assert out.dtype == np.uint8 and out[2, 2] == 255
    assert out[16, 13] < 128 and out[16, 18] < 128      # both edges of the bar
    blur = cv2.GaussianBlur(image, (3, 3), 0)
    gx = cv2.Sobel(blur, cv2.CV_8U, 1, 0, ksize=3)
    assert out[16, 13] == 255 - min(255, round(1.5 * max(gx[16, 13], cv2.Sobel(255 - blur, cv2.CV_8U, 1, 0, ksize=3)[16, 13])))


def test_simplify_gives_pen_lines_of_the_chosen_width():
    """Thick outlines become one line of `width` px; specks shorter than min_length vanish."""
    pencil = np.full((64, 64), 255, np.uint8)
    pencil[30:36, 5:60] = 0          # a thick line
    pencil[5, 5] = 0                 # a speck
    out = simplify(pencil, SketchSettings(min_length=6), width=3)
    column = (out[:, 32] == 0).sum()
    assert column == 3 and out[5, 5] == 255
    assert set(np.unique(out)) <= {0, 255}


def test_pairs_are_binary_and_made_by_the_runtime_binarizer(tiny_pipeline):
    """Every sketch is 0/255, the manifest carries BinarizeParams that the runtime accepts,
    the module calls capture.binarize.binarize itself, and binarizing a stored sketch again
    with those params changes nothing (it already is the binarizer's output)."""
    assert sketches.binarize is capture.binarize.binarize
    s, d, manifest = load_pairs(tiny_pipeline / "pairs", None)
    params = BinarizeParams.from_dict(manifest["binarize"])
    assert params.resolution == s.shape[1] == d.shape[1]
    assert set(np.unique(s)) <= {0, 255}
    for sketch in s[:8]:
        assert np.array_equal(binarize(sketch, params), sketch)
    drawing = d[0]
    pen = manifest["pairs"][0]["pen"]
    settings = SketchSettings(**manifest["sketch"])
    assert np.array_equal(make_sketch(drawing, settings, params, pen), s[0])
    assert (tiny_pipeline / "pairs" / "contact_sheet.png").is_file()


def test_collection_drawings_join_the_pairs_with_their_split(tiny_pipeline, tmp_path):
    """--collection adds the collection's own drawings as pairs, keeping the dataset's
    train/validation split, sketched by the same pipeline and binarizer."""
    import json
    from training.sketches import make_pairs
    manifest = make_pairs(tiny_pipeline / "gan", tmp_path, 4, collection=tiny_pipeline / "dataset",
                          collection_count=100)
    dataset = json.loads((tiny_pipeline / "dataset" / "manifest.json").read_text())
    real = [e for e in manifest["pairs"] if e["source"] == "collection"]
    assert manifest["from_collection"] == len(real) > 0
    held = {e["drawing"] for e in real if e["split"] == "validation"}
    assert 0 < len(held) <= dataset["counts"]["validation"]
    assert len({e["drawing"] for e in real}) + manifest["dropped_blank"] >= dataset["counts"]["images"]
    s, _, _ = load_pairs(tmp_path, None)
    assert set(np.unique(s)) <= {0, 255}


def test_partial_pairs_give_the_first_strokes_and_teach_the_whole_drawing(tiny_pipeline, tmp_path):
    """With stroke order (the KanjiVG renders), a partial pair's sketch is the first k of n
    strokes, drawn as in the whole drawing, and its target is the WHOLE drawing: the same
    drawing file as its whole pair, its lines on the drawing's ink, less ink than the whole
    sketch on average; about the share asked for."""
    from training.partial import StrokeOrder
    from training.sketches import make_pairs
    dataset = tiny_pipeline / "dataset"
    manifest = make_pairs(tiny_pipeline / "gan", tmp_path, 0, collection=dataset, collection_count=100,
                          partial_share=0.75)
    by_drawing = {}
    for e in manifest["pairs"]:
        by_drawing.setdefault(e["drawing"], []).append(e)
    read = lambda f: cv2.imread(str(tmp_path / f), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    partial, less = 0, []
    for drawing, entries in by_drawing.items():
        whole = [e for e in entries if e["part"] == "whole"]
        assert len(whole) == 1
        for e in entries:
            if e["part"] != "whole":
                k, n = map(int, e["part"].split("/"))
                assert 1 <= k < n and e["split"] == whole[0]["split"]
                lines = read(e["sketch"]) < 128
                near_ink = cv2.dilate((read(drawing) < 128).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                assert (lines & near_ink).sum() >= 0.9 * lines.sum()
                less.append(lines.sum() < (read(whole[0]["sketch"]) < 128).sum())
                partial += 1
    assert partial == manifest["partial"] and 0.5 < partial / manifest["count"] < 0.8
    assert np.mean(less) > 0.7
    # the first n of n strokes are the drawing itself, pixel for pixel
    from training.ingest import load_manifest
    order = StrokeOrder.of_dataset(dataset)
    record = load_manifest(dataset)["images"][0]
    n = order.strokes(record["source"])
    assert n >= 1 and np.array_equal(order.first_strokes(record["source"], n, 32),
                                     cv2.imread(str(dataset / record["file"]), cv2.IMREAD_GRAYSCALE))


def test_pen_pieces_of_a_sketch_without_stroke_order(tiny_pipeline):
    """Without stroke order a partial sketch keeps some of the sketch's pen pieces: only
    ink the sketch has, less of it with fewer pieces, all of it with every piece."""
    from training.partial import first_pieces, pen_pieces
    s, _, _ = load_pairs(tiny_pipeline / "pairs", None)
    sketch = max(s, key=lambda x: (x < 128).sum())
    pieces = pen_pieces(sketch)
    assert len(pieces) >= 2
    ink = [(first_pieces(sketch, k, np.random.default_rng(0), pieces) < 128) for k in (1, len(pieces))]
    assert not (ink[0] & ~(sketch < 128)).any()
    assert 0 < ink[0].sum() < ink[1].sum() and ink[1].sum() >= 0.95 * (sketch < 128).sum()


def test_generated_pairs_carry_their_codes(tiny_pipeline, tmp_path):
    """A generated drawing's stored W+ code draws it again (float16 storage, within a few
    grey levels), and its partial pairs point to the same code."""
    import torch

    from inference.checkpoint import load_model_checkpoint
    from training.gan import to_uint8
    from training.sketches import load_codes, make_pairs
    make_pairs(tiny_pipeline / "gan", tmp_path, 6, partial_share=0.5)
    s, d, manifest = load_pairs(tmp_path, None)
    codes, known = load_codes(tmp_path, manifest)
    assert known.all()
    generator, _, _ = load_model_checkpoint(tiny_pipeline / "gan" / "generator.pt")
    with torch.no_grad():
        again = to_uint8(generator.synthesis(torch.from_numpy(codes), noise_mode="const"))
    assert np.abs(again.astype(int) - d.astype(int)).max() <= 6
    partial = [i for i, e in enumerate(manifest["pairs"]) if e["part"] != "whole"]
    assert partial and all(np.array_equal(codes[i], codes[[j for j, f in enumerate(manifest["pairs"])
                                                           if f["drawing"] == manifest["pairs"][i]["drawing"]][0]])
                           for i in partial)
