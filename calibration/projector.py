"""Projector -> table by hand: the operator lays projected crosses on the printed marks.

The IR camera cannot see the projector, so the projector is tied to the table through
the sheet: the marks' table mm are known (calibration.sheet), the operator moves one
handle onto each mark, and cv2.findHomography gives projector px -> table mm (exact for
4 marks, least squares with LM refinement for 8).

`Alignment` holds the handles and takes pygame events one at a time, so tests drive it
with synthetic events under the SDL dummy driver; `run` is the window's loop.
"""
from __future__ import annotations

import os
import time

import cv2
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402 - after the banner is switched off

from calibration.geometry import CalibrationError, apply_homography

STEP_PX = 1.0  # arrow key
COARSE_PX = 10.0  # Shift + arrow
FINE_PX = 0.25  # Ctrl or Alt + arrow (the crosses are drawn anti-aliased, so it shows)
GRAB_RADIUS_PX = 40.0  # a click this close to a handle picks it up

ARROWS = {pygame.K_LEFT: (-1, 0), pygame.K_RIGHT: (1, 0), pygame.K_UP: (0, -1), pygame.K_DOWN: (0, 1)}


class Alignment:
    """Handles in projector px, one per mark in table mm; `done` is None, "save" or "cancel"."""

    def __init__(self, marks_mm, projector_mode, initial_px=None):
        self.marks_mm = np.asarray(marks_mm, dtype=np.float64).reshape(-1, 2)
        if len(self.marks_mm) < 4:
            raise CalibrationError(f"projector alignment needs at least 4 marks, got {len(self.marks_mm)}")
        self.mode = (int(projector_mode[0]), int(projector_mode[1]))
        if initial_px is None:
            initial_px = self.fit_marks_in_frame()
        self.handles = np.array(initial_px, dtype=np.float64).reshape(-1, 2)
        if self.handles.shape != self.marks_mm.shape:
            raise CalibrationError(f"projector alignment: {len(self.handles)} handles for {len(self.marks_mm)} marks")
        self.selected = 0
        self.dragging = False
        self._grab_offset = np.zeros(2)
        self.done: str | None = None

    def fit_marks_in_frame(self, fill: float = 0.8) -> np.ndarray:
        """Start positions: the marks' layout scaled into the middle of the frame."""
        lo, hi = self.marks_mm.min(axis=0), self.marks_mm.max(axis=0)
        span = np.maximum(hi - lo, 1e-6)
        scale = fill * min(self.mode[0] / span[0], self.mode[1] / span[1])
        centre = np.array(self.mode) / 2.0 - 0.5
        return (self.marks_mm - (lo + hi) / 2.0) * scale + centre

    # -- events ----------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.done = "cancel"
        elif event.type == pygame.KEYDOWN:
            self._key(event)
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            pos = np.array(event.pos, dtype=np.float64)
            dist = np.linalg.norm(self.handles - pos, axis=1)
            nearest = int(np.argmin(dist))
            if dist[nearest] <= GRAB_RADIUS_PX:
                self.selected = nearest
                self.dragging = True
                self._grab_offset = self.handles[nearest] - pos
        elif event.type == pygame.MOUSEMOTION and self.dragging:
            self.handles[self.selected] = np.array(event.pos, dtype=np.float64) + self._grab_offset
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            self.dragging = False

    def _key(self, event) -> None:
        mod = getattr(event, "mod", 0)
        if event.key == pygame.K_TAB:
            step = -1 if mod & pygame.KMOD_SHIFT else 1
            self.selected = (self.selected + step) % len(self.handles)
        elif event.key in ARROWS:
            if mod & (pygame.KMOD_CTRL | pygame.KMOD_ALT):
                size = FINE_PX
            elif mod & pygame.KMOD_SHIFT:
                size = COARSE_PX
            else:
                size = STEP_PX
            self.handles[self.selected] += np.array(ARROWS[event.key]) * size
        elif event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self.done = "save"
        elif event.key == pygame.K_ESCAPE:
            self.done = "cancel"

    # -- the fit ---------------------------------------------------------------------

    def projector_to_table(self) -> tuple[np.ndarray, dict]:
        """(3x3 projector px -> table mm, residuals); raises CalibrationError when the
        handles do not make a usable homography (e.g. two handles swapped)."""
        h, _ = cv2.findHomography(self.handles, self.marks_mm, 0)
        if h is None or not np.all(np.isfinite(h)):
            raise CalibrationError("projector alignment: the handles give no homography: are three of them on a line?")
        # A projective map keeps a quadrilateral convex unless its horizon cuts through it:
        # crossed or swapped handles show as the horizon passing between the handles (or
        # through the projector frame). A mirror is fine (rear projection mirrors).
        w, hgt = self.mode
        frame = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, hgt - 0.5], [-0.5, hgt - 0.5]])
        third = np.hstack([np.vstack([self.handles, frame]), np.ones((len(self.handles) + 4, 1))]) @ h[2]
        if not (np.all(third > 0) or np.all(third < 0)):
            raise CalibrationError("projector alignment: the handles are crossed or swapped: "
                                   "put cross 1 on mark 1, cross 2 on mark 2, and so on")
        err = np.linalg.norm(apply_homography(h, self.handles) - self.marks_mm, axis=1)
        residuals = {
            "projector_points": int(len(self.handles)),
            "projector_rms_mm": round(float(np.sqrt(np.mean(err**2))), 4),
            "projector_max_mm": round(float(err.max()), 4),
        }
        return h / h[2, 2], residuals

    # -- drawing ---------------------------------------------------------------------

    def draw(self, surface: pygame.Surface, font: pygame.font.Font | None = None, outline_mm=None) -> None:
        """Black frame, the crosses (the selected one yellow) and, when the handles
        give a homography, `outline_mm` (polylines in table mm) through it."""
        surface.fill((0, 0, 0))
        if outline_mm is not None:
            try:
                to_projector = np.linalg.inv(cv2.findHomography(self.handles, self.marks_mm, 0)[0])
                for line in outline_mm:
                    pts = apply_homography(to_projector, line)
                    if np.all(np.isfinite(pts)):
                        pygame.draw.aalines(surface, (90, 90, 255), True, [tuple(p) for p in pts])
            except (TypeError, np.linalg.LinAlgError, cv2.error):
                pass  # no fit while handles sit on a line: the crosses alone still show
        for i, (x, y) in enumerate(self.handles):
            colour = (255, 230, 0) if i == self.selected else (255, 255, 255)
            arm = 60 if i == self.selected else 40
            pygame.draw.aaline(surface, colour, (x - arm, y), (x + arm, y))
            pygame.draw.aaline(surface, colour, (x, y - arm), (x, y + arm))
            pygame.draw.circle(surface, colour, (round(x), round(y)), 12, 1)
            if font is not None:
                surface.blit(font.render(str(i + 1), True, colour), (x + 14, y + 14))
        if font is not None:
            # in the middle of the frame, inside the sheet, where no mark lies
            sx, sy = self.handles[self.selected]
            lines = ["Put each cross on the printed mark with the same number.",
                     f"Drag it, or Tab to pick and arrows to move (Shift x{COARSE_PX:g}, Ctrl/Alt x{FINE_PX:g}).",
                     "Enter saves, Esc cancels.",
                     f"cross {self.selected + 1}: {sx:.2f}, {sy:.2f}"]
            y = surface.get_height() // 2 - len(lines) * font.get_linesize() // 2
            for text in lines:
                label = font.render(text, True, (200, 200, 200))
                surface.blit(label, ((surface.get_width() - label.get_width()) // 2, y))
                y += font.get_linesize()


def open_screen(display: int = 0, window=None) -> pygame.Surface:
    """Full screen on display `display` in its current mode, or a window of `window` (w, h)."""
    pygame.display.init()
    pygame.font.init()
    pygame.display.set_caption("New Snow: projector calibration")
    try:
        if window:
            return pygame.display.set_mode(tuple(window), 0, display=display)
        return pygame.display.set_mode((0, 0), pygame.FULLSCREEN, display=display)
    except pygame.error as exc:
        raise CalibrationError(f"display {display}: cannot open it ({exc}): check --display") from None


def run(alignment: Alignment, screen: pygame.Surface, outline_mm=None, fps: float = 30.0,
        timeout_s: float | None = None) -> bool:
    """Show the handles and follow the events until Enter (True) or Esc (False)."""
    font = pygame.font.Font(None, 26) if pygame.font.get_init() else None
    pygame.key.set_repeat(300, 30)  # hold an arrow to keep moving
    clock = pygame.time.Clock()
    start = time.monotonic()
    while alignment.done is None:
        for event in pygame.event.get():
            alignment.handle_event(event)
        alignment.draw(screen, font, outline_mm)
        pygame.display.flip()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            alignment.done = "cancel"
        clock.tick(fps)
    return alignment.done == "save"
