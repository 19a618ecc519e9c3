"""The calibration record: camera -> table -> projector, and its JSON file.

The table is the shared frame of the IR camera (which cannot see the projector) and the
projector: millimetres on the printed marker sheet, origin at its top-left corner, x to
the right, y down. Both homographies map *into* the table, so every other mapping is a
product of them and their inverses.

Pixel coordinates follow OpenCV: a pixel's centre has integer coordinates, so an R x R
image covers [-0.5, R - 0.5] on both axes. That is what cv2.warpPerspective expects.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from calibration.geometry import (CalibrationError, area_to_pixels, default_drawing_area, now_iso,
                                  pixel_size)
from calibration.lens import Lens
from storage import atomic_write_json

FORMAT = "newsnow-calibration"
FORMAT_VERSION = 1
# A projector calibration that puts less of the drawing area than this on the picture is refused.
MIN_AREA_ON_PROJECTOR = 0.5

@dataclass(frozen=True)
class Calibration:
    """Camera -> table and projector -> table, with what they were measured for.

    `projector_to_table` and `projector_mode` are None in a camera-only file (after
    `newsnow calibrate camera`, before `newsnow calibrate projector`).
    """

    camera_to_table: np.ndarray  # 3x3, camera px -> table mm
    projector_to_table: np.ndarray | None  # 3x3, projector px -> table mm
    sheet_mm: tuple[float, float]  # (w, h) of the marker sheet
    drawing_area_mm: tuple[float, float, float, float]  # (x, y, w, h) in table mm
    camera_mode: tuple[int, int]  # (w, h) of the camera frames it was measured on
    projector_mode: tuple[int, int] | None  # (w, h) of the projector's display mode
    created: str  # ISO 8601 date of the last calibration step
    residuals: dict = field(default_factory=dict)  # RMS errors and point counts per step
    calibrated: bool = True  # False for the identity-like default of `uncalibrated()`
    lens: Lens | None = None  # lens distortion; when set, camera px means undistorted px

    def undistort(self, frame: np.ndarray) -> np.ndarray:
        """The camera frame that `camera_to_table` / `camera_to_sketch` expect: the frame
        itself, or with a lens model its undistorted version (calibration.lens)."""
        return frame if self.lens is None else self.lens.undistort(frame)

    # -- the mappings the live loop needs --------------------------------------------

    def camera_to_sketch(self, resolution) -> np.ndarray:
        """3x3 from camera px to the R x R sketch pixels that cover the drawing area.

        This is `to_sketch` of `capture.binarize`: warpPerspective(frame, H, (R, R)).
        A drawing area that is not square is stretched to the square sketch (and
        stretched back by `table_area_to_projector`, so lines still land on lines).
        """
        return _normalized(area_to_pixels(self.drawing_area_mm, resolution) @ self.camera_to_table)

    def table_to_projector(self) -> np.ndarray:
        """3x3 from table mm to projector px."""
        return _normalized(np.linalg.inv(self._projector()))

    def table_area_to_projector(self, size=None) -> np.ndarray:
        """3x3 to projector px, for warpPerspective(drawing, H, projector_mode).

        With `size` (R, or (w, h)): from the pixels of a drawing image of that size
        that covers the drawing area. Without it: from table mm (`table_to_projector`).
        """
        if size is None:
            return self.table_to_projector()
        pixels_to_table = np.linalg.inv(area_to_pixels(self.drawing_area_mm, size))
        return _normalized(np.linalg.inv(self._projector()) @ pixels_to_table)

    def area_on_projector(self, samples: int = 48) -> float:
        """Share of the drawing area whose projector pixel is on the projector's picture
        (a grid of points; a point behind the projective horizon counts as off)."""
        x, y, w, h = self.drawing_area_mm
        u = (np.arange(samples) + 0.5) / samples
        gx, gy = np.meshgrid(x + u * w, y + u * h)
        pts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)], 1) @ np.linalg.inv(self._projector()).T
        pw, ph = self.projector_mode
        # The projector's own side of the horizon: the sign w has at its centre pixel.
        front = np.sign((self._projector() @ np.array([(pw - 1) / 2, (ph - 1) / 2, 1.0]))[2])
        with np.errstate(divide="ignore", invalid="ignore"):
            px, py = pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2]
        inside = (np.sign(pts[:, 2]) == front) & (px >= -0.5) & (px <= pw - 0.5) & (py >= -0.5) & (py <= ph - 0.5)
        return float(inside.mean())

    def _projector(self) -> np.ndarray:
        if self.projector_to_table is None:
            raise CalibrationError(
                "projector_to_table is missing: run `newsnow calibrate projector` first"
            )
        return self.projector_to_table

    # -- construction ----------------------------------------------------------------

    @classmethod
    def uncalibrated(cls, camera_mode, projector_mode) -> "Calibration":
        """The default before the first calibration: the table is the camera image
        (1 mm per camera pixel), the drawing area its centred square (what the
        binarizer takes without a homography), shown in the projector's centred square.
        """
        cw, ch = pixel_size(camera_mode)
        pw, ph = pixel_size(projector_mode)
        side = min(cw, ch)
        area = ((cw - side) / 2.0, (ch - side) / 2.0, float(side), float(side))
        pside = min(pw, ph)
        proj_square = ((pw - pside) / 2.0, (ph - pside) / 2.0, float(pside), float(pside))
        # projector px centre p has edge coordinate p + 0.5; its centred square scales onto the area
        s = side / pside
        projector_to_table = np.array(
            [[s, 0, area[0] + (0.5 - proj_square[0]) * s], [0, s, area[1] + (0.5 - proj_square[1]) * s], [0, 0, 1]],
            dtype=np.float64,
        )
        # table mm are camera pixel-edge coordinates: px centre c sits at mm c + 0.5
        camera_to_table = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=np.float64)
        return cls(
            camera_to_table=camera_to_table,
            projector_to_table=projector_to_table,
            sheet_mm=(float(cw), float(ch)),
            drawing_area_mm=area,
            camera_mode=(cw, ch),
            projector_mode=(pw, ph),
            created=now_iso(),
            residuals={},
            calibrated=False,
        )

    def with_projector(self, projector_to_table, projector_mode, residuals: dict) -> "Calibration":
        """This calibration with a (new) projector step."""
        return replace(
            self,
            projector_to_table=_normalized(projector_to_table),
            projector_mode=pixel_size(projector_mode),
            created=now_iso(),
            residuals={**{k: v for k, v in self.residuals.items() if not k.startswith("projector")}, **residuals},
        )

    def age_days(self, now: datetime | None = None) -> float:
        now = now or datetime.now(timezone.utc)
        created = datetime.fromisoformat(self.created)
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        return (now - created).total_seconds() / 86400.0

    # -- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        def matrix(m):
            return None if m is None else [[float(v) for v in row] for row in np.asarray(m)]

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "sheet_mm": [float(v) for v in self.sheet_mm],
            "drawing_area_mm": [float(v) for v in self.drawing_area_mm],
            "camera_mode": [int(v) for v in self.camera_mode],
            "projector_mode": None if self.projector_mode is None else [int(v) for v in self.projector_mode],
            "camera_to_table": matrix(self.camera_to_table),
            "projector_to_table": matrix(self.projector_to_table),
            "residuals": self.residuals,
            "calibrated": self.calibrated,
            "lens": None if self.lens is None else self.lens.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibration") -> "Calibration":
        """Validate and build; a bad field raises CalibrationError naming it."""
        if not isinstance(d, dict):
            raise CalibrationError(f"{source}: not a JSON object")
        if d.get("format") != FORMAT:
            raise CalibrationError(f"{source}: field 'format' is {d.get('format')!r}, expected {FORMAT!r}")
        if d.get("format_version") != FORMAT_VERSION:
            raise CalibrationError(
                f"{source}: field 'format_version' is {d.get('format_version')!r}; this version reads "
                f"{FORMAT_VERSION}: calibrate again"
            )
        for name in ("created", "sheet_mm", "camera_mode", "camera_to_table"):
            if name not in d:
                raise CalibrationError(f"{source}: field {name!r} is missing: calibrate again")
        sheet = _numbers(d["sheet_mm"], 2, "sheet_mm", source, positive=True)
        camera_mode = _mode(d["camera_mode"], "camera_mode", source)
        projector_mode = None if d.get("projector_mode") is None else _mode(d["projector_mode"], "projector_mode", source)
        area_raw = d.get("drawing_area_mm")
        area = default_drawing_area(sheet) if area_raw is None else _numbers(area_raw, 4, "drawing_area_mm", source)
        if area[2] <= 0 or area[3] <= 0:
            raise CalibrationError(f"{source}: field 'drawing_area_mm' has a width or height <= 0")
        camera_to_table = _homography(d["camera_to_table"], "camera_to_table", source, camera_mode)
        projector_to_table = None
        if d.get("projector_to_table") is not None:
            if projector_mode is None:
                raise CalibrationError(f"{source}: field 'projector_mode' is missing beside projector_to_table")
            projector_to_table = _homography(d["projector_to_table"], "projector_to_table", source, projector_mode)
        try:
            datetime.fromisoformat(str(d["created"]))
        except ValueError:
            raise CalibrationError(f"{source}: field 'created' is not an ISO date: {d['created']!r}") from None
        residuals = d.get("residuals") or {}
        if not isinstance(residuals, dict):
            raise CalibrationError(f"{source}: field 'residuals' is not an object")
        lens = None
        if d.get("lens") is not None:
            lens = Lens.from_dict(d["lens"], source)
            if tuple(lens.mode) != camera_mode:
                raise CalibrationError(f"{source}: field 'lens.mode' differs from camera_mode: calibrate again")
        calibration = cls(
            camera_to_table=camera_to_table,
            projector_to_table=projector_to_table,
            sheet_mm=(sheet[0], sheet[1]),
            drawing_area_mm=tuple(area),
            camera_mode=camera_mode,
            projector_mode=projector_mode,
            created=str(d["created"]),
            residuals=residuals,
            calibrated=bool(d.get("calibrated", True)),
            lens=lens,
        )
        if projector_to_table is not None:
            on = calibration.area_on_projector()
            if on < MIN_AREA_ON_PROJECTOR:
                raise CalibrationError(
                    f"{source}: only {on:.0%} of the drawing area lands on the projector's "
                    f"{projector_mode[0]}x{projector_mode[1]} picture ({1 - on:.0%} off it): the drawings "
                    f"would miss the sheet; run `newsnow calibrate projector` again")
        return calibration


def _normalized(h) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    return h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h


def _numbers(value, n, name, source, positive=False) -> tuple[float, ...]:
    try:
        nums = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise CalibrationError(f"{source}: field {name!r} must be a list of {n} numbers") from None
    if len(nums) != n or not all(math.isfinite(v) for v in nums):
        raise CalibrationError(f"{source}: field {name!r} must be {n} finite numbers, got {value!r}")
    if positive and min(nums) <= 0:
        raise CalibrationError(f"{source}: field {name!r} must be > 0, got {value!r}")
    return nums


def _mode(value, name, source) -> tuple[int, int]:
    w, h = _numbers(value, 2, name, source, positive=True)
    if w != int(w) or h != int(h):
        raise CalibrationError(f"{source}: field {name!r} must be whole pixels, got {value!r}")
    return int(w), int(h)


def _homography(value, name, source, mode) -> np.ndarray:
    try:
        h = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{source}: field {name!r} must be a 3x3 list of numbers") from None
    if h.shape != (3, 3):
        raise CalibrationError(f"{source}: field {name!r} must be 3x3, got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise CalibrationError(f"{source}: field {name!r} has a non-finite entry: calibrate again")
    if abs(h[2, 2]) < 1e-12 or np.linalg.cond(h / np.abs(h).max()) > 1e12:
        raise CalibrationError(f"{source}: field {name!r} is singular: calibrate again")
    # The image's corners must all lie on one side of the horizon: otherwise part of
    # the picture maps to infinity (the homography folds the frame over).
    w, hgt = mode
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, hgt - 0.5, 1], [-0.5, hgt - 0.5, 1]])
    third = corners @ h[2]
    if not (np.all(third > 0) or np.all(third < 0)):
        raise CalibrationError(
            f"{source}: field {name!r} folds the {w}x{hgt} image through infinity: calibrate again"
        )
    return _normalized(h)


def load(path, camera_mode=None, projector_mode=None, require_projector: bool = True) -> Calibration:
    """Read and validate a calibration file.

    `camera_mode` / `projector_mode` ((w, h) of the running camera and display), when
    given, must match the modes the calibration was measured in.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no calibration file: run `newsnow calibrate camera` and `projector`") from None
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the calibration file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    cal = Calibration.from_dict(data, source=str(path))
    if require_projector and cal.projector_to_table is None:
        raise CalibrationError(
            f"{path}: field 'projector_to_table' is missing (camera step only): run `newsnow calibrate projector`"
        )
    for name, running, stored in (
        ("camera_mode", camera_mode, cal.camera_mode),
        ("projector_mode", projector_mode, cal.projector_mode),
    ):
        if running is not None and stored is not None and pixel_size(running) != tuple(stored):
            rw, rh = pixel_size(running)
            raise CalibrationError(
                f"{path}: field {name!r} is {stored[0]}x{stored[1]} but the running mode is {rw}x{rh}: "
                f"set the mode back or calibrate again"
            )
    return cal


def save(calibration: Calibration, path) -> Path:
    """Write the calibration file atomically (storage.atomic_write)."""
    path = Path(path)
    Calibration.from_dict(calibration.to_dict(), source=str(path))  # never write what load refuses
    return atomic_write_json(path, calibration.to_dict(), indent=2)
