"""Camera -> table -> projector on a simulated table: a point drawn on the table, seen by
the simulated camera, sent through the stored calibration to the projector, lands within
1 mm of where it was drawn."""
import cv2
import numpy as np
import pygame

from calibration import apply_homography, load, save
from calibration.camera import calibrate_camera, to_calibration
from calibration.projector import Alignment, run
from calibration.sheet import SheetLayout
from tests.calibration.synthetic import random_table_to_camera, render_camera_frame
from tests.calibration.test_projector import lay_handles_on_marks

SHEET = (297.0, 420.0)  # an A3 sheet on the table
PROJECTOR = (1024, 768)
RESOLUTION = 256


def test_a_point_on_the_table_comes_back_within_a_millimetre(tmp_path):
    """Through camera_to_sketch (what the binarizer uses) and table_area_to_projector
    (what the renderer uses), 200 random points of the drawing area land within 1 mm on
    the table after the true projector optics; the table-mm path agrees."""
    rng = np.random.default_rng(11)
    layout = SheetLayout.for_sheet(SHEET)

    # the table's true optics
    table_to_camera = random_table_to_camera(rng, SHEET)
    sheet = np.float32([[0, 0], [SHEET[0], 0], [SHEET[0], SHEET[1]], [0, SHEET[1]]])
    seen = sheet / np.float32([SHEET[0], SHEET[1]]) * np.float32([620, 700]) + np.float32([200, 30])
    seen += rng.uniform(-25, 25, seen.shape).astype(np.float32)
    table_to_projector = cv2.getPerspectiveTransform(sheet, seen).astype(np.float64)
    projector_to_table = np.linalg.inv(table_to_projector)

    # camera step, from a simulated frame
    result = calibrate_camera(render_camera_frame(layout, table_to_camera, rng), SHEET)
    path = save(to_calibration(result, SHEET), tmp_path / "calibration.json")

    # projector step, driven by events as the operator would
    partial = load(path, require_projector=False)
    marks = layout.alignment_marks_mm(8)
    pygame.display.init()
    try:
        screen = pygame.display.set_mode(PROJECTOR)
        pygame.event.clear()
        alignment = Alignment(marks, PROJECTOR)
        lay_handles_on_marks(alignment, apply_homography(table_to_projector, marks))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, mod=0))
        assert run(alignment, screen, timeout_s=10)
    finally:
        pygame.display.quit()
    h, residuals = alignment.projector_to_table()
    save(partial.with_projector(h, PROJECTOR, residuals), path)

    cal = load(path, camera_mode=(640, 480), projector_mode=PROJECTOR)
    x, y, w, hgt = cal.drawing_area_mm
    drawn = np.column_stack([rng.uniform(x, x + w, 200), rng.uniform(y, y + hgt, 200)])
    camera_px = apply_homography(table_to_camera, drawn)
    sketch_px = apply_homography(cal.camera_to_sketch(RESOLUTION), camera_px)
    projector_px = apply_homography(cal.table_area_to_projector(RESOLUTION), sketch_px)
    landed = apply_homography(projector_to_table, projector_px)
    err = np.linalg.norm(landed - drawn, axis=1)
    print(f"round trip: mean {err.mean():.3f} mm, max {err.max():.3f} mm")
    assert err.max() < 1.0
    via_mm = apply_homography(projector_to_table, apply_homography(
        cal.table_to_projector(), apply_homography(cal.camera_to_table, camera_px)))
    np.testing.assert_allclose(via_mm, landed, atol=1e-6)
