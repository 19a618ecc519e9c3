"""The small typed records that travel from the camera to the projector.

Every stage hands on one of these, never a bare array: the capture timestamp rides along
so that the display can stamp the latency of each projected frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera image as it came from the source."""

    image: np.ndarray  # uint8 gray, H x W
    t_capture: float  # time.monotonic() when the frame was read
    sequence: int  # increases by one per frame read from the source
    source: str = ""  # which source made it (device path, video file, "simulated")


@dataclass(frozen=True)
class Sketch:
    """A binarized frame at the model's resolution: ink 0, paper 255."""

    image: np.ndarray  # uint8, R x R, values 0 or 255
    t_capture: float
    sequence: int
    ink_fraction: float = 0.0  # share of ink pixels, 0 for a blank sheet
