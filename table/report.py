"""What a run leaves behind for people: last.png and the one-line summary."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PANEL = 256  # height of each panel of last.png


def _panel(image: np.ndarray | None, height: int) -> np.ndarray:
    if image is None:
        return np.zeros((height, height, 3), np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interp)


def composite(table, height: int = PANEL) -> np.ndarray:
    """camera view | sketch | drawing | projector frame, side by side (Fig. 1 of Paper IV), RGB.
    Reads the table's latest references only, so any thread may call it."""
    frame = table.latest_frame if table is not None else None
    sketch = table.latest_sketch if table is not None else None
    panels = [
        _panel(frame.image if frame is not None else None, height),
        _panel(sketch.image if sketch is not None else None, height),
        _panel(table.latest_picture if table is not None else None, height),
        _panel(table.latest_projector if table is not None else None, height),
    ]
    gap = np.full((height, 4, 3), 128, np.uint8)
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)


def last_png(table, path: Path) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(composite(table), cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the image")


def summary_line(status, out: Path | None) -> str:
    stroke = status.stroke_latency_ms

    def ms(d, key):
        return "-" if d[key] is None else f"{d[key]:.0f}"

    faults = sum(status.faults.values())
    where = f" -> {out}" if out else ""
    return (f"newsnow: {status.frames_displayed} frames at {status.display_fps:.1f} fps, "
            f"{status.inferences} inferences ({status.inference_fps:.1f}/s over the "
            f"{status.inference_span_s:.1f} s since the first answer), "
            f"stroke latency p50 {ms(stroke, 'p50')} / p95 {ms(stroke, 'p95')} ms, "
            f"{status.transition} on {status.backend}, {faults} faults{where}")
