"""The marker sheet: sizes, a layout that keeps the marks off the board, a rendering whose
corners sit where the layout says, and files that print at the sheet's physical size."""
import re

import cv2
import numpy as np
import pytest

from calibration import CalibrationError
from calibration.sheet import MARGIN_MM, SheetLayout, parse_size, write_sheet


def test_parse_size_reads_paper_names_and_millimetres():
    """A3/A4 are ISO portrait sizes; WxH is taken as millimetres; nonsense is refused."""
    assert parse_size("A3") == (297.0, 420.0)
    assert parse_size("a4") == (210.0, 297.0)
    assert parse_size("420x297") == (420.0, 297.0)
    assert parse_size("500.5 x 300mm") == (500.5, 300.0)
    with pytest.raises(CalibrationError, match="'B5' is not understood"):
        parse_size("B5")


@pytest.mark.parametrize("size", [(210.0, 297.0), (297.0, 420.0), (420.0, 297.0), (600.0, 400.0)])
def test_layout_keeps_board_inside_the_margin_and_marks_off_the_board(size):
    """The board lies within the sheet less the margin, and every alignment cross lies
    in the margin, clear of the board."""
    layout = SheetLayout.for_sheet(size)
    ox, oy = layout.origin_mm
    bw, bh = layout.squares[0] * layout.square_mm, layout.squares[1] * layout.square_mm
    assert ox >= MARGIN_MM - 1e-9 and oy >= MARGIN_MM - 1e-9
    assert ox + bw <= size[0] - MARGIN_MM + 1e-9 and oy + bh <= size[1] - MARGIN_MM + 1e-9
    for x, y in layout.alignment_marks_mm(8):
        inside_board = ox - 5 < x < ox + bw + 5 and oy - 5 < y < oy + bh + 5
        assert not inside_board and 0 < x < size[0] and 0 < y < size[1]


def test_too_small_a_sheet_is_refused():
    """A sheet too small for the board is refused, naming the size."""
    with pytest.raises(CalibrationError, match="60x60 mm is too small"):
        SheetLayout.for_sheet((60.0, 60.0))


def test_rendered_corners_are_where_the_layout_puts_them():
    """ChArUco detection on the rendered A4 sheet finds every corner within 0.15 px of
    its layout position in mm (so the sheet image and the table mm agree)."""
    layout = SheetLayout.for_sheet((210.0, 297.0))
    px_per_mm = 3.0
    image = layout.render(px_per_mm)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(layout.board()).detectBoard(image)
    assert ids is not None and len(ids) == len(layout.chessboard_corners_mm())
    expected = layout.chessboard_corners_mm()[ids.ravel()] * px_per_mm - 0.5
    assert np.abs(corners.reshape(-1, 2) - expected).max() < 0.15


def test_marker_corners_in_mm_match_the_rendered_markers():
    """Each ArUco id's corners given in mm are where the detector finds that id (within
    1 px: ArUco's own corner estimate is biased by up to half a pixel; a wrong id or
    order would be off by a whole square, 77 px here)."""
    layout = SheetLayout.for_sheet((210.0, 297.0))
    image = layout.render(3.0)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(layout.board().getDictionary(), params)
    found, ids, _ = detector.detectMarkers(image)
    known = layout.marker_corners_mm()
    assert len(ids) == len(known)
    for quad, marker_id in zip(found, ids.ravel()):
        assert np.abs(quad.reshape(4, 2) - (known[int(marker_id)] * 3.0 - 0.5)).max() < 1.0


def test_png_covers_the_sheet_at_its_dpi(tmp_path):
    """The PNG has the sheet's size in pixels at the stated dpi, and says so in its metadata."""
    from PIL import Image

    out, _ = write_sheet((210.0, 297.0), tmp_path / "sheet.png", dpi=100)
    with Image.open(out) as im:
        assert im.size == (round(210 / 25.4 * 100), round(297 / 25.4 * 100))
        assert im.info["dpi"] == pytest.approx((100, 100), abs=0.01)


def test_pdf_page_is_the_sheet_size(tmp_path):
    """The PDF's page is the sheet's physical size within 0.2 mm (one pixel at 150 dpi)."""
    out, _ = write_sheet((420.0, 297.0), tmp_path / "sheet.pdf", dpi=150)
    box = re.search(rb"MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", out.read_bytes())
    w_mm, h_mm = (float(v) / 72 * 25.4 for v in box.groups())
    assert w_mm == pytest.approx(420.0, abs=0.2) and h_mm == pytest.approx(297.0, abs=0.2)


def test_unknown_suffix_is_refused(tmp_path):
    """Only .png and .pdf are written; another suffix is refused with the file name."""
    with pytest.raises(CalibrationError, match="sheet.jpg"):
        write_sheet((210.0, 297.0), tmp_path / "sheet.jpg")
