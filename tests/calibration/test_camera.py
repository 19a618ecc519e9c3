"""camera -> table from simulated camera frames of the sheet: accurate over random
perspectives with blur, noise, vignetting and a hand over a corner; refused (never a
wrong answer) when the frame cannot support it."""
import cv2
import numpy as np
import pytest

from calibration import apply_homography
from calibration.camera import CameraCalibrationError, calibrate_camera, to_calibration
from calibration.sheet import SheetLayout
from tests.calibration.synthetic import SHEET_PX_PER_MM, random_table_to_camera, render_camera_frame

SHEET = (210.0, 297.0)
CORNERS = np.array([[0, 0], [SHEET[0], 0], [SHEET[0], SHEET[1]], [0, SHEET[1]]])


@pytest.fixture(scope="module")
def sheet():
    layout = SheetLayout.for_sheet(SHEET)
    return layout, layout.render(SHEET_PX_PER_MM, label=False)


def corner_error_px(result, table_to_camera) -> np.ndarray:
    """Distances (camera px) between the sheet's corners through the fit and the truth."""
    fitted = apply_homography(np.linalg.inv(result.camera_to_table), CORNERS)
    return np.linalg.norm(fitted - apply_homography(table_to_camera, CORNERS), axis=1)


@pytest.mark.slow
def test_fifty_random_views_recover_the_sheet_corners_within_half_a_pixel(sheet):
    """Over 50 random perspective views with blur, noise, vignetting and a hand over a
    corner, the sheet's four corners (outside the board, so extrapolated) land on average
    within 0.5 camera px of the truth, and no single view is off by more than 1.5 px."""
    layout, image = sheet
    rng = np.random.default_rng(20261125)
    errors = []
    for _ in range(50):
        truth = random_table_to_camera(rng, SHEET)
        frame = render_camera_frame(layout, truth, rng, sheet_image=image)
        result = calibrate_camera(frame, SHEET)
        errors.append(corner_error_px(result, truth))
    errors = np.array(errors)
    print(f"corner error over 50 views: mean {errors.mean():.3f} px, max {errors.max():.3f} px")
    assert errors.mean() < 0.5
    assert errors.max() < 1.5


def _zoomed(truth, zoom, anchor_mm):
    """The same view zoomed by `zoom` about the camera point of `anchor_mm`."""
    c = apply_homography(truth, [anchor_mm])[0]
    z = np.array([[zoom, 0, c[0] * (1 - zoom)], [0, zoom, c[1] * (1 - zoom)], [0, 0, 1]])
    return z @ truth


def test_too_little_of_the_sheet_is_refused_and_never_answered_wrongly(sheet):
    """Zooming in on one corner shows less and less of the sheet: every answer given is
    right (corners within 1 px), and the closest views are refused, naming the reason."""
    layout, image = sheet
    rng = np.random.default_rng(7)
    truth = random_table_to_camera(rng, SHEET)
    refused = {}
    for zoom in (1.0, 1.4, 1.8, 2.4, 3.2):
        frame = render_camera_frame(layout, _zoomed(truth, zoom, (40.0, 50.0)), rng, sheet_image=image, hand=False)
        try:
            result = calibrate_camera(frame, SHEET)
        except CameraCalibrationError as exc:
            refused[zoom] = str(exc)
            continue
        assert corner_error_px(result, _zoomed(truth, zoom, (40.0, 50.0))).mean() < 1.0 * zoom
    assert 1.0 not in refused
    assert 3.2 in refused and 2.4 in refused
    assert all(("too few markers" in m) or ("too little of the sheet" in m) for m in refused.values())


def test_blurred_frame_is_refused_as_blurred(sheet):
    """A badly focused frame is refused and the message says it looks blurred."""
    layout, image = sheet
    rng = np.random.default_rng(3)
    frame = render_camera_frame(layout, random_table_to_camera(rng, SHEET), rng, sheet_image=image)
    with pytest.raises(CameraCalibrationError, match="too few markers.*blurred"):
        calibrate_camera(cv2.GaussianBlur(frame, (0, 0), 6), SHEET)


def test_glare_is_named_when_it_hides_the_markers(sheet):
    """A frame whose left part is saturated (a reflection) is refused naming glare."""
    layout, image = sheet
    rng = np.random.default_rng(4)
    frame = render_camera_frame(layout, random_table_to_camera(rng, SHEET, fill=(0.9, 0.95)), rng, sheet_image=image)
    frame[:, :420] = 255
    with pytest.raises(CameraCalibrationError, match="glare: .*saturated"):
        calibrate_camera(frame, SHEET)


def test_error_over_the_bound_is_refused(sheet):
    """The same frame that passes at the default bound is refused under a 0.001 px bound,
    with the measured error in the message."""
    layout, image = sheet
    rng = np.random.default_rng(5)
    frame = render_camera_frame(layout, random_table_to_camera(rng, SHEET), rng, sheet_image=image)
    result = calibrate_camera(frame, SHEET)
    assert 0 < result.rms_px < 1.5 and result.rms_mm > 0
    with pytest.raises(CameraCalibrationError, match=r"reprojection error .* px .* over the bound 0.001 px"):
        calibrate_camera(frame, SHEET, max_error_px=0.001)


def test_wrong_sheet_size_finds_too_few_markers(sheet):
    """Calibrating an A4 photo as an A3 sheet is refused: the A3 board's corners are
    not found (same dictionary, other layout), rather than a homography in wrong mm."""
    layout, image = sheet
    rng = np.random.default_rng(6)
    frame = render_camera_frame(layout, random_table_to_camera(rng, SHEET), rng, sheet_image=image)
    with pytest.raises(CameraCalibrationError):
        calibrate_camera(frame, (420.0, 297.0))


def test_camera_step_keeps_the_projector_step_of_the_same_sheet(sheet):
    """Re-running the camera step keeps the previous projector fit and drawing area of
    the same sheet, and drops them for another sheet."""
    from calibration import Calibration

    layout, image = sheet
    rng = np.random.default_rng(8)
    result = calibrate_camera(render_camera_frame(layout, random_table_to_camera(rng, SHEET), rng,
                                                  sheet_image=image), SHEET)
    previous = Calibration.uncalibrated((640, 480), (800, 600))
    previous = Calibration(**{**previous.__dict__, "sheet_mm": SHEET, "calibrated": True,
                              "drawing_area_mm": (20.0, 20.0, 170.0, 170.0)})
    kept = to_calibration(result, SHEET, previous=previous)
    np.testing.assert_allclose(kept.projector_to_table, previous.projector_to_table)
    assert kept.drawing_area_mm == (20.0, 20.0, 170.0, 170.0) and kept.projector_mode == (800, 600)
    other = to_calibration(result, (297.0, 420.0), previous=previous)
    assert other.projector_to_table is None and other.drawing_area_mm == (15.0, 15.0, 267.0, 390.0)
