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
    convention), so a feature at drawing pixel p lands at projector pixel H p. Only the
    bounding box of the drawing's quad is warped (the rest of the frame stays black), and
    a gray drawing is warped as one channel and made RGB after: on a 2-core CPU this is
    most of the cost of an answer. Each call returns a new frame: the display may still
    be showing (or fading from) the last one.
    """

    def __init__(self, homography: np.ndarray, projector_size: tuple[int, int]):
        homography = np.asarray(homography, dtype=np.float64)
        if homography.shape != (3, 3) or not np.isfinite(homography).all():
            raise ValueError("projector homography must be a finite 3x3 matrix")
        if abs(np.linalg.det(homography)) < 1e-12:
            raise ValueError("projector homography is singular; recalibrate the projector")
        self.homography = homography
        self.size = (int(projector_size[0]), int(projector_size[1]))
        self._roi_for: tuple | None = None

    def _roi(self, shape: tuple[int, int]) -> tuple[int, int, int, int, np.ndarray]:
        """(x0, y0, x1, y1, H shifted to the box) for drawings of this shape, cached."""
        if self._roi_for is not None and self._roi_for[0] == shape:
            return self._roi_for[1]
        h, w = shape
        corners = np.array([[[-0.5, -0.5]], [[w - 0.5, -0.5]], [[w - 0.5, h - 0.5]], [[-0.5, h - 0.5]]])
        quad = cv2.perspectiveTransform(corners, self.homography).reshape(-1, 2)
        x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.size[0]), min(y1, self.size[1])
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        roi = (x0, y0, x1, y1, shift @ self.homography)
        self._roi_for = (shape, roi)
        return roi

    def __call__(self, drawing: np.ndarray) -> np.ndarray:
        """The projector frame (H x W x 3 uint8 RGB, black outside the drawing area)."""
        frame = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        x0, y0, x1, y1, h = self._roi(drawing.shape[:2])
        if x1 <= x0 or y1 <= y0:
            return frame  # the drawing area lies outside the projector frame
        box = cv2.warpPerspective(drawing, h, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if box.ndim == 2:
            cv2.cvtColor(box, cv2.COLOR_GRAY2RGB, dst=frame[y0:y1, x0:x1])
        else:
            frame[y0:y1, x0:x1] = box
        return frame
