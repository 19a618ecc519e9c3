"""The leaf of the calibration package: its error type and the geometry every step shares
(homographies applied to points, the default drawing area, table mm -> image pixels).
Imports nothing of the package, so sheet -> lens -> record -> camera import it one way."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

# The drawing area defaults to the sheet less this margin on every side (mm): the
# marker board's frame, away from the sheet's edge that the paper's curl lifts.
DEFAULT_MARGIN_MM = 15.0


class CalibrationError(ValueError):
    """A calibration file or result that cannot be used; the message names the field."""


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def default_drawing_area(sheet_mm, margin_mm: float = DEFAULT_MARGIN_MM) -> tuple[float, float, float, float]:
    """The sheet less `margin_mm` on each side, as (x, y, w, h) in table mm."""
    w, h = float(sheet_mm[0]), float(sheet_mm[1])
    if w <= 2 * margin_mm or h <= 2 * margin_mm:
        raise CalibrationError(
            f"sheet_mm {w:g}x{h:g} is too small for a {margin_mm:g} mm margin: use a larger sheet"
        )
    return (margin_mm, margin_mm, w - 2 * margin_mm, h - 2 * margin_mm)


def square_area(area_mm) -> tuple[float, float, float, float]:
    """The largest square centred in `area_mm` (x, y, w, h): the sketch is square, so a
    square area reaches the model without being stretched."""
    x, y, w, h = (float(v) for v in area_mm)
    side = min(w, h)
    return (x + (w - side) / 2, y + (h - side) / 2, side, side)


def apply_homography(h: np.ndarray, points) -> np.ndarray:
    """Map an (N, 2) array of points through a 3x3 homography."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homog = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(h, dtype=np.float64).T
    return homog[:, :2] / homog[:, 2:3]


def area_to_pixels(area_mm, size) -> np.ndarray:
    """3x3 from table mm to the pixels of a w x h image that exactly covers `area_mm`."""
    x, y, aw, ah = (float(v) for v in area_mm)
    w, h = pixel_size(size)
    sx, sy = w / aw, h / ah
    # area edge x maps to pixel edge -0.5 (pixel centres are integers)
    return np.array([[sx, 0, -x * sx - 0.5], [0, sy, -y * sy - 0.5], [0, 0, 1]], dtype=np.float64)


def pixel_size(size) -> tuple[int, int]:
    """(w, h) from an int (a square) or a (w, h) pair."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    w, h = size
    return int(w), int(h)
