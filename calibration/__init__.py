"""Calibration: camera -> table -> projector homographies, the marker sheet and the
manual projector alignment. No torch here: a kiosk calibrates with OpenCV and pygame.

The live loop needs only `load` and `Calibration` (see docs/CONTRACTS.md, "Calibration").
"""
from calibration.geometry import CalibrationError, apply_homography, default_drawing_area
from calibration.record import Calibration, load, save

__all__ = ["Calibration", "CalibrationError", "apply_homography", "default_drawing_area", "load", "save"]
