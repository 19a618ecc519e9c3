"""The projector output: a pygame window, fullscreen on a chosen display, or headless.

Headless uses SDL's dummy video driver, so the demo, the tests and CI run the very same
display path (surface conversion, blit, flip) with no screen attached.
"""
from __future__ import annotations

import os

import numpy as np

MODES = ("windowed", "fullscreen", "headless")


class DisplayError(OSError):
    """The projector display could not be opened (no such display, no video driver)."""


# SDL's drivers that draw into memory: with no display server SDL falls back to them, and a
# table would run at full speed with nothing on any screen.
NO_SCREEN_DRIVERS = ("offscreen", "dummy")


def no_screen_problem(mode: str, driver: str) -> str | None:
    """Why a windowed or fullscreen display on SDL's `driver` would reach no screen (None: it
    would). `Display` refuses on it and `newsnow doctor` fails on it, so the two agree."""
    if mode == "headless" or driver.lower() not in NO_SCREEN_DRIVERS:
        return None
    return (f"display.mode = {mode!r} but there is no display server: SDL fell back to its {driver!r} driver, "
            f"so nothing would reach the projector (DISPLAY={os.environ.get('DISPLAY', '')!r}, "
            f"WAYLAND_DISPLAY={os.environ.get('WAYLAND_DISPLAY', '')!r}, "
            f"SDL_VIDEODRIVER={os.environ.get('SDL_VIDEODRIVER', '')!r})")


NO_SCREEN_FIX = ("run the table inside the kiosk session (`systemctl status newsnow-kiosk`) or from a desktop "
                 "terminal on the projector's machine; set display.mode = \"headless\" to run it without a projector")


class Display:
    """One pygame surface the size of the projector frame.

    `show(rgb)` blits an H x W x 3 uint8 frame and flips; `quit_requested()` is true after
    the window was closed or Escape pressed (never on a headless or kiosk display).
    """

    def __init__(self, mode: str = "windowed", size: tuple[int, int] = (1280, 720), index: int = 0,
                 caption: str = "New Snow"):
        if mode not in MODES:
            raise ValueError(f"display.mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if mode == "headless":
            # Must be set before pygame initialises its video subsystem.
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pygame = pygame
        self.mode = mode
        pygame.display.init()
        problem = no_screen_problem(mode, pygame.display.get_driver())
        if problem:  # a table that runs with nothing on screen looks healthy to every check but the eye
            pygame.display.quit()
            raise DisplayError(f"{problem}: {NO_SCREEN_FIX}")
        displays = pygame.display.get_num_displays()
        if mode != "headless" and index >= displays:
            pygame.display.quit()
            raise DisplayError(
                f"display.index: {index} but only {displays} display(s) found; "
                "choose the projector's index (0 is the first)"
            )
        flags = pygame.FULLSCREEN | pygame.NOFRAME if mode == "fullscreen" else 0
        try:
            self._screen = pygame.display.set_mode(size, flags, display=index if mode != "headless" else 0)
        except pygame.error as exc:
            pygame.display.quit()
            raise DisplayError(f"display: cannot open {mode} {size[0]}x{size[1]} on display {index}: {exc}") from exc
        got = tuple(self._screen.get_size())
        if got != tuple(size):
            # A projector frame of another size would never be shown (the warp makes
            # display.size frames): refuse before the table starts, saying what to set.
            pygame.display.quit()
            raise DisplayError(f"display.size is {size[0]}x{size[1]} but display {index} gave {got[0]}x{got[1]}: "
                               f"set [display] size = [{got[0]}, {got[1]}] (the projector's mode) and "
                               f"calibrate the projector at that size")
        pygame.display.set_caption(caption)
        if mode == "fullscreen":
            pygame.mouse.set_visible(False)  # visitors never see a cursor on the sheet
        self.size = got
        self._quit = False

    def show(self, rgb: np.ndarray) -> None:
        """Blit one projector frame (H x W x 3 uint8, the display's size) and flip."""
        pygame = self._pygame
        if rgb.shape[:2] != (self.size[1], self.size[0]):
            raise ValueError(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, display is {self.size[0]}x{self.size[1]}")
        # frombuffer wraps the array's memory without a copy; the blit copies it once.
        surface = pygame.image.frombuffer(np.ascontiguousarray(rgb).data, self.size, "RGB")
        self._screen.blit(surface, (0, 0))
        pygame.display.flip()
        self._pump()

    def _pump(self) -> None:
        for event in self._pygame.event.get():
            if event.type == self._pygame.QUIT:
                self._quit = True
            elif event.type == self._pygame.KEYDOWN and event.key == self._pygame.K_ESCAPE and self.mode == "windowed":
                self._quit = True

    def quit_requested(self) -> bool:
        return self._quit

    def close(self) -> None:
        self._pygame.display.quit()
