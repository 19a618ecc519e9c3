"""The manual projector step, driven by synthetic pygame events under the SDL dummy
driver: mouse drags and keyboard steps move the handles, Enter saves, Esc cancels, and
the handles give projector -> table."""
import numpy as np
import pygame
import pytest

from calibration import CalibrationError, apply_homography
from calibration.projector import COARSE_PX, FINE_PX, STEP_PX, Alignment, run
from calibration.sheet import SheetLayout

MODE = (800, 600)


@pytest.fixture()
def screen():
    pygame.display.init()
    pygame.font.init()
    surface = pygame.display.set_mode(MODE)
    pygame.event.clear()
    yield surface
    pygame.display.quit()


def key(k, mod=0):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=k, mod=mod))


def drag(start, end):
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=tuple(int(v) for v in start), button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, pos=tuple(int(v) for v in end), rel=(0, 0), buttons=(1, 0, 0)))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=tuple(int(v) for v in end), button=1))


def true_table_to_projector():
    """A projector seeing the A4 sheet tilted and in perspective."""
    sheet = np.float32([[0, 0], [210, 0], [210, 297], [0, 297]])
    seen = np.float32([[212, 38], [590, 61], [611, 570], [188, 548]])
    import cv2

    return cv2.getPerspectiveTransform(sheet, seen).astype(np.float64)


def lay_handles_on_marks(alignment, targets):
    """What an operator does: drag each cross onto its mark to the nearest pixel, then
    nudge it with the fine step (Ctrl + arrows) and go on with Tab."""
    for i, target in enumerate(targets):
        handle = alignment.handles[i].copy()
        drag(handle, np.round(target))
        # the grab keeps the click's offset from the cross: the operator sees what is left
        rest = target - (np.round(target) + handle - np.trunc(handle))
        for axis, (minus, plus) in enumerate(((pygame.K_LEFT, pygame.K_RIGHT), (pygame.K_UP, pygame.K_DOWN))):
            steps = int(round(rest[axis] / FINE_PX))
            for _ in range(abs(steps)):
                key(plus if steps > 0 else minus, pygame.KMOD_LCTRL)
        key(pygame.K_TAB)


@pytest.mark.parametrize("count", [4, 8])
def test_handles_laid_on_the_marks_give_projector_to_table(screen, count):
    """After mouse drags, fine key steps and Enter, the fitted projector -> table puts
    every projector pixel of the sheet within 0.2 mm of the truth (4 marks: exact fit,
    8 marks: least squares)."""
    marks = SheetLayout.for_sheet((210.0, 297.0)).alignment_marks_mm(count)
    to_projector = true_table_to_projector()
    alignment = Alignment(marks, MODE)
    lay_handles_on_marks(alignment, apply_homography(to_projector, marks))
    key(pygame.K_RETURN)
    assert run(alignment, screen, timeout_s=10) is True
    h, residuals = alignment.projector_to_table()
    grid = np.stack(np.meshgrid(np.linspace(0, 210, 8), np.linspace(0, 297, 8)), -1).reshape(-1, 2)
    err = np.linalg.norm(apply_homography(h, apply_homography(to_projector, grid)) - grid, axis=1)
    assert err.max() < 0.2
    assert residuals["projector_points"] == count and residuals["projector_rms_mm"] < 0.2


def test_keyboard_steps_tab_and_escape(screen):
    """Arrows move the selected handle by 1 px, Shift by the coarse step, Ctrl and Alt
    by the fine step; Tab and Shift+Tab change the selection; Esc cancels the run."""
    marks = SheetLayout.for_sheet((210.0, 297.0)).alignment_marks_mm(4)
    alignment = Alignment(marks, MODE)
    start = alignment.handles.copy()
    key(pygame.K_RIGHT)
    key(pygame.K_DOWN, pygame.KMOD_LSHIFT)
    key(pygame.K_TAB)
    key(pygame.K_LEFT, pygame.KMOD_LALT)
    key(pygame.K_UP, pygame.KMOD_RCTRL)
    key(pygame.K_TAB, pygame.KMOD_LSHIFT)
    key(pygame.K_TAB, pygame.KMOD_LSHIFT)
    key(pygame.K_ESCAPE)
    assert run(alignment, screen, timeout_s=10) is False
    np.testing.assert_allclose(alignment.handles[0] - start[0], [STEP_PX, COARSE_PX])
    np.testing.assert_allclose(alignment.handles[1] - start[1], [-FINE_PX, -FINE_PX])
    np.testing.assert_allclose(alignment.handles[2:], start[2:])
    assert alignment.selected == 3  # 0 -> 1 -> 0 -> 3


def test_a_click_away_from_every_handle_moves_nothing(screen):
    """Dragging from empty space does not move a handle; dragging near one (within the
    grab radius) moves it by the drag, keeping the grab offset."""
    alignment = Alignment(SheetLayout.for_sheet((210.0, 297.0)).alignment_marks_mm(4), MODE)
    start = alignment.handles.copy()
    drag(start.mean(axis=0), (10, 10))
    near = start[2] + np.array([5.0, -3.0])
    drag(near, near + np.array([20.0, 7.0]))
    key(pygame.K_RETURN)
    run(alignment, screen, timeout_s=10)
    np.testing.assert_allclose(alignment.handles[[0, 1, 3]], start[[0, 1, 3]])
    np.testing.assert_allclose(alignment.handles[2], start[2] + np.round(near) - near + np.array([20.0, 7.0]), atol=1.0)
    assert alignment.selected == 2


def test_swapped_handles_are_refused(screen):
    """Crosses 1 and 2 swapped make a folded quadrilateral: refused, naming the fix."""
    marks = SheetLayout.for_sheet((210.0, 297.0)).alignment_marks_mm(4)
    targets = apply_homography(true_table_to_projector(), marks)
    alignment = Alignment(marks, MODE, initial_px=targets[[1, 0, 2, 3]])
    with pytest.raises(CalibrationError, match="crossed or swapped"):
        alignment.projector_to_table()


def test_window_close_cancels(screen):
    """Closing the window is the same as Esc: nothing is saved."""
    alignment = Alignment(SheetLayout.for_sheet((210.0, 297.0)).alignment_marks_mm(4), MODE)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert run(alignment, screen, timeout_s=10) is False
