"""`newsnow calibrate ...` end to end on files: sheet, camera from a photo, projector in
a dummy window driven by events, check; bad input ends in a clear message; and the
calibration package never pulls in torch (it runs on a kiosk without it)."""
import argparse
import json
import subprocess
import sys

import cv2
import numpy as np
import pygame
import pytest

import calibration.projector
from calibration import commands, load
from calibration.sheet import SheetLayout
from tests.calibration.synthetic import random_table_to_camera, render_camera_frame


def newsnow(*argv) -> int:
    """Run a calibrate subcommand the way installation.cli.main does."""
    parser = argparse.ArgumentParser(prog="newsnow")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calibrate", *argv])
    return args.handler(args)


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(2)
    layout = SheetLayout.for_sheet((297.0, 420.0))
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), render_camera_frame(layout, random_table_to_camera(rng, (297.0, 420.0)), rng))
    return path


def test_sheet_writes_the_sheet_and_its_layout(tmp_path, capsys):
    """`calibrate sheet` writes the PNG and the layout JSON whose corners are the
    layout's own, and prints the marks' mm."""
    assert newsnow("sheet", "--size", "A4", "--out", str(tmp_path / "s.png"), "--dpi", "100",
                   "--layout", str(tmp_path / "l.json")) == 0
    layout = json.loads((tmp_path / "l.json").read_text())
    np.testing.assert_allclose(layout["chessboard_corners_mm"],
                               SheetLayout.for_sheet((210, 297)).chessboard_corners_mm(), atol=1e-3)
    assert cv2.imread(str(tmp_path / "s.png"), cv2.IMREAD_GRAYSCALE).shape == (1169, 827)
    assert "mark 8: 7.5, 148.5 mm" in capsys.readouterr().out


def test_camera_projector_check_make_a_complete_calibration(tmp_path, photo, monkeypatch, capsys):
    """camera (from a photo) then projector (events in a dummy window) then check: the
    file loads for the live loop, and the check image has lines in it."""
    cal_path = tmp_path / "cal.json"
    assert newsnow("camera", "--image", str(photo), "--out", str(cal_path), "--overlay", str(tmp_path / "o.png")) == 0
    assert "RMS" in capsys.readouterr().out and (tmp_path / "o.png").exists()

    real_run = calibration.projector.run

    def operator(alignment, screen, **kwargs):
        for _ in range(3):  # move cross 1 right by three pixels, then save
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT, mod=0))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, mod=0))
        start = alignment.handles.copy()
        saved = real_run(alignment, screen, timeout_s=10)
        np.testing.assert_allclose(alignment.handles[0] - start[0], [3, 0])
        return saved

    monkeypatch.setattr(calibration.projector, "run", operator)
    assert newsnow("projector", "--file", str(cal_path), "--window", "640x400") == 0
    cal = load(cal_path, camera_mode=(640, 480), projector_mode=(640, 400))
    assert cal.residuals["projector_points"] == 4 and "camera_rms_px" in cal.residuals

    assert newsnow("check", "--file", str(cal_path), "--out", str(tmp_path / "check.png")) == 0
    out = capsys.readouterr().out
    assert "camera_rms_px" in out and "days ago" in out
    image = cv2.imread(str(tmp_path / "check.png"))
    assert image.shape == (400, 640, 3) and (image > 0).mean() > 0.01


def test_cancelled_projector_step_writes_nothing(tmp_path, photo, monkeypatch):
    """Esc in the projector step leaves the calibration file as the camera step wrote it."""
    cal_path = tmp_path / "cal.json"
    newsnow("camera", "--image", str(photo), "--out", str(cal_path))
    before = cal_path.read_text()
    real_run = calibration.projector.run

    def operator(alignment, screen, **kwargs):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0))
        return real_run(alignment, screen, timeout_s=10)

    monkeypatch.setattr(calibration.projector, "run", operator)
    assert newsnow("projector", "--file", str(cal_path), "--window", "640x400") == 1
    assert cal_path.read_text() == before


def test_bad_input_gives_clear_errors(tmp_path):
    """An unreadable photo, a check on a camera-only file and a mode mismatch raise
    ValueErrors (printed by the CLI without a traceback) naming the file or field."""
    with pytest.raises(ValueError, match="nope.png: cannot read"):
        newsnow("camera", "--image", str(tmp_path / "nope.png"))
    from calibration import Calibration, save

    cal = Calibration.uncalibrated((640, 480), (800, 600))
    save(Calibration(**{**cal.__dict__, "projector_to_table": None, "projector_mode": None}), tmp_path / "c.json")
    with pytest.raises(ValueError, match="calibrate projector"):
        newsnow("check", "--file", str(tmp_path / "c.json"), "--out", str(tmp_path / "x.png"))
    assert newsnow("check", "--file", str(tmp_path / "c.json"), "--headless") == 0
    save(cal, tmp_path / "full.json")
    with pytest.raises(ValueError, match="projector_mode.*800x600.*1920x1080"):
        newsnow("check", "--file", str(tmp_path / "full.json"), "--headless", "--projector-mode", "1920x1080")
    with pytest.raises(SystemExit):
        newsnow("check", "--projector-mode", "big")


