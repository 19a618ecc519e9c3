"""capture.simulated: the seeded pen camera behind `newsnow demo` and the tests."""
import numpy as np
import pytest

from capture.binarize import ink_fraction
from capture.health import FAULT_KINDS
from capture.simulated import Fault, SimulatedPenCamera, SimulatedPenSettings

SMALL = dict(width=320, height=180, pace=False)


def test_same_seed_same_frames_other_seed_other_frames():
    """Two cameras with one seed give identical frames; another seed gives other frames."""
    a = SimulatedPenCamera(SimulatedPenSettings(seed=3, **SMALL))
    b = SimulatedPenCamera(SimulatedPenSettings(seed=3, **SMALL))
    c = SimulatedPenCamera(SimulatedPenSettings(seed=4, **SMALL))
    for _ in range(90):
        fa, fb, fc = a.read(), b.read(), c.read()
    assert fa.sequence == fb.sequence == 89
    assert np.array_equal(fa.image, fb.image)
    assert not np.array_equal(fa.image, fc.image)


def test_picture_depends_only_on_time_not_on_reading_speed():
    """Rendering t directly equals reading frame by frame up to t (a test can jump ahead)."""
    a = SimulatedPenCamera(SimulatedPenSettings(seed=1, **SMALL))
    for _ in range(150):
        frame = a.read()
    b = SimulatedPenCamera(SimulatedPenSettings(seed=1, **SMALL))
    assert np.array_equal(frame.image, b.render(frame.sequence / 30.0))


def test_a_sheet_starts_blank_and_fills_with_strokes():
    """A new sheet shows no ink for blank_s, then the ground truth grows stroke by stroke
    (with pauses where it stays the same), and the frame darkens where the truth says ink."""
    cam = SimulatedPenCamera(SimulatedPenSettings(seed=2, blank_s=1.0, **SMALL))
    assert ink_fraction(cam.truth_sketch(64, 0.5)) == 0
    inks = [ink_fraction(cam.truth_sketch(64, t)) for t in np.arange(1.0, 8.0, 0.1)]
    assert inks[-1] > 0.01
    assert all(b >= a for a, b in zip(inks, inks[1:]))
    steps = np.diff(inks)
    assert (steps == 0).any() and (steps > 0).any()  # pauses and drawing
    t = 8.0
    img, mask = cam.render(t).astype(float), cam.truth_mask(t)
    assert img[mask].mean() < img[~mask & (img > 60)].mean() - 10


def test_sheets_are_replaced_and_sometimes_shifted():
    """Over a minute the script lays several sheets (blank again after each) and nudges a
    sheet at least once, which moves the crop homography."""
    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, shift_chance=0.5, **SMALL))
    cam.sheet_present(60.0)  # makes the script up to a minute
    sheets = cam._sheets
    assert len(sheets) >= 2
    assert ink_fraction(cam.truth_sketch(64, sheets[1].t_on + 0.1)) == 0
    shifted = [s for s in sheets if s.shifts]
    assert shifted
    ts = shifted[0].shifts[0][0]
    before, after = cam.camera_to_sketch(64, ts - 0.01), cam.camera_to_sketch(64, ts + 0.01)
    assert not np.allclose(before, after)
    assert not cam.sheet_present(sheets[0].t_off + 0.01)  # between sheets: bare table


def test_crop_homography_maps_the_drawing_area_onto_the_sketch():
    """camera_to_sketch sends the drawing area's corners (through sheet_to_camera) to the
    sketch grid's corners."""
    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, **SMALL))
    x, y, w, h = cam.settings.drawing_area_mm
    corners_mm = np.array([[[x, y], [x + w, y + h]]])
    import cv2

    cam_px = cv2.perspectiveTransform(corners_mm, cam.sheet_to_camera(3.0))
    grid = cv2.perspectiveTransform(cam_px, cam.camera_to_sketch(128, 3.0))[0]
    assert np.allclose(grid, [[-0.5, -0.5], [127.5, 127.5]], atol=1e-6)


