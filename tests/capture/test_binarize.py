"""capture.binarize: the one binarization of camera frames and training sketches."""
import cv2
import numpy as np
import pytest

from capture.binarize import (
    METHODS,
    BinarizeParams,
    binarize,
    centred_square,
    ink_fraction,
    sketch_difference,
)
from capture.quality import stroke_precision_recall
from capture.simulated import SimulatedPenCamera, SimulatedPenSettings


@pytest.fixture(scope="module")
def drawn_moments():
    """(camera, time) pairs at which simulated sheets carry strokes."""
    out = []
    for seed in (0, 1, 2):
        cam = SimulatedPenCamera(SimulatedPenSettings(pace=False, seed=seed))
        for t in (6.0, 12.0):
            if cam.sheet_present(t) and ink_fraction(cam.truth_sketch(256, t)) > 0.002:
                out.append((cam, t))
    assert len(out) >= 4
    return out


@pytest.fixture(scope="module")
def drawn_frames(drawn_moments):
    """(frame, crop homography, truth sketch) at R = 256 for each drawn moment."""
    return [(cam.render(t), cam.camera_to_sketch(256, t), cam.truth_sketch(256, t)) for cam, t in drawn_moments]


def test_default_binarization_finds_the_simulated_strokes(drawn_frames):
    """On simulated IR frames (vignetting, LED gradient, blur, noise, a tilted sheet) the
    default parameters recover the drawn strokes: precision and recall of stroke pixels
    (1 px tolerance) above 0.9 on every frame."""
    params = BinarizeParams()
    for frame, to_sketch, truth in drawn_frames:
        sketch = binarize(frame, params, to_sketch)
        assert sketch.shape == (256, 256) and sketch.dtype == np.uint8
        assert set(np.unique(sketch)) <= {0, 255}
        precision, recall = stroke_precision_recall(sketch, truth)
        assert precision > 0.9 and recall > 0.9, (precision, recall)


def test_small_model_resolution_keeps_the_strokes(drawn_moments):
    """At R = 64 (a small demo model) a camera pixel line is a fifth of a sketch pixel; area
    averaging still keeps precision and recall above 0.9."""
    params = BinarizeParams(resolution=64, window=15, flat_field=32)
    for cam, t in drawn_moments:
        frame = cam.render(t)
        sketch = binarize(frame, params, cam.camera_to_sketch(64, t))
        precision, recall = stroke_precision_recall(sketch, cam.truth_sketch(64, t))
        assert precision > 0.9 and recall > 0.9, (precision, recall)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_separates_strokes_from_paper(drawn_frames, method):
    """Each threshold method, with its default knob, still scores above 0.8 on the frames,
    so switching the method in the config never gives an empty or black sketch."""
    for frame, to_sketch, truth in drawn_frames:
        precision, recall = stroke_precision_recall(
            binarize(frame, BinarizeParams(method=method), to_sketch), truth
        )
        assert precision > 0.8 and recall > 0.8, (method, precision, recall)


@pytest.mark.parametrize("level", [0, 40, 128, 255])
def test_flat_frames_give_a_blank_sketch(level):
    """An all-black, all-white or uniform frame (a covered lens, a saturated sensor) is a
    blank sheet, not a sheet full of ink, for every method."""
    frame = np.full((720, 1280), level, np.uint8)
    for method in METHODS:
        assert ink_fraction(binarize(frame, BinarizeParams(method=method))) == 0.0


