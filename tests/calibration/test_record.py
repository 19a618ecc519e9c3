"""The calibration record: file round trip, atomic write, refusals on load, and the
homographies the binarizer and the renderer take from it."""
import json
import os

import numpy as np
import pytest

from calibration import Calibration, CalibrationError, apply_homography, load, save


def _calibration(**changes) -> Calibration:
    cal = Calibration(
        camera_to_table=np.array([[0.5, 0.02, 10.0], [-0.01, 0.5, 5.0], [1e-5, 2e-5, 1.0]]),
        projector_to_table=np.array([[0.3, 0.0, -20.0], [0.01, 0.31, -10.0], [0.0, 1e-5, 1.0]]),
        sheet_mm=(297.0, 420.0),
        drawing_area_mm=(15.0, 15.0, 267.0, 390.0),
        camera_mode=(640, 480),
        projector_mode=(1280, 720),
        created="2026-11-01T10:00:00+00:00",
        residuals={"camera_rms_px": 0.2},
    )
    return Calibration(**{**cal.__dict__, **changes})


def test_save_then_load_gives_the_same_calibration(tmp_path):
    """Everything written is read back unchanged, and no temporary file is left over."""
    path = save(_calibration(), tmp_path / "cal.json")
    cal = load(path)
    ref = _calibration()
    np.testing.assert_allclose(cal.camera_to_table, ref.camera_to_table)
    np.testing.assert_allclose(cal.projector_to_table, ref.projector_to_table)
    assert (cal.sheet_mm, cal.drawing_area_mm, cal.camera_mode, cal.projector_mode, cal.created, cal.residuals) == (
        ref.sheet_mm, ref.drawing_area_mm, ref.camera_mode, ref.projector_mode, ref.created, ref.residuals)
    assert os.listdir(tmp_path) == ["cal.json"]


def test_save_refuses_a_bad_calibration_and_keeps_the_old_file(tmp_path):
    """A singular matrix is never written: the previous good file stays intact."""
    path = save(_calibration(), tmp_path / "cal.json")
    before = path.read_text()
    with pytest.raises(CalibrationError, match="camera_to_table"):
        save(_calibration(camera_to_table=np.zeros((3, 3))), path)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["cal.json"]


def _write(tmp_path, **changes):
    d = _calibration().to_dict()
    for key, value in changes.items():
        if value is None:
            d.pop(key)
        else:
            d[key] = value
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"camera_to_table": None}, "'camera_to_table' is missing"),
        ({"sheet_mm": None}, "'sheet_mm' is missing"),
        ({"camera_to_table": [[1, 0, 0], [0, float("nan"), 0], [0, 0, 1]]}, "camera_to_table.*non-finite"),
        ({"projector_to_table": [[1, 2, 0], [2, 4, 0], [0, 0, 1]]}, "projector_to_table.*singular"),
        ({"projector_to_table": [[1, 0, 0], [0, 1, 0], [0, 0]]}, "projector_to_table"),
        # the horizon (x = 320) runs through the 640-wide camera frame
        ({"camera_to_table": [[1, 0, 0], [0, 1, 0], [-1 / 320, 0, 1]]}, "camera_to_table.*folds"),
        ({"sheet_mm": [297, -1]}, "sheet_mm"),
        ({"drawing_area_mm": [0, 0, 0, 10]}, "drawing_area_mm"),
        ({"camera_mode": [640.5, 480]}, "camera_mode"),
        ({"format": "something-else"}, "'format'"),
        ({"format_version": 99}, "format_version"),
        ({"created": "last tuesday"}, "'created'"),
    ],
)
def test_load_refuses_bad_fields_naming_them(tmp_path, changes, message):
    """Each broken field is refused with a CalibrationError that names it."""
    with pytest.raises(CalibrationError, match=message):
        load(_write(tmp_path, **changes))


def test_load_refuses_missing_or_broken_files(tmp_path):
    """A missing file and a non-JSON file are refused with the path in the message."""
    with pytest.raises(CalibrationError, match="no calibration file"):
        load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="bad.json: not valid JSON"):
        load(tmp_path / "bad.json")


def test_load_refuses_modes_that_do_not_match_the_running_devices(tmp_path):
    """A calibration made for another camera or display mode is refused when the running
    modes are given, and accepted when they match."""
    path = save(_calibration(), tmp_path / "cal.json")
    with pytest.raises(CalibrationError, match="camera_mode.*640x480.*1280x720"):
        load(path, camera_mode=(1280, 720))
    with pytest.raises(CalibrationError, match="projector_mode.*1280x720.*1920x1080"):
        load(path, projector_mode=(1920, 1080))
    assert load(path, camera_mode=(640, 480), projector_mode=(1280, 720)).camera_mode == (640, 480)


