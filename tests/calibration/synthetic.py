"""A simulated camera looking at the marker sheet on the table, for the tests.

The sheet is rendered in table mm, warped by a known table -> camera homography at twice
the camera resolution and averaged down (a camera integrates light over its pixels),
then degraded: blur, vignetting, a hand over a corner, sensor noise.
"""
from __future__ import annotations

import cv2
import numpy as np

from calibration.sheet import SheetLayout

CAMERA = (640, 480)
SHEET_PX_PER_MM = 4.0


def random_table_to_camera(rng: np.random.Generator, sheet_mm, camera=CAMERA, fill=(0.7, 0.95), jitter=0.06):
    """A perspective homography table mm -> camera px that puts the sheet, turned and
    tilted at random, inside the frame and filling `fill` of its height or width."""
    w, h = sheet_mm
    cw, ch = camera
    rotate = rng.integers(0, 2) == 1  # portrait sheet seen upright or turned a quarter
    sheet = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    span = np.array([h, w]) if rotate else np.array([w, h])
    scale = rng.uniform(*fill) * min(cw / span[0], ch / span[1])
    centre = np.array([cw, ch]) / 2 + rng.uniform(-0.04, 0.04, 2) * np.array([cw, ch])
    angle = (np.pi / 2 if rotate else 0.0) + rng.uniform(-0.12, 0.12)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = (sheet - np.array([w, h]) / 2) @ rot.T * scale + centre
    # perspective: move each corner by a few percent of the sheet's size in the frame
    target += rng.uniform(-jitter, jitter, (4, 2)) * span.max() * scale
    return cv2.getPerspectiveTransform(sheet.astype(np.float32), target.astype(np.float32)).astype(np.float64)


def render_camera_frame(layout: SheetLayout, table_to_camera, rng: np.random.Generator, camera=CAMERA,
                        blur=(0.4, 1.0), noise=(1.0, 4.0), vignette=(0.0, 0.35), hand=True, sheet_image=None,
                        lens_maps=None):
    """uint8 gray camera frame of the sheet under `table_to_camera` with the degradations
    (and the lens distortion of `lens_maps`, from distortion_maps)."""
    k = SHEET_PX_PER_MM
    sheet = layout.render(k, label=False) if sheet_image is None else sheet_image
    cw, ch = camera
    # sheet pixel centre u -> mm (u + 0.5) / k -> camera (2x) edge coords -> centre coords
    sheet_to_mm = np.array([[1 / k, 0, 0.5 / k], [0, 1 / k, 0.5 / k], [0, 0, 1]])
    # camera centre c -> edge c + 0.5 -> 2x edge 2c + 1 -> 2x centre 2c + 0.5
    to_2x = np.array([[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]])
    h2 = to_2x @ table_to_camera @ sheet_to_mm
    # the table around the sheet: a darker matte surface
    table_level = float(rng.uniform(60, 110))
    big = cv2.warpPerspective(sheet.astype(np.float32) * (200 / 255.0) + 20, h2, (2 * cw, 2 * ch),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=table_level)
    frame = cv2.resize(big, (cw, ch), interpolation=cv2.INTER_AREA)
    if lens_maps is not None:
        frame = cv2.remap(frame, lens_maps[0], lens_maps[1], cv2.INTER_LINEAR, borderValue=table_level)
    if hand:
        frame = _hand_over_a_corner(frame, layout, table_to_camera, rng)
    sigma = rng.uniform(*blur)
    frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    r2 = ((xx - cw / 2) ** 2 + (yy - ch / 2) ** 2) / ((cw / 2) ** 2 + (ch / 2) ** 2)
    frame *= 1.0 - rng.uniform(*vignette) * r2
    frame += rng.normal(0, rng.uniform(*noise), frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _hand_over_a_corner(frame, layout, table_to_camera, rng):
    """A bright (skin reflects IR) blurred palm and arm covering one corner of the sheet."""
    w, h = layout.size_mm
    corner = np.array([[0, 0], [w, 0], [w, h], [0, h]])[rng.integers(0, 4)]
    centre_mm = corner + (np.array([w, h]) / 2 - corner) * rng.uniform(0.15, 0.28)
    pts = cv2.perspectiveTransform(np.array([[centre_mm, corner]], dtype=np.float64), table_to_camera)[0]
    mask = np.zeros(frame.shape, np.float32)
    radius = rng.uniform(0.1, 0.14) * frame.shape[0]
    cv2.ellipse(mask, (int(pts[0][0]), int(pts[0][1])), (int(radius * 1.3), int(radius)),
                float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    cv2.line(mask, (int(pts[0][0]), int(pts[0][1])), (int(2 * pts[1][0] - pts[0][0]), int(2 * pts[1][1] - pts[0][1])),
             1.0, int(radius * 1.2))
    mask = cv2.GaussianBlur(mask, (0, 0), 3)
    skin = float(rng.uniform(150, 210))
    return frame * (1 - mask) + skin * mask


def pinhole_table_to_camera(rng: np.random.Generator, sheet_mm, camera_matrix, camera=CAMERA, tilt_deg=35.0):
    """table mm -> ideal (distortion-free) camera px for the sheet held at a random tilt
    in front of a pinhole camera: H = K [r1 r2 t], so all views share one camera."""
    w, h = sheet_mm
    axis = np.array([*rng.normal(size=2), 0.0])
    tilt = cv2.Rodrigues(axis / np.linalg.norm(axis) * np.radians(rng.uniform(10, tilt_deg)))[0]
    spin = cv2.Rodrigues(np.array([0.0, 0.0, rng.uniform(-0.3, 0.3)]))[0]
    rot = tilt @ spin
    f = camera_matrix[0, 0]
    distance = f * max(w, h) / (0.9 * min(camera))  # the sheet about fills the frame's height
    centre = np.array([-w / 2, -h / 2, 0.0])
    t = rot @ centre + np.array([*rng.uniform(-0.12, 0.12, 2) * distance, distance])
    return camera_matrix @ np.column_stack([rot[:, 0], rot[:, 1], t])


def distortion_maps(camera_matrix, dist_coeffs, camera=CAMERA):
    """remap tables that turn an ideal frame into what the distorting lens records: each
    recorded pixel looks up its undistorted position."""
    cw, ch = camera
    grid = np.stack(np.meshgrid(np.arange(cw, dtype=np.float64), np.arange(ch, dtype=np.float64)), -1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-8)
    ideal = cv2.undistortPoints(grid, camera_matrix, dist_coeffs, P=camera_matrix, criteria=criteria)
    ideal = ideal.reshape(ch, cw, 2).astype(np.float32)
    return ideal[..., 0], ideal[..., 1]


def distort_points(points, camera_matrix, dist_coeffs) -> np.ndarray:
    """Ideal camera px -> where the distorting lens records them."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    normalized = np.hstack([pts, np.ones((len(pts), 1))]) @ np.linalg.inv(camera_matrix).T
    out, _ = cv2.projectPoints(normalized, np.zeros(3), np.zeros(3), camera_matrix, dist_coeffs)
    return out.reshape(-1, 2)
