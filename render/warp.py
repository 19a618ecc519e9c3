"""Warp the drawing from table coordinates to projector pixels.

The calibration gives the homography from the pixels of the R x R drawing, which covers
the drawing area on the table, to the projector's pixels
(`Calibration.table_area_to_projector(R)`; before the first calibration the identity-like
default puts the drawing in the projector's centred square). This module only applies it.
"""
from __future__ import annotations

import cv2
import numpy as np


def map_point(homography: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Where the homography sends one point (for checks and tests)."""
    p = cv2.perspectiveTransform(np.array([[[x, y]]], dtype=np.float64), homography)
    return float(p[0, 0, 0]), float(p[0, 0, 1])


class Warp:
    """Warps drawings into projector frames of one size through one fixed homography.

    The homography H maps drawing-pixel centres to projector-pixel centres (OpenCV's
    convention), so a feature at drawing pixel p lands at projector pixel H p. Each call
    returns a new frame: the display may still be showing (or fading from) the last one.
    """

    def __init__(self, homography: np.ndarray, projector_size: tuple[int, int]):
        homography = np.asarray(homography, dtype=np.float64)
        if homography.shape != (3, 3) or not np.isfinite(homography).all():
            raise ValueError("projector homography must be a finite 3x3 matrix")
        if abs(np.linalg.det(homography)) < 1e-12:
            raise ValueError("projector homography is singular; recalibrate the projector")
        self.homography = homography
        self.size = (int(projector_size[0]), int(projector_size[1]))

    def __call__(self, drawing_rgb: np.ndarray) -> np.ndarray:
        """The projector frame (H x W x 3 uint8, black outside the drawing area)."""
        return cv2.warpPerspective(
            drawing_rgb,
            self.homography,
            self.size,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
