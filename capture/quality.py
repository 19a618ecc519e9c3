"""How well a sketch matches the strokes really drawn: precision and recall of ink pixels.

Used by the binarization tests and benchmark against the simulated camera's ground truth.
A pen line's edge falls between pixels, so a pixel counts as right when it lies within
`tolerance` pixels of the other side's ink (the usual tolerance of line-drawing and edge
benchmarks); tolerance 0 asks for the exact pixels.
"""
from __future__ import annotations

import cv2
import numpy as np


def stroke_precision_recall(sketch: np.ndarray, truth: np.ndarray, tolerance: int = 1) -> tuple[float, float]:
    """(precision, recall) of the ink pixels (value < 128) of `sketch` against `truth`.

    An empty side scores 1.0 (nothing claimed, nothing missed).
    """
    if sketch.shape != truth.shape:
        raise ValueError(f"stroke_precision_recall: shapes differ, {sketch.shape} vs {truth.shape}")
    pred, real = sketch < 128, truth < 128
    if tolerance > 0:
        kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
        near_real = cv2.dilate(real.view(np.uint8), kernel).view(bool)
        near_pred = cv2.dilate(pred.view(np.uint8), kernel).view(bool)
    else:
        near_real, near_pred = real, pred
    n_pred, n_real = np.count_nonzero(pred), np.count_nonzero(real)
    precision = np.count_nonzero(pred & near_real) / n_pred if n_pred else 1.0
    recall = np.count_nonzero(real & near_pred) / n_real if n_real else 1.0
    return float(precision), float(recall)