def test_calibration_never_imports_torch():
    """Importing every calibration module (and running the CLI's registration) leaves
    torch unimported: a kiosk calibrates without it."""
    code = ("import sys, argparse\n"
            "import calibration, calibration.camera, calibration.projector, calibration.check, calibration.sheet\n"
            "from calibration import commands\n"
            "commands.register(argparse.ArgumentParser().add_subparsers())\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_camera_with_lens_images_stores_the_lens_and_keeps_it(tmp_path, capsys):
    """`--lens-images` fits and stores a lens; a later camera step keeps it, and
    `--no-lens` drops it."""
    from tests.calibration.test_lens import SHEET as A4, K
    from tests.calibration.synthetic import pinhole_table_to_camera

    rng = np.random.default_rng(9)
    layout = SheetLayout.for_sheet(A4)
    paths = []
    for n in range(4):
        paths.append(str(tmp_path / f"view{n}.png"))
        cv2.imwrite(paths[-1], render_camera_frame(layout, pinhole_table_to_camera(rng, A4, K), rng, hand=False))
    photo = tmp_path / "table.png"
    cv2.imwrite(str(photo), render_camera_frame(layout, random_table_to_camera(rng, A4), rng))
    cal_path = str(tmp_path / "cal.json")
    assert newsnow("camera", "--image", str(photo), "--size", "A4", "--out", cal_path, "--lens-images", *paths) == 0
    assert load(cal_path, require_projector=False).lens.views == 4
    assert newsnow("camera", "--image", str(photo), "--size", "A4", "--out", cal_path) == 0
    assert "kept the lens model" in capsys.readouterr().out
    assert load(cal_path, require_projector=False).lens is not None
    assert newsnow("camera", "--image", str(photo), "--size", "A4", "--out", cal_path, "--no-lens") == 0
    assert load(cal_path, require_projector=False).lens is None


def test_check_shows_full_screen_until_a_key(tmp_path, monkeypatch, capsys):
    """Without --out the check is shown on the display (dummy here) until a key comes;
    a display running another mode than the calibration's is refused."""
    from calibration import Calibration, save

    cal = Calibration.uncalibrated((640, 480), (320, 200))
    save(Calibration(**{**cal.__dict__, "calibrated": True}), tmp_path / "cal.json")
    real_open = calibration.projector.open_screen

    def screen_with_a_key(display=0, window=None, size=(320, 200)):
        screen = real_open(display, size)
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE, mod=0))
        return screen

    monkeypatch.setattr(calibration.projector, "open_screen", screen_with_a_key)
    assert newsnow("check", "--file", str(tmp_path / "cal.json")) == 0
    assert "press a key" in capsys.readouterr().out
    monkeypatch.setattr(calibration.projector, "open_screen",
                        lambda display=0, window=None: screen_with_a_key(display, window, (640, 400)))
    with pytest.raises(ValueError, match="display 0 runs 640x400.*320x200"):
        newsnow("check", "--file", str(tmp_path / "cal.json"))


def test_missing_camera_device_is_named(tmp_path):
    """A camera index with no device behind it is refused naming the device."""
    with pytest.raises(ValueError, match="camera device 97"):
        newsnow("camera", "--device", "97", "--out", str(tmp_path / "c.json"))


def test_camera_step_says_how_the_area_is_stretched_and_can_keep_the_aspect(tmp_path, photo, capsys):
    """The default A3 drawing area is not square: the camera step says how much the square sketch
    stretches it; --square-area stores the largest centred square instead."""
    from calibration import load

    cal_path = tmp_path / "cal.json"
    assert newsnow("camera", "--image", str(photo), "--out", str(cal_path)) == 0
    out = capsys.readouterr().out
    assert "drawing area 267 x 390 mm: stretched 1.46:1 into the square sketch" in out and "--square-area" in out
    assert newsnow("camera", "--image", str(photo), "--out", str(cal_path), "--square-area") == 0
    x, y, w, h = load(cal_path, require_projector=False).drawing_area_mm
    assert w == h == 267 and y == 15 + (390 - 267) / 2
    assert "drawing area 267 x 267 mm: square, as the sketch" in capsys.readouterr().out
