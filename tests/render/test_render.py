"""render/: tone curves, the stroke composite, the homography warp, the crossfade, the display."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration import Calibration
from render.display import Display, DisplayError
from render.tone import Tone, apply_tone, composite_strokes, drawing_to_uint8
from render.transition import Blend, ease
from render.warp import Warp, map_point


def test_neutral_tone_changes_nothing():
    """Tone() is the identity: every grey level and colour comes back unchanged."""
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.array_equal(apply_tone(rgb, Tone()), rgb)


def test_tone_contrast_gamma_brightness_saturation():
    """Each tone control moves pixels the way its name says."""
    grey = np.array([[[64, 64, 64], [192, 192, 192]]], np.uint8)
    hi = apply_tone(grey, Tone(contrast=2.0))
    assert hi[0, 0, 0] < 10 and hi[0, 1, 0] > 245  # contrast spreads around mid-grey
    mid = np.full((1, 1, 3), 128, np.uint8)
    assert apply_tone(mid, Tone(gamma=2.0))[0, 0, 0] < 80  # gamma > 1 darkens mid-tones
    assert apply_tone(mid, Tone(brightness=0.2))[0, 0, 0] == pytest.approx(179, abs=1)
    red = np.array([[[200, 0, 0]]], np.uint8)
    flat = apply_tone(red, Tone(saturation=0.0))[0, 0]
    assert flat.max() - flat.min() <= 1  # saturation 0 leaves grey


def test_drawing_to_uint8_follows_the_tensor_contract():
    """Model output [C, R, R] in [-1, 1]: -1 -> 0 (ink), +1 -> 255 (paper); gray stays one channel."""
    d = np.full((1, 4, 4), 1.0, np.float32)
    d[0, 1, 2] = -1.0
    gray = drawing_to_uint8(d)
    assert gray.shape == (4, 4) and gray.dtype == np.uint8
    assert gray[1, 2] == 0 and gray[0, 0] == 255
    colour = drawing_to_uint8(np.stack([np.full((4, 4), v, np.float32) for v in (1, 0, -1)]))
    assert colour.shape == (4, 4, 3) and tuple(colour[0, 0]) == (255, 128, 0)  # 127.5 rounds to 128
    with pytest.raises(ValueError, match="2 channels"):
        drawing_to_uint8(np.zeros((2, 4, 4), np.float32))


def test_composite_strokes_darkens_only_the_visitors_ink():
    """The visitor's strokes (sketch ink 0) darken the drawing there; paper leaves it alone."""
    drawing = np.full((8, 8, 3), 200, np.uint8)
    sketch = np.full((8, 8), 255, np.uint8)
    sketch[3, :] = 0
    out = composite_strokes(drawing, sketch, opacity=0.75)
    assert out[3, 0, 0] == 50 and out[0, 0, 0] == 200


@pytest.mark.parametrize("channels", [1, 3])
def test_warp_puts_a_point_where_the_homography_says(channels):
    """A dot at drawing pixel p appears in the RGB projector frame at H p (OpenCV pixel-centre convention)."""
    h = np.array([[3.1, 0.4, 40.0], [-0.2, 2.7, 25.0], [0.0004, 0.0002, 1.0]])
    warp = Warp(h, (320, 240))
    drawing = np.zeros((64, 64, 3) if channels == 3 else (64, 64), np.uint8)
    px, py = 20, 30
    cv2.circle(drawing, (px, py), 2, (255, 255, 255), -1)
    frame = warp(drawing)
    assert frame.shape == (240, 320, 3)
    out = frame[..., 2].astype(np.float64)
    ys, xs = np.nonzero(out > 0)
    cx, cy = (xs * out[ys, xs]).sum() / out[ys, xs].sum(), (ys * out[ys, xs]).sum() / out[ys, xs].sum()
    ex, ey = map_point(h, px, py)
    assert abs(cx - ex) < 0.6 and abs(cy - ey) < 0.6


def test_warp_of_the_box_equals_the_full_warp():
    """Warping only the drawing's bounding box gives the same frame as warping the whole frame."""
    h = np.array([[2.9, 0.3, 50.0], [-0.1, 2.6, 20.0], [0.0003, 0.0001, 1.0]])
    drawing = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    full = cv2.warpPerspective(drawing, h, (320, 240), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    assert np.abs(Warp(h, (320, 240))(drawing).astype(int) - full).max() <= 1


def test_uncalibrated_warp_fills_the_centred_square():
    """Before calibration the drawing covers exactly the projector's centred square, black elsewhere."""
    cal = Calibration.uncalibrated((1280, 720), (320, 240))
    out = Warp(cal.table_area_to_projector(32), (320, 240))(np.full((32, 32), 255, np.uint8))
    cols = np.nonzero(out[120, :, 0] > 127)[0]
    rows = np.nonzero(out[:, 160, 0] > 127)[0]
    assert (cols.min(), cols.max()) == (40, 279) and (rows.min(), rows.max()) == (0, 239)


def test_warp_refuses_a_singular_homography():
    """A degenerate calibration is refused with a message, not projected as garbage."""
    with pytest.raises(ValueError, match="singular"):
        Warp(np.zeros((3, 3)), (64, 64))


def test_crossfade_blends_then_settles():
    """A fade starts from what is on show, moves towards the new image and ends exactly on it."""
    a, b = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8)
    fade = Blend(0.5)
    fade.start(a, now=0.0)
    assert fade.frame(0.0) is a  # the first picture is cut in
    fade.start(b, now=1.0)
    mid = fade.frame(1.25)[0, 0, 0]
    assert mid == pytest.approx(200 * ease(0.5), abs=1)
    assert 0 < mid < 200
    assert fade.frame(1.6) is b and not fade.fading
    assert ease(1 / 15) > 0.15  # the answer is visible one 30 fps frame into a 0.5 s fade


def test_headless_display_shows_frames_and_checks_size():
    """The headless display (SDL dummy driver) accepts frames of its size and refuses others."""
    display = Display("headless", (64, 48))
    try:
        assert display.size == (64, 48)
        display.show(np.zeros((48, 64, 3), np.uint8))
        with pytest.raises(ValueError, match="64x48"):
            display.show(np.zeros((10, 10, 3), np.uint8))
        assert not display.quit_requested()
    finally:
        display.close()


def test_display_refuses_an_unknown_mode():
    """A wrong display mode names the config key."""
    with pytest.raises(ValueError, match="display.mode"):
        Display("projector", (64, 48))
    assert issubclass(DisplayError, OSError)


def test_display_refuses_a_screen_of_another_size(monkeypatch):
    """display.size 1920x1080 on a 1280x720 screen: refused at start naming both sizes and
    what to set (a black screen and a log line per frame were the alternative)."""
    import pygame

    real = pygame.display.set_mode
    monkeypatch.setattr(pygame.display, "set_mode", lambda size, flags=0, display=0: real((1280, 720)))
    with pytest.raises(DisplayError, match=r"display.size is 1920x1080 but display 0 gave 1280x720: "
                                           r"set \[display\] size = \[1280, 720\]"):
        Display("headless", (1920, 1080))
