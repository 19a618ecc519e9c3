"""Lens distortion from several tilted views of the sheet: the camera step with the lens
model is accurate where a bare homography is off by many pixels; the model survives the
calibration file and undistorts frames."""
import cv2
import numpy as np
import pytest

from calibration import CalibrationError, apply_homography, load, save
from calibration.camera import calibrate_camera, to_calibration
from calibration.lens import calibrate_lens
from calibration.sheet import SheetLayout
from tests.calibration.synthetic import (SHEET_PX_PER_MM, distort_points, distortion_maps, pinhole_table_to_camera,
                                         random_table_to_camera, render_camera_frame)

SHEET = (210.0, 297.0)
CORNERS = np.array([[0, 0], [SHEET[0], 0], [SHEET[0], SHEET[1]], [0, SHEET[1]]])
K = np.array([[560.0, 0, 322.0], [0, 560.0, 236.0], [0, 0, 1]])
D = np.array([-0.28, 0.09, 0.0, 0.0, 0.0])  # strong barrel distortion: ~50 px at the frame's corners


@pytest.fixture(scope="module")
def setup():
    layout = SheetLayout.for_sheet(SHEET)
    image = layout.render(SHEET_PX_PER_MM, label=False)
    maps = distortion_maps(K, D)
    rng = np.random.default_rng(4)
    views = [render_camera_frame(layout, pinhole_table_to_camera(rng, SHEET, K), rng, sheet_image=image,
                                 lens_maps=maps, hand=False) for _ in range(6)]
    lens = calibrate_lens(views, SHEET)
    truth = random_table_to_camera(rng, SHEET, fill=(0.92, 0.97), jitter=0.03)
    frame = render_camera_frame(layout, truth, rng, sheet_image=image, lens_maps=maps)
    return lens, truth, frame


@pytest.mark.slow
def test_lens_model_makes_the_camera_step_accurate_under_distortion(setup):
    """With the lens from 6 views, the sheet's corners (undistorted) are within 0.5 px on
    average; the same frame without it puts them more than 5 px off the recorded ones."""
    lens, truth, frame = setup
    with_lens = calibrate_camera(frame, SHEET, lens=lens)
    err = np.linalg.norm(apply_homography(np.linalg.inv(with_lens.camera_to_table), CORNERS)
                         - apply_homography(truth, CORNERS), axis=1)
    bare = calibrate_camera(frame, SHEET, max_error_px=99)
    bare_err = np.linalg.norm(apply_homography(np.linalg.inv(bare.camera_to_table), CORNERS)
                              - distort_points(apply_homography(truth, CORNERS), K, D), axis=1)
    print(f"lens rms {lens.rms_px:.3f} px; sheet corners: {err.mean():.3f} px with the lens, "
          f"{bare_err.mean():.1f} px without")
    assert err.mean() < 0.5
    assert bare_err.mean() > 5.0


@pytest.mark.slow
def test_lens_survives_the_file_and_undistorts_frames(setup, tmp_path):
    """The lens is written and read back; Calibration.undistort straightens a frame so
    that a table point recorded by the distorting camera maps back within 0.5 mm."""
    lens, truth, frame = setup
    cal = to_calibration(calibrate_camera(frame, SHEET, lens=lens), SHEET)
    loaded = load(save(cal, tmp_path / "cal.json"), require_projector=False)
    np.testing.assert_allclose(loaded.lens.camera_matrix, lens.camera_matrix)
    assert loaded.residuals["lens_views"] == 6
    drawn = np.array([[30.0, 40.0], [180.0, 260.0], [105.0, 150.0]])
    recorded = distort_points(apply_homography(truth, drawn), K, D)
    back = apply_homography(loaded.camera_to_table, loaded.lens.undistort_points(recorded))
    assert np.linalg.norm(back - drawn, axis=1).max() < 0.5
    undistorted = loaded.undistort(frame)
    assert undistorted.shape == frame.shape
    with pytest.raises(CalibrationError, match="lens"):
        loaded.undistort(cv2.resize(frame, (320, 240)))


def test_too_few_views_are_refused():
    """Fewer than 4 views, or a view without the sheet, are refused naming the problem."""
    blank = np.full((480, 640), 128, np.uint8)
    with pytest.raises(CalibrationError, match="lens view 1: only 0 sheet corners"):
        calibrate_lens([blank] * 4, SHEET)
    layout = SheetLayout.for_sheet(SHEET)
    rng = np.random.default_rng(1)
    view = render_camera_frame(layout, random_table_to_camera(rng, SHEET), rng, hand=False)
    with pytest.raises(CalibrationError, match="need at least 4"):
        calibrate_lens([view, view], SHEET)