def test_camera_only_file_needs_the_projector_step_for_the_live_loop(tmp_path):
    """After the camera step alone, load() refuses (naming the missing step) unless the
    caller asks for a partial record, as the projector step does."""
    path = save(_calibration(projector_to_table=None, projector_mode=None), tmp_path / "cal.json")
    with pytest.raises(CalibrationError, match="calibrate projector"):
        load(path)
    cal = load(path, require_projector=False)
    assert cal.projector_to_table is None
    with pytest.raises(CalibrationError, match="projector_to_table"):
        cal.table_to_projector()
    from calibration.check import describe  # `calibrate check` says what is missing, not "projector mode none"
    text = describe(cal)
    assert "projector not calibrated yet (`newsnow calibrate projector`)" in text and "none" not in text


def test_camera_to_sketch_maps_the_drawing_area_onto_the_sketch_grid():
    """The drawing area's corners, seen by the camera, land on the sketch's outer pixel
    edges (-0.5 and R - 0.5) for R = 256."""
    cal = _calibration()
    x, y, w, h = cal.drawing_area_mm
    area = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    seen = apply_homography(np.linalg.inv(cal.camera_to_table), area)
    sketch = apply_homography(cal.camera_to_sketch(256), seen)
    np.testing.assert_allclose(sketch, [[-0.5, -0.5], [255.5, -0.5], [255.5, 255.5], [-0.5, 255.5]], atol=1e-6)


def test_table_area_to_projector_sends_drawing_pixels_to_their_table_place():
    """A drawing pixel, sent to the projector and back through projector -> table, lands
    where that pixel lies in the drawing area; without a size the map takes table mm."""
    cal = _calibration()
    x, y, w, h = cal.drawing_area_mm
    pixels = np.array([[0.0, 0.0], [255.0, 0.0], [127.0, 200.0]])
    projector = apply_homography(cal.table_area_to_projector(256), pixels)
    table = apply_homography(cal.projector_to_table, projector)
    expected = np.column_stack([x + (pixels[:, 0] + 0.5) * w / 256, y + (pixels[:, 1] + 0.5) * h / 256])
    np.testing.assert_allclose(table, expected, atol=1e-6)
    mm = np.array([[100.0, 200.0]])
    np.testing.assert_allclose(apply_homography(cal.projector_to_table,
                                                apply_homography(cal.table_area_to_projector(), mm)), mm, atol=1e-9)


def test_uncalibrated_crops_the_centred_square_and_fills_the_projectors_centred_square():
    """Before the first calibration the sketch is the camera's centred square (as the
    binarizer's default) and the drawing fills the projector's centred square."""
    cal = Calibration.uncalibrated((640, 480), (1280, 720))
    assert not cal.calibrated
    # camera pixel (80, 0) is the sketch's first pixel at R = 480 (a pure shift)
    np.testing.assert_allclose(cal.camera_to_sketch(480), [[1, 0, -80], [0, 1, 0], [0, 0, 1]], atol=1e-12)
    corners = apply_homography(cal.table_area_to_projector(256), [[-0.5, -0.5], [255.5, 255.5]])
    np.testing.assert_allclose(corners, [[279.5, -0.5], [999.5, 719.5]], atol=1e-9)
    assert Calibration.from_dict(cal.to_dict()).calibrated is False


def test_age_counts_days_since_created():
    """age_days() is the time since `created`, in days."""
    from datetime import datetime, timezone

    cal = _calibration(created="2026-11-01T10:00:00+00:00")
    assert cal.age_days(datetime(2026, 11, 11, 10, 0, tzinfo=timezone.utc)) == pytest.approx(10.0)


def test_a_drawing_area_mostly_off_the_projector_is_refused(tmp_path):
    """A projector homography that sends most of the drawing area off the picture (every
    projector pixel black, yet 'running') is refused on save and load, naming the share."""
    good = _calibration()
    assert good.area_on_projector() > 0.5
    shifted = _calibration(projector_to_table=np.array([[0.3, 0.0, 300.0], [0.0, 0.3, 0.0], [0.0, 0.0, 1.0]]))
    assert shifted.area_on_projector() < 0.1
    with pytest.raises(CalibrationError, match=r"only \d+% of the drawing area lands on the projector's 1280x720"):
        save(shifted, tmp_path / "cal.json")
    path = save(good, tmp_path / "cal.json")
    record = json.loads(path.read_text())
    record["projector_to_table"] = shifted.projector_to_table.tolist()
    path.write_text(json.dumps(record))
    with pytest.raises(CalibrationError, match="run `newsnow calibrate projector` again"):
        load(path)
