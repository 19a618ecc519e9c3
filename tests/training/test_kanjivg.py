import numpy as np
import pytest

from training.collections import kanjivg


def test_strokes_parse_the_kanjivg_paths():
    """水 (U+6C34) has 4 strokes; each is a polyline inside the 109-unit box."""
    strokes = kanjivg.strokes(kanjivg.svg_folder() / "06c34.svg")
    assert len(strokes) == 4
    for points in strokes:
        assert points.ndim == 2 and points.shape[1] == 2 and len(points) > 10
        assert points.min() > 0 and points.max() < kanjivg.VIEWBOX


def test_render_is_dark_ink_on_white_paper_with_varying_width():
    """A render has white paper, dark ink, and two seeds give different (jittered) drawings."""
    strokes = kanjivg.strokes(kanjivg.svg_folder() / "06c34.svg")
    a = kanjivg.render(strokes, 64, np.random.default_rng(0))
    b = kanjivg.render(strokes, 64, np.random.default_rng(1))
    assert a.shape == (64, 64) and a.dtype == np.uint8
    assert np.median(a) == 255 and a.min() < 60
    assert 0.02 < (a < 128).mean() < 0.4
    assert not np.array_equal(a, b)


def test_bad_svg_is_a_clear_error(tmp_path):
    """A broken or empty SVG raises CollectionError naming the file."""
    bad = tmp_path / "bad.svg"
    bad.write_text("<svg")
    with pytest.raises(kanjivg.CollectionError, match="bad.svg"):
        kanjivg.strokes(bad)
    empty = tmp_path / "empty.svg"
    empty.write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    with pytest.raises(kanjivg.CollectionError, match="no stroke"):
        kanjivg.strokes(empty)


def test_render_collection_filters_by_stroke_count(tmp_path):
    """max_strokes keeps only simple characters; files are PNGs of the asked size."""
    import cv2
    files = kanjivg.render_collection(tmp_path, size=32, count=5, max_strokes=3)
    assert len(files) == 5
    for f in files:
        assert cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).shape == (32, 32)
        assert len(kanjivg.strokes(kanjivg.svg_folder() / (f.stem.removeprefix("kanjivg_") + ".svg"))) <= 3
