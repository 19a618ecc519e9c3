"""Warp the drawing from table coordinates to projector pixels.

The calibration gives a homography from the drawing area on the table to the projector's
pixels; the drawing (R x R model pixels) covers that area, so one more scale maps drawing
pixels onto it. Without a calibration the drawing is fitted, centred and square, into the
projector frame.
"""
from __future__ import annotations

import cv2
import numpy as np


def scale_homography(sx: float, sy: float) -> np.ndarray:
    """The 3x3 homography that scales x by sx and y by sy."""
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def fit_square(resolution: int, projector_size: tuple[int, int]) -> np.ndarray:
    """Drawing pixels -> projector pixels for an uncalibrated table: centred, square, fitted."""
    width, height = projector_size
    side = min(width, height)
    s = side / resolution
    return np.array(
        [[s, 0.0, (width - side) / 2.0], [0.0, s, (height - side) / 2.0], [0.0, 0.0, 1.0]]
    )


def drawing_to_projector(
    area_to_projector: np.ndarray, area_size: tuple[float, float], resolution: int
) -> np.ndarray:
    """Compose drawing pixels (R x R) -> drawing area units (w x h) -> projector pixels."""
    w, h = area_size
    return np.asarray(area_to_projector, dtype=np.float64) @ scale_homography(
        w / resolution, h / resolution
    )


def map_point(homography: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Where the homography sends one point (for checks and tests)."""
    p = cv2.perspectiveTransform(np.array([[[x, y]]], dtype=np.float64), homography)
    return float(p[0, 0, 0]), float(p[0, 0, 1])


class Warp:
    """Warps drawings into projector frames of one size through one fixed homography.

    The homography H maps drawing-pixel centres to projector-pixel centres (OpenCV's
    convention), so a feature at drawing pixel p lands at projector pixel H p. The output
    buffer is reused frame after frame to keep the display loop free of allocations.
    """

    def __init__(self, homography: np.ndarray, projector_size: tuple[int, int]):
        homography = np.asarray(homography, dtype=np.float64)
        if homography.shape != (3, 3) or not np.isfinite(homography).all():
            raise ValueError("projector homography must be a finite 3x3 matrix")
        if abs(np.linalg.det(homography)) < 1e-12:
            raise ValueError("projector homography is singular; recalibrate the projector")
        self.homography = homography
        self.size = (int(projector_size[0]), int(projector_size[1]))
        self._out: np.ndarray | None = None

    def __call__(self, drawing_rgb: np.ndarray) -> np.ndarray:
        """The projector frame (H x W x 3 uint8, black outside the drawing area)."""
        if self._out is None or self._out.shape[2:] != drawing_rgb.shape[2:]:
            self._out = np.zeros((self.size[1], self.size[0]) + drawing_rgb.shape[2:], np.uint8)
        return cv2.warpPerspective(
            drawing_rgb,
            self.homography,
            self.size,
            dst=self._out,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
