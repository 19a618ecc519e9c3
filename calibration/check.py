"""The visual check: the sheet's outline, a grid and the drawing area drawn in
projector pixels through the stored calibration. Projected onto the printed sheet, the
lines must fall on the sheet's edges and marks; a shift shows what to recalibrate."""
from __future__ import annotations

import numpy as np

import cv2

from calibration.geometry import apply_homography
from calibration.record import Calibration
from calibration.sheet import SheetLayout

GRID_MM = 50.0


def check_lines_mm(cal: Calibration, grid_mm: float = GRID_MM, samples: int = 40) -> dict[str, list[np.ndarray]]:
    """Polylines in table mm: 'sheet' outline, 'grid', 'area' (drawing area), 'marks'.

    Lines are sampled densely so that they stay right even where the homography bends
    them past the frame's edge."""
    w, h = cal.sheet_mm
    x, y, aw, ah = cal.drawing_area_mm

    def segment(a, b):
        t = np.linspace(0.0, 1.0, samples)[:, None]
        return np.asarray(a, float) * (1 - t) + np.asarray(b, float) * t

    def rect(x0, y0, rw, rh):
        c = [(x0, y0), (x0 + rw, y0), (x0 + rw, y0 + rh), (x0, y0 + rh), (x0, y0)]
        return np.vstack([segment(c[i], c[i + 1]) for i in range(4)])

    grid = [segment((gx, 0), (gx, h)) for gx in np.arange(grid_mm, w, grid_mm)]
    grid += [segment((0, gy), (w, gy)) for gy in np.arange(grid_mm, h, grid_mm)]
    marks = []
    if cal.calibrated:
        for mx, my in SheetLayout.for_sheet(cal.sheet_mm).alignment_marks_mm(8):
            marks += [segment((mx - 5, my), (mx + 5, my)), segment((mx, my - 5), (mx, my + 5))]
    return {"sheet": [rect(0, 0, w, h)], "grid": grid, "area": [rect(x, y, aw, ah)], "marks": marks}


COLOURS = {"sheet": (255, 255, 255), "grid": (0, 160, 0), "area": (0, 200, 255), "marks": (255, 255, 255)}


def render_check(cal: Calibration, grid_mm: float = GRID_MM) -> np.ndarray:
    """BGR uint8 image of the projector's mode with the check lines drawn through
    `cal.table_to_projector()`."""
    pw, ph = cal.projector_mode
    image = np.zeros((ph, pw, 3), np.uint8)
    to_projector = cal.table_to_projector()
    for name, lines in check_lines_mm(cal, grid_mm).items():
        for line in lines:
            pts = apply_homography(to_projector, line)
            if not np.all(np.isfinite(pts)):
                continue
            cv2.polylines(image, [np.round(pts * 16).astype(np.int32)], False, COLOURS[name],
                          2 if name == "sheet" else 1, cv2.LINE_AA, 4)
    return image


def describe(cal: Calibration) -> str:
    """The stored residuals and the calibration's age, for the operator."""
    lines = [f"made {cal.created} ({cal.age_days():.1f} days ago)",
             f"sheet {cal.sheet_mm[0]:g} x {cal.sheet_mm[1]:g} mm, drawing area "
             + " ".join(f"{v:g}" for v in cal.drawing_area_mm) + " (x y w h, mm)",
             f"camera mode {cal.camera_mode[0]}x{cal.camera_mode[1]}, "
             + ("projector not calibrated yet (`newsnow calibrate projector`)" if cal.projector_mode is None
                else f"projector mode {cal.projector_mode[0]}x{cal.projector_mode[1]}")]
    for key, value in sorted(cal.residuals.items()):
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
