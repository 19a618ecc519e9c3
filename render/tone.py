"""Tone: turn the model's drawing into the picture the projector shows.

The original table adjusted saturation and contrast before projecting (Paper IV, sec. 4);
gamma and brightness compensate for the projector and the paper. Everything here works on
small model-resolution images, once per new drawing, never per display frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from inference.tensors import to_uint8


@dataclass(frozen=True)
class Tone:
    """How the drawing is toned before projection (the `[tone]` section of the config)."""

    contrast: float = field(default=1.0, metadata={"min": 0.0, "max": 10.0})  # gain around mid-grey; 1 leaves the drawing as it is
    saturation: float = field(default=1.0, metadata={"min": 0.0, "max": 4.0})  # 0 greys a colour drawing, 1 leaves it
    gamma: float = field(default=1.0, metadata={"min": 0.05, "max": 10.0})  # > 1 darkens the mid-tones, < 1 lightens them
    brightness: float = field(default=0.0, metadata={"min": -1.0, "max": 1.0})  # added after contrast, in [-1, 1] of the full range
    composite_strokes: bool = False  # lay the visitor's strokes over the drawing (Fig. 1, 4)
    stroke_opacity: float = field(default=0.8, metadata={"min": 0.0, "max": 1.0})  # how dark the visitor's strokes are in the composite

    def lookup_table(self) -> np.ndarray:
        """The 256-entry uint8 curve of contrast, brightness and gamma, applied by cv2.LUT."""
        x = np.arange(256, dtype=np.float64) / 255.0
        x = (x - 0.5) * self.contrast + 0.5 + self.brightness
        x = np.clip(x, 0.0, 1.0) ** self.gamma
        return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def drawing_to_uint8(drawing: np.ndarray) -> np.ndarray:
    """A model drawing (float C x R x R in [-1, 1]) as uint8: R x R gray, or R x R x 3 RGB.

    Gray drawings stay one channel through tone and warp (a third of the work); the
    warp makes the projector frame RGB.
    """
    if drawing.dtype == np.uint8:
        image = drawing
    else:
        image = to_uint8(drawing)
        if image.ndim == 3:
            image = np.transpose(image, (1, 2, 0))  # C x R x R -> R x R x C
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[..., 0])
    if image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"drawing has {image.shape[2]} channels; expected 1 or 3")


def apply_tone(image: np.ndarray, tone: Tone) -> np.ndarray:
    """Saturation (colour drawings), then the contrast/brightness/gamma curve, on uint8."""
    out = image
    if tone.saturation != 1.0 and image.ndim == 3:
        grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out = cv2.addWeighted(image, tone.saturation, grey, 1.0 - tone.saturation, 0.0)
    return cv2.LUT(out, tone.lookup_table())


def composite_strokes(image: np.ndarray, sketch: np.ndarray, opacity: float) -> np.ndarray:
    """The visitor's strokes (sketch ink 0, paper 255) darkened into the drawing.

    Multiplies, so the drawing shows through where the sheet is paper and the pen lines
    read as the visitor drew them; a sketch of another size is resized to the drawing.
    """
    if sketch.shape[:2] != image.shape[:2]:
        sketch = cv2.resize(sketch, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    keep = 1.0 - opacity * (1.0 - sketch.astype(np.float32) / 255.0)
    if image.ndim == 3:
        keep = keep[..., None]
    return (image.astype(np.float32) * keep).astype(np.uint8)
