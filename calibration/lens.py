"""Lens distortion of the table's camera, from several views of the ChArUco sheet.

A homography is exact only for a distortion-free (pinhole) camera. A wide lens bends
the sheet's straight lines by pixels at the frame's edges; then the camera step's error
goes over its bound. cv2.calibrateCamera on several views of the sheet, held at
different tilts in front of the camera in its running mode, gives the camera matrix and
distortion coefficients. With a `Lens` in the calibration, camera -> table maps
*undistorted* camera pixels (same camera matrix), and frames go through
`Lens.undistort` (one cv2.remap) before the binarizer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.geometry import CalibrationError
from calibration.sheet import SheetLayout, detect_corners

MIN_VIEWS = 4
MIN_CORNERS_PER_VIEW = 12


@dataclass(frozen=True)
class Lens:
    camera_matrix: np.ndarray  # 3x3
    dist_coeffs: np.ndarray  # OpenCV's (k1, k2, p1, p2, k3)
    mode: tuple[int, int]  # (w, h) of the frames it was measured on
    rms_px: float = 0.0  # calibrateCamera's reprojection RMS
    views: int = 0
    _maps: list = field(default_factory=list, repr=False, compare=False)  # remap tables, made once

    def undistort_points(self, points) -> np.ndarray:
        """(N, 2) camera px -> where a distortion-free camera with the same matrix sees them."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-6)
        out = cv2.undistortPoints(pts, self.camera_matrix, self.dist_coeffs, P=self.camera_matrix, criteria=criteria)
        return out.reshape(-1, 2)

    def undistort(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the distortion-free camera would see it (same size)."""
        h, w = frame.shape[:2]
        if (w, h) != tuple(self.mode):
            raise CalibrationError(
                f"lens: frame is {w}x{h} but the lens was measured at {self.mode[0]}x{self.mode[1]}: "
                f"set the camera mode back or calibrate again"
            )
        if not self._maps:
            self._maps.extend(cv2.initUndistortRectifyMap(
                self.camera_matrix, self.dist_coeffs, None, self.camera_matrix, (w, h), cv2.CV_16SC2))
        return cv2.remap(frame, self._maps[0], self._maps[1], cv2.INTER_LINEAR)

    def to_dict(self) -> dict:
        return {
            "camera_matrix": [[float(v) for v in row] for row in self.camera_matrix],
            "dist_coeffs": [float(v) for v in self.dist_coeffs.ravel()],
            "mode": [int(v) for v in self.mode],
            "rms_px": round(float(self.rms_px), 4),
            "views": int(self.views),
        }

    @classmethod
    def from_dict(cls, d, source: str = "calibration") -> "Lens":
        try:
            k = np.array(d["camera_matrix"], dtype=np.float64)
            dist = np.array(d["dist_coeffs"], dtype=np.float64).ravel()
            mode = (int(d["mode"][0]), int(d["mode"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise CalibrationError(f"{source}: field 'lens' needs camera_matrix (3x3), dist_coeffs and mode") from None
        if k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise CalibrationError(f"{source}: field 'lens.camera_matrix' is not a camera matrix: calibrate again")
        if dist.size not in (4, 5, 8, 12, 14) or not np.all(np.isfinite(dist)):
            raise CalibrationError(f"{source}: field 'lens.dist_coeffs' must be 4, 5, 8, 12 or 14 finite numbers")
        rms = float(d.get("rms_px", 0.0))
        return cls(k, dist, mode, rms if math.isfinite(rms) else 0.0, int(d.get("views", 0)))


def calibrate_lens(images, sheet_mm, min_views: int = MIN_VIEWS) -> Lens:
    """Camera matrix and distortion from several gray views of the sheet (same camera
    mode). A view with too few corners is refused, naming it by its number."""
    layout = SheetLayout.for_sheet(sheet_mm)
    object_points, image_points, mode = [], [], None
    for n, image in enumerate(images, start=1):
        h, w = image.shape[:2]
        if mode is not None and (w, h) != mode:
            raise CalibrationError(f"lens view {n} is {w}x{h}, the first was {mode[0]}x{mode[1]}: use one camera mode")
        mode = (w, h)
        camera_px, table_mm = detect_corners(image, layout)
        if len(camera_px) < MIN_CORNERS_PER_VIEW:
            raise CalibrationError(
                f"lens view {n}: only {len(camera_px)} sheet corners found (need {MIN_CORNERS_PER_VIEW}): "
                f"retake it with the sheet sharp and in the picture"
            )
        object_points.append(np.hstack([table_mm, np.zeros((len(table_mm), 1))]).astype(np.float32))
        image_points.append(camera_px.astype(np.float32).reshape(-1, 1, 2))
    if len(object_points) < min_views:
        raise CalibrationError(
            f"lens: {len(object_points)} views given, need at least {min_views}, the sheet tilted differently in each"
        )
    rms, k, dist, _, _ = cv2.calibrateCamera(object_points, image_points, mode, None, None)
    if not (math.isfinite(rms) and np.all(np.isfinite(k)) and np.all(np.isfinite(dist))):
        raise CalibrationError("lens: the views give no camera model: tilt the sheet more between views")
    return Lens(k, dist.ravel(), mode, float(rms), len(object_points))
