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
    assert sum(e["split"] == "validation" for e in real) <= dataset["counts"]["validation"]
    assert len(real) + manifest["dropped_blank"] >= dataset["counts"]["images"]
    s, _, _ = load_pairs(tmp_path, None)
    assert set(np.unique(s)) <= {0, 255}
