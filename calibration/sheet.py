"""The printed marker sheet: a ChArUco board with every corner known in table mm.

The sheet is the table's coordinate frame: origin at the sheet's top-left corner, x to
the right, y down, millimetres. The camera step finds the board's chessboard corners;
the projector step uses the crosshair alignment marks printed near the sheet's corners
and edge midpoints (inside the area that printers reach).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.geometry import CalibrationError

# ISO 216 paper sizes, portrait (w, h) in mm. Give WxH for landscape or other sizes.
PAPER_MM = {"A2": (420.0, 594.0), "A3": (297.0, 420.0), "A4": (210.0, 297.0), "A5": (148.0, 210.0)}

MARGIN_MM = 15.0  # white frame around the board, where the alignment marks sit
MARK_INSET_MM = 7.5  # alignment mark centres from the sheet's edges
MARK_ARM_MM = 5.0  # half length of an alignment cross
SQUARES_SHORT_SIDE = 7  # chessboard squares across the sheet's short side
MARKER_RATIO = 0.7  # ArUco marker side / square side
DICTIONARY = "DICT_4X4_250"  # 4x4 bits: the largest cells for a given marker size


def parse_size(text: str) -> tuple[float, float]:
    """'A3', 'A4', ... (portrait) or 'WxH' in mm (e.g. '420x297') -> (w, h) mm."""
    key = text.strip().upper()
    if key in PAPER_MM:
        return PAPER_MM[key]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[X×]\s*(\d+(?:\.\d+)?)(?:\s*MM)?", key)
    if not m:
        raise CalibrationError(
            f"sheet size {text!r} is not understood: give {', '.join(PAPER_MM)} or WxH in mm (e.g. 420x297)"
        )
    return float(m.group(1)), float(m.group(2))


@dataclass(frozen=True)
class SheetLayout:
    """Where everything on the sheet is, in mm (derived from the sheet size alone, so
    the camera step rebuilds the same layout from `sheet_mm`)."""

    size_mm: tuple[float, float]
    squares: tuple[int, int]  # chessboard squares (x, y)
    square_mm: float
    marker_mm: float
    origin_mm: tuple[float, float]  # top-left of the board on the sheet

    @classmethod
    def for_sheet(cls, size_mm) -> "SheetLayout":
        w, h = float(size_mm[0]), float(size_mm[1])
        usable_w, usable_h = w - 2 * MARGIN_MM, h - 2 * MARGIN_MM
        square = min(usable_w, usable_h) / SQUARES_SHORT_SIDE
        if square < 8.0:
            raise CalibrationError(
                f"sheet {w:g}x{h:g} mm is too small for the marker board: use at least 90x90 mm (A5 or larger)"
            )
        sx, sy = int(usable_w / square + 1e-6), int(usable_h / square + 1e-6)
        if sx * sy // 2 > 250:
            raise CalibrationError(
                f"sheet {w:g}x{h:g} mm is too elongated: the board would need more than 250 markers"
            )
        origin = ((w - sx * square) / 2.0, (h - sy * square) / 2.0)
        return cls((w, h), (sx, sy), square, square * MARKER_RATIO, origin)

    def board(self) -> "cv2.aruco.CharucoBoard":
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY))
        return cv2.aruco.CharucoBoard(self.squares, self.square_mm, self.marker_mm, dictionary)

    def chessboard_corners_mm(self) -> np.ndarray:
        """(N, 2) table mm of the board's inner chessboard corners, indexed by ChArUco id."""
        corners = self.board().getChessboardCorners()[:, :2].astype(np.float64)
        return corners + np.array(self.origin_mm)

    def marker_corners_mm(self) -> dict[int, np.ndarray]:
        """ArUco id -> (4, 2) table mm of the marker's corners (clockwise from top-left)."""
        board = self.board()
        ids = np.asarray(board.getIds()).ravel()
        obj = np.asarray(board.getObjPoints(), dtype=np.float64)[:, :, :2] + np.array(self.origin_mm)
        return {int(i): obj[k] for k, i in enumerate(ids)}

    def alignment_marks_mm(self, count: int = 4) -> np.ndarray:
        """(count, 2) table mm of the printed crosses the projector handles go on:
        4 = near the sheet's corners (clockwise from top-left); 8 = plus the edge midpoints."""
        w, h = self.size_mm
        i = MARK_INSET_MM
        corners = [(i, i), (w - i, i), (w - i, h - i), (i, h - i)]
        midpoints = [(w / 2, i), (w - i, h / 2), (w / 2, h - i), (i, h / 2)]
        if count == 4:
            return np.array(corners)
        if count == 8:
            return np.array(corners + midpoints)
        raise CalibrationError(f"alignment points: {count} is not 4 or 8")

    def to_dict(self) -> dict:
        return {
            "size_mm": list(self.size_mm),
            "squares": list(self.squares),
            "square_mm": self.square_mm,
            "marker_mm": self.marker_mm,
            "origin_mm": list(self.origin_mm),
            "dictionary": DICTIONARY,
        }

    # -- rendering -------------------------------------------------------------------

    def render(self, px_per_mm: float, label: bool = True) -> np.ndarray:
        """uint8 gray image of the whole sheet; pixel centre (u, v) is at mm
        ((u + 0.5) / px_per_mm, (v + 0.5) / px_per_mm)."""
        w_px = int(round(self.size_mm[0] * px_per_mm))
        h_px = int(round(self.size_mm[1] * px_per_mm))
        # Draw the board with whole pixels per square, then place it with the exact
        # sub-pixel affine map (scale close to 1, so bilinear edges stay true).
        k = max(int(np.ceil(self.square_mm * px_per_mm)), 12)
        sx, sy = self.squares
        board_img = self.board().generateImage((sx * k, sy * k), marginSize=0, borderBits=1)
        s = self.square_mm * px_per_mm / k
        ox, oy = self.origin_mm[0] * px_per_mm, self.origin_mm[1] * px_per_mm
        affine = np.array([[s, 0, (0.5 * s) + ox - 0.5], [0, s, (0.5 * s) + oy - 0.5]], dtype=np.float64)
        sheet = cv2.warpAffine(
            board_img, affine, (w_px, h_px), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=255,
        )
        self._draw_marks(sheet, px_per_mm)
        if label:
            self._draw_label(sheet, px_per_mm)
        return sheet

    def _draw_marks(self, sheet: np.ndarray, px_per_mm: float) -> None:
        shift = 4  # sub-pixel line ends: coordinates in 1/16 px
        f = float(1 << shift)
        thick = max(1, int(round(0.3 * px_per_mm)))
        arm = MARK_ARM_MM * px_per_mm
        for x, y in self.alignment_marks_mm(8):
            u, v = x * px_per_mm - 0.5, y * px_per_mm - 0.5
            for (a, b), (c, d) in (((u - arm, v), (u + arm, v)), ((u, v - arm), (u, v + arm))):
                cv2.line(sheet, (round(a * f), round(b * f)), (round(c * f), round(d * f)), 0, thick, cv2.LINE_AA, shift)
        # each mark's number in the quadrant towards the sheet's centre, for the projector step
        scale = 3.5 * px_per_mm / cv2.getTextSize("8", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][1]
        w, h = self.size_mm
        for n, (x, y) in enumerate(self.alignment_marks_mm(8), start=1):
            dx = 1.5 if x <= w / 2 else -5.0
            dy = 5.0 if y <= h / 2 else -1.5
            org = (int((x + dx) * px_per_mm), int((y + dy) * px_per_mm))
            cv2.putText(sheet, str(n), org, cv2.FONT_HERSHEY_SIMPLEX, scale, 0, max(1, int(scale)), cv2.LINE_AA)

    def _draw_label(self, sheet: np.ndarray, px_per_mm: float) -> None:
        w, h = self.size_mm
        text = f"New Snow calibration sheet {w:g} x {h:g} mm - print at 100% (actual size)"
        # text in the bottom margin, between the corner and midpoint marks
        room = (w / 2 - MARK_INSET_MM - MARK_ARM_MM - 2 * 4.0) * px_per_mm
        height = 2.5 * px_per_mm
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
        scale = min(height / th, room / tw)
        org = (int((MARK_INSET_MM + MARK_ARM_MM + 4.0) * px_per_mm), int((h - MARK_INSET_MM) * px_per_mm + th * scale / 2))
        cv2.putText(sheet, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 96, max(1, int(scale)), cv2.LINE_AA)