def test_blank_noisy_paper_stays_blank():
    """Sensor noise on lit paper with a strong brightness gradient produces no ink: the
    flat-field and the minimum contrast keep Otsu and the local methods from splitting it."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(120, 230, 1280)[None, :].repeat(720, 0)
    frame = np.clip(ramp + rng.normal(0, 4, ramp.shape), 0, 255).astype(np.uint8)
    for method in METHODS:
        assert ink_fraction(binarize(frame, BinarizeParams(method=method))) < 0.001, method


def test_bare_table_between_sheets_is_blank():
    """With no sheet on the table the camera sees the dim window and its sensor noise; the
    flat-field must not blow that noise up into ink (min_depth keeps it out)."""
    for noise in (3.0, 6.0):
        cam = SimulatedPenCamera(SimulatedPenSettings(pace=False, seed=0, noise=noise))
        cam.sheet_present(40.0)
        t = cam._sheets[0].t_off + 0.5
        assert not cam.sheet_present(t)
        sketch = binarize(cam.render(t), BinarizeParams(), cam.camera_to_sketch(256, t))
        assert ink_fraction(sketch) == 0.0
        noisy = binarize(cam.render(t), BinarizeParams(min_depth=0), cam.camera_to_sketch(256, t))
        assert ink_fraction(noisy) > 0.0005  # what min_depth is there for


def test_training_sketch_at_model_resolution_passes_unchanged():
    """A clean dark-on-white sketch already R x R (the training pipeline's case, to_sketch
    None) comes back with exactly its ink pixels."""
    img = np.full((128, 128), 255, np.uint8)
    cv2.line(img, (10, 10), (110, 90), 0, 1)
    cv2.circle(img, (64, 64), 30, 60, 2)
    out = binarize(img, BinarizeParams(resolution=128))
    assert np.array_equal(out < 128, img < 128)


def test_thin_line_survives_downscaling():
    """A 1-pixel line in a 1024 x 1024 image stays a connected line in the 256 sketch (area
    averaging before the threshold), where plain subsampling would break it up."""
    img = np.full((1024, 1024), 230, np.uint8)
    cv2.line(img, (100, 300), (900, 700), 120, 1)
    sketch = binarize(img, BinarizeParams())
    n, _ = cv2.connectedComponents((sketch == 0).view(np.uint8), connectivity=8)
    assert n == 2  # paper + one line
    cols = np.unique(np.nonzero(sketch == 0)[1])
    assert cols.min() <= 26 and cols.max() >= 224  # it spans the whole line


def test_crop_homography_selects_the_drawing_area():
    """Strokes outside the to_sketch area are left out and the area fills the sketch."""
    img = np.full((400, 600), 220, np.uint8)
    cv2.rectangle(img, (306, 106), (494, 294), 60, 3)  # a frame just inside the drawing area
    cv2.line(img, (20, 20), (200, 380), 60, 2)  # a stroke outside it
    to_sketch = np.array([[64 / 200, 0, -300 * 64 / 200], [0, 64 / 200, -100 * 64 / 200], [0, 0, 1]])
    sketch = binarize(img, BinarizeParams(resolution=64, window=7), to_sketch)
    ink = sketch == 0
    for side in (ink[:4].any(0), ink[-4:].any(0), ink[:, :4].any(1), ink[:, -4:].any(1)):
        assert side[4:-4].all()  # the frame runs along every edge of the sketch
    assert ink[8:56, 8:56].sum() == 0  # nothing inside, nothing from outside


def test_invert_reads_bright_ink():
    """`invert` makes bright lines on a dark ground the same sketch as dark on light."""
    img = np.full((256, 256), 220, np.uint8)
    cv2.line(img, (30, 200), (220, 40), 60, 2)
    dark = binarize(img, BinarizeParams())
    bright = binarize(255 - img, BinarizeParams(invert=True))
    assert np.array_equal(dark, bright) and ink_fraction(dark) > 0.005


@pytest.mark.parametrize("dots", [3, 600])
def test_specks_are_removed_but_lines_kept(dots):
    """Isolated dust dots smaller than speck_area vanish and a stroke stays, with few specks
    and with more than 255 (the two ways remove_specks relabels)."""
    img = np.full((256, 256), 220, np.uint8)
    cv2.line(img, (30, 128), (220, 128), 60, 2)
    lattice = [(x, y) for y in range(4, 252, 7) for x in range(4, 252, 7) if abs(y - 128) > 6]
    spots = lattice[:: max(1, len(lattice) // dots)][:dots]
    assert len(spots) == dots
    for x, y in spots:
        img[y, x] = 40
    sketch = binarize(img, BinarizeParams(speck_area=3))
    assert all(sketch[y, x] == 255 for x, y in spots)
    assert (sketch[126:131, 40:210] == 0).any(axis=0).all()
    assert (binarize(img, BinarizeParams(speck_area=0)) == 0).sum() > (sketch == 0).sum()


def test_centred_square_maps_corners():
    """The default crop takes the centred square: its corners land on the grid corners."""
    m = centred_square((720, 1280), 256)
    pts = cv2.perspectiveTransform(np.array([[[280 - 0.5, -0.5], [1000 - 0.5, 720 - 0.5]]]), m)[0]
    assert np.allclose(pts, [[-0.5, -0.5], [255.5, 255.5]])


def test_params_round_trip_through_a_dict():
    """to_dict / from_dict keep every field (what bundle.json stores)."""
    p = BinarizeParams(method="sauvola", window=21, k=0.3, flat_field=16, speck_area=5,
                       resolution=128, invert=True, offset=0.07, min_contrast=0.12, min_depth=4)
    assert BinarizeParams.from_dict(p.to_dict()) == p
    assert BinarizeParams.from_dict({}) == BinarizeParams()
    assert BinarizeParams.from_dict({"k": 1}).k == 1.0  # JSON may write 1 for 1.0


@pytest.mark.parametrize(
    "field,value",
    [("method", "median"), ("window", 4), ("window", 1), ("window", "15"), ("k", 0.0),
     ("offset", -0.1), ("flat_field", -1), ("speck_area", 2.5), ("resolution", 4),
     ("resolution", True), ("invert", "yes"), ("min_contrast", 1.5), ("min_depth", 300), ("colour", 1)],
)
def test_params_refuse_a_bad_field_naming_it(field, value):
    """A bad or unknown field raises ValueError whose message names the field."""
    with pytest.raises(ValueError, match=f"binarize.{field}"):
        BinarizeParams.from_dict({field: value})


def test_bad_images_are_refused_clearly():
    """Colour, float or 1-D input and a bad homography raise ValueError saying what is wrong."""
    p = BinarizeParams()
    with pytest.raises(ValueError, match="uint8 gray"):
        binarize(np.zeros((64, 64, 3), np.uint8), p)
    with pytest.raises(ValueError, match="uint8 gray"):
        binarize(np.zeros((64, 64), np.float32), p)
    with pytest.raises(ValueError, match="3x3"):
        binarize(np.zeros((64, 64), np.uint8), p, np.eye(2))
    with pytest.raises(ValueError, match="singular"):
        binarize(np.zeros((64, 64), np.uint8), p, np.zeros((3, 3)))


def test_sketch_difference_counts_changed_pixels():
    """sketch_difference is the share of differing pixels and refuses different shapes."""
    a = np.full((100, 100), 255, np.uint8)
    b = a.copy()
    assert sketch_difference(a, b) == 0.0
    b[:10, :5] = 0
    assert sketch_difference(a, b) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="shape"):
        sketch_difference(a, b[:50])


def test_mirrored_homography_gives_the_mirrored_sketch():
    """The camera films the sheet from below, so the calibration's to_sketch mirrors: a
    mirrored homography yields exactly the left-right flipped sketch."""
    img = np.full((480, 640), 215, np.uint8)
    cv2.line(img, (150, 60), (420, 400), 50, 3)
    cv2.circle(img, (330, 200), 70, 70, 2)
    p = BinarizeParams()
    straight = centred_square(img.shape, 256)
    flip = np.array([[-1.0, 0, 255], [0, 1, 0], [0, 0, 1]])
    plain, mirrored = binarize(img, p, straight), binarize(img, p, flip @ straight)
    assert ink_fraction(plain) > 0.01
    assert np.array_equal(np.fliplr(plain), mirrored)