def test_scheduled_faults_behave_like_a_failing_camera():
    """Each fault kind does what a broken camera does during its window: vanish gives no
    frame, freeze repeats one picture, garbage has the wrong size/dtype or is black/white;
    the health report counts each and says reconnecting / frozen while they last."""
    faults = tuple(Fault(kind, 1.0 + 2 * i, 1.5) for i, kind in enumerate(FAULT_KINDS))
    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, faults=faults, **SMALL))
    seen = {}
    for i in range(int(30 * (1 + 2 * len(FAULT_KINDS)))):
        f = cam.read()
        t = (i + 1 - 1) / 30.0 if f is None else f.sequence / 30.0
        kind = cam.fault_at(t)
        seen.setdefault(kind, []).append((f, cam.health()))
    assert all(f is None for f, _ in seen["vanish"])
    assert seen["vanish"][-1][1].state == "reconnecting"
    frozen = [f.image for f, _ in seen["freeze"]]
    assert all(np.array_equal(frozen[0], im) for im in frozen)
    assert seen["freeze"][-1][1].state == "frozen"
    assert all(f.image.shape == (90, 160) for f, _ in seen["wrong_size"])
    assert all(f.image.dtype == np.float32 for f, _ in seen["wrong_dtype"])
    assert all(not f.image.any() for f, _ in seen["black"])
    assert all((f.image == 255).all() for f, _ in seen["white"])
    ok = [f for f, _ in seen[None]]
    assert all(f.image.shape == (180, 320) and f.image.dtype == np.uint8 for f in ok)
    assert cam.health().faults == {k: 1 for k in FAULT_KINDS}


def test_random_fault_schedule_is_seeded():
    """faults_per_minute draws the same faults for a seed, other ones for another seed."""
    def schedule(seed):
        cam = SimulatedPenCamera(SimulatedPenSettings(seed=seed, faults_per_minute=6, **SMALL))
        return [cam.fault_at(t) for t in np.arange(0, 120, 0.25)]

    a, b = schedule(5), schedule(6)
    assert a == schedule(5) and a != b
    assert sum(k is not None for k in a) > 0


def test_paced_camera_keeps_its_frame_rate():
    """Paced, the camera hands out frames no faster than fps (a reader cannot outrun it) and
    stamps them with the monotonic clock."""
    import time

    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, fps=50, **{**SMALL, "pace": True}))
    t0 = time.monotonic()
    frames = [cam.read(timeout=1) for _ in range(11)]
    assert time.monotonic() - t0 >= 0.19
    assert all(t0 <= f.t_capture <= time.monotonic() for f in frames)
    assert frames[-1].sequence >= 10


@pytest.mark.parametrize("field,value", [("strokes", "words"), ("fps", 0), ("width", 10),
                                         ("strokes_per_sheet", (5, 2)), ("area_margin_mm", 200), ("px_per_mm", 100.0),
                                         ("darkness", (0.6, 0.2))])
def test_settings_refuse_a_bad_field(field, value):
    """A bad setting raises ValueError naming it."""
    with pytest.raises(ValueError, match=f"simulated.{field}"):
        SimulatedPenSettings.from_dict({field: value})


def test_settings_round_trip():
    """to_dict / from_dict keep every setting, faults included."""
    s = SimulatedPenSettings(seed=9, faults=(Fault("freeze", 2.0, 1.0),), sheet_mm=(297.0, 210.0))
    assert SimulatedPenSettings.from_dict(s.to_dict()) == s


def test_kanji_strokes_from_kanjivg():
    """The kanji stroke style draws KanjiVG characters (when the train extra is installed)."""
    pytest.importorskip("svg.path")
    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, strokes="kanji", strokes_per_sheet=(3, 3), **SMALL))
    sheet = cam._last_sheet_before(0.0)
    assert len(sheet.strokes) == 3
    assert ink_fraction(cam.truth_sketch(128, sheet.strokes[-1].t_end)) > 0.001


def test_crop_can_be_asked_from_another_thread_while_reading():
    """The loop asks camera_to_sketch from its binarizing thread while the capture thread
    reads: the lazily made script still has each sheet once, in order."""
    import threading
    import time

    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, blank_s=0.2, strokes_per_sheet=(1, 1), **SMALL))
    done = threading.Event()

    def ask():
        while not done.is_set():
            cam.camera_to_sketch(64)
            time.sleep(0.0005)

    helpers = [threading.Thread(target=ask) for _ in range(2)]
    for h in helpers:
        h.start()
    try:
        for _ in range(450):  # 15 s of simulation: several sheets
            cam.read()
    finally:
        done.set()
        for h in helpers:
            h.join()
    starts = [s.t_on for s in cam._sheets]
    assert len(starts) >= 3 and starts == sorted(set(starts))


def test_a_driven_clock_sets_the_pace():
    """With an injected clock the camera shows the frame of that clock's time (frames in
    between are skipped, like a camera read too slowly) and stamps frames with it."""
    now = [100.0]
    cam = SimulatedPenCamera(SimulatedPenSettings(seed=0, **{**SMALL, "pace": True}), clock=lambda: now[0])
    first = cam.read(timeout=0)
    now[0] += 0.5
    later = cam.read(timeout=0)
    assert first.sequence == 0 and later.sequence == 15
    assert later.t_capture == 100.5
    assert np.array_equal(later.image, SimulatedPenCamera(SimulatedPenSettings(seed=0, **SMALL)).render(0.5))