def detect_corners(gray: np.ndarray, layout: SheetLayout) -> tuple[np.ndarray, np.ndarray]:
    """ChArUco corners in the frame: (camera px (N, 2), table mm (N, 2))."""
    detector = cv2.aruco.CharucoDetector(layout.board())
    corners, ids, _, _ = detector.detectBoard(gray)
    if ids is None or len(ids) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    table = layout.chessboard_corners_mm()[ids.ravel()]
    return corners.reshape(-1, 2).astype(np.float64), table


def write_sheet(size_mm, out, dpi: int = 300) -> tuple[Path, SheetLayout]:
    """Write the sheet as PNG (with its dpi) or PDF (page = the sheet's size)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".pdf"):
        raise CalibrationError(f"{out}: the sheet is written as .png or .pdf, not {suffix or 'no suffix'!r}")
    if not 72 <= dpi <= 1200:
        raise CalibrationError(f"dpi {dpi} is out of range: use 72..1200 (300 suits most printers)")
    layout = SheetLayout.for_sheet(size_mm)
    image = layout.render(dpi / 25.4)
    from PIL import Image  # only this command needs Pillow (PNG dpi metadata, PDF pages)

    out.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image, mode="L")
    if suffix == ".png":
        pil.save(out, dpi=(dpi, dpi))
    else:
        pil.save(out, "PDF", resolution=float(dpi))
    return out, layout
