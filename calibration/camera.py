"""Camera -> table from one camera frame of the marker sheet lying on the table.

ChArUco corners give camera pixels paired with table mm. The homography is fitted in
the table -> camera direction, because the detection noise is in the camera pixels:
RANSAC drops bad corners (threshold in px), then a least-squares fit with
Levenberg-Marquardt refinement on the inliers (cv2.findHomography, method 0) minimises
the reprojection error in camera px. camera -> table is its inverse.

A frame that does not show enough of the sheet is refused with the reason (too few
corners, blur, glare, too little of the sheet), never turned into a wrong answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.geometry import CalibrationError, apply_homography, default_drawing_area, now_iso
from calibration.lens import Lens
from calibration.record import Calibration
from calibration.sheet import SheetLayout, detect_corners

DEFAULT_MAX_ERROR_PX = 1.5
MIN_CORNER_SHARE = 0.35  # detected ChArUco corners / all of them
MIN_COVERAGE = 0.35  # area of the detected corners' hull / area of the whole corner grid
RANSAC_PX = 2.0
BLUR_MIN = 60.0  # variance of the Laplacian below which a frame counts as blurred
GLARE_MAX = 0.05  # share of saturated pixels above which a frame counts as glared


class CameraCalibrationError(CalibrationError):
    """The frame cannot give camera -> table; the message says why and what to do."""


@dataclass(frozen=True)
class CameraResult:
    camera_to_table: np.ndarray  # 3x3, camera px -> table mm
    camera_mode: tuple[int, int]  # (w, h) of the frame
    rms_px: float  # reprojection RMS of the inlier corners, camera px
    rms_mm: float  # the same corners mapped onto the table, mm
    corners: int  # ChArUco corners detected
    inliers: int  # corners kept by RANSAC
    total: int  # corners on the board
    coverage: float  # share of the corner grid's area that the detected corners span
    blur: float  # variance of the Laplacian of the frame
    glare: float  # share of saturated pixels
    camera_px: np.ndarray = field(repr=False)  # (N, 2) inlier corners in the (undistorted) frame
    table_mm: np.ndarray = field(repr=False)  # (N, 2) the same corners on the table
    lens: Lens | None = None  # the lens model the corners were undistorted with

    def residuals(self) -> dict:
        return {
            "camera_rms_px": round(self.rms_px, 4),
            "camera_rms_mm": round(self.rms_mm, 4),
            "camera_corners": self.corners,
            "camera_inliers": self.inliers,
            "camera_corners_on_board": self.total,
            "camera_coverage": round(self.coverage, 3),
            **({} if self.lens is None else {"lens_rms_px": round(self.lens.rms_px, 4), "lens_views": self.lens.views}),
        }


def to_calibration(result: CameraResult, sheet_mm, drawing_area_mm=None,
                   previous: Calibration | None = None) -> Calibration:
    """The calibration record of a camera step. A previous record's projector step is
    kept when it was made on the same sheet (the projector did not move with the camera);
    its drawing area too, unless a new one is given."""
    sheet = (float(sheet_mm[0]), float(sheet_mm[1]))
    same_sheet = previous is not None and tuple(previous.sheet_mm) == sheet and previous.calibrated
    if drawing_area_mm is None:
        drawing_area_mm = previous.drawing_area_mm if same_sheet else default_drawing_area(sheet)
    residuals = {k: v for k, v in previous.residuals.items() if k.startswith("projector")} if same_sheet else {}
    return Calibration(
        camera_to_table=result.camera_to_table,
        projector_to_table=previous.projector_to_table if same_sheet else None,
        sheet_mm=sheet,
        drawing_area_mm=tuple(float(v) for v in drawing_area_mm),
        camera_mode=result.camera_mode,
        projector_mode=previous.projector_mode if same_sheet else None,
        created=now_iso(),
        residuals={**residuals, **result.residuals()},
        lens=result.lens,
    )


def frame_quality(gray: np.ndarray) -> tuple[float, float]:
    """(variance of the Laplacian, share of saturated pixels) of a gray frame."""
    blur = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    glare = float(np.count_nonzero(gray >= 250)) / gray.size
    return blur, glare


def _as_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        raise CameraCalibrationError(f"camera frame: expected uint8 pixels, got {image.dtype}")
    return image


def calibrate_camera(
    image: np.ndarray,
    sheet_mm,
    max_error_px: float = DEFAULT_MAX_ERROR_PX,
    min_corner_share: float = MIN_CORNER_SHARE,
    min_coverage: float = MIN_COVERAGE,
    lens: Lens | None = None,
) -> CameraResult:
    """camera -> table from one frame of the sheet; raises CameraCalibrationError.

    With a `lens`, the corners are undistorted first, so the result maps undistorted
    camera px (what `Lens.undistort` makes of a frame)."""
    gray = _as_gray(image)
    if lens is not None and (gray.shape[1], gray.shape[0]) != tuple(lens.mode):
        raise CameraCalibrationError(
            f"camera frame is {gray.shape[1]}x{gray.shape[0]} but the lens model is for "
            f"{lens.mode[0]}x{lens.mode[1]}: use the camera mode the lens was measured in")
    layout = SheetLayout.for_sheet(sheet_mm)
    total = len(layout.chessboard_corners_mm())
    blur, glare = frame_quality(gray)
    camera_px, table_mm = detect_corners(gray, layout)

    def refuse(problem: str) -> CameraCalibrationError:
        causes = []
        if blur < BLUR_MIN:
            causes.append(f"the frame looks blurred (variance of Laplacian {blur:.0f} < {BLUR_MIN:.0f}): focus the camera")
        if glare > GLARE_MAX:
            causes.append(
                f"glare: {glare:.0%} of the pixels are saturated (> {GLARE_MAX:.0%}): lower the exposure or the IR light"
            )
        if not causes:
            causes.append(f"make the whole {layout.size_mm[0]:g}x{layout.size_mm[1]:g} mm sheet visible, flat and lit")
        return CameraCalibrationError(f"camera calibration refused: {problem}; " + "; ".join(causes))

    need = max(8, int(np.ceil(min_corner_share * total)))
    if len(camera_px) < need:
        raise refuse(f"too few markers: {len(camera_px)} of {total} sheet corners found (need {need})")
    if lens is not None and len(camera_px):
        camera_px = lens.undistort_points(camera_px)
    grid = layout.chessboard_corners_mm()
    coverage = _hull_area(table_mm) / _hull_area(grid)
    if coverage < min_coverage:
        raise refuse(f"too little of the sheet is visible: the corners found span {coverage:.0%} of it (need {min_coverage:.0%})")

    table_to_camera, mask = cv2.findHomography(table_mm, camera_px, cv2.RANSAC, RANSAC_PX, maxIters=2000, confidence=0.999)
    if table_to_camera is None:
        raise refuse("no homography fits the detected corners")
    inliers = mask.ravel().astype(bool)
    if inliers.sum() < need:
        raise refuse(f"only {int(inliers.sum())} corners agree on one plane (need {need})")
    # least squares + LM refinement on the inliers (method 0 refines internally)
    table_to_camera, _ = cv2.findHomography(table_mm[inliers], camera_px[inliers], 0)
    if table_to_camera is None or not np.all(np.isfinite(table_to_camera)):
        raise refuse("the refined homography is degenerate")
    camera_to_table = np.linalg.inv(table_to_camera)
    camera_to_table /= camera_to_table[2, 2]

    cam_in, tab_in = camera_px[inliers], table_mm[inliers]
    rms_px = float(np.sqrt(np.mean(np.sum((apply_homography(table_to_camera, tab_in) - cam_in) ** 2, axis=1))))
    rms_mm = float(np.sqrt(np.mean(np.sum((apply_homography(camera_to_table, cam_in) - tab_in) ** 2, axis=1))))
    if rms_px > max_error_px:
        raise refuse(f"reprojection error {rms_px:.2f} px ({rms_mm:.2f} mm) is over the bound {max_error_px:g} px")
    h, w = gray.shape
    return CameraResult(
        camera_to_table=camera_to_table,
        camera_mode=(w, h),
        rms_px=rms_px,
        rms_mm=rms_mm,
        corners=len(camera_px),
        inliers=int(inliers.sum()),
        total=total,
        coverage=float(coverage),
        blur=blur,
        glare=glare,
        camera_px=cam_in,
        table_mm=tab_in,
        lens=lens,
    )


def _hull_area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(points.astype(np.float32))))


def grab_frame(device: int, mode=None, warmup: int = 15) -> np.ndarray:
    """One gray frame from camera `device` (in `mode` (w, h) when given, as the table
    runs it), after `warmup` frames for auto exposure."""
    cap = cv2.VideoCapture(device)
    try:
        if not cap.isOpened():
            raise CameraCalibrationError(f"camera device {device}: cannot open it: check the cable and --device")
        if mode is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, mode[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, mode[1])
        frame = None
        for _ in range(max(1, warmup)):
            ok, frame = cap.read()
            if not ok:
                raise CameraCalibrationError(f"camera device {device}: no frame came: is another program using it?")
        if mode is not None and (frame.shape[1], frame.shape[0]) != tuple(mode):
            raise CameraCalibrationError(
                f"camera device {device} gives {frame.shape[1]}x{frame.shape[0]}, not the asked "
                f"{mode[0]}x{mode[1]}: pick a mode the camera has (v4l2-ctl --list-formats-ext)")
        return _as_gray(frame)
    finally:
        cap.release()


def overlay(image: np.ndarray, result: CameraResult, sheet_mm) -> np.ndarray:
    """The (undistorted) frame with the detected corners and the sheet's outline drawn through the
    fitted homography, for the operator to look at."""
    gray = _as_gray(image) if result.lens is None else result.lens.undistort(_as_gray(image))
    out = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    w, h = sheet_mm
    outline = apply_homography(np.linalg.inv(result.camera_to_table), [[0, 0], [w, 0], [w, h], [0, h]])
    cv2.polylines(out, [np.round(outline * 16).astype(np.int32)], True, (0, 0, 255), 2, cv2.LINE_AA, 4)
    for x, y in result.camera_px:
        cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), 3 * 16, (0, 200, 0), 1, cv2.LINE_AA, 4)
    return out
