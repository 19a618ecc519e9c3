"""Ctrl-C and SIGTERM during a training run: finish the step, save the state, stop.

A signal in the middle of an optimiser step would leave a state that cannot be resumed
exactly, so the handler only raises a flag the loop reads between steps; the loop then
writes its checkpoint as at a snapshot and returns. A second Ctrl-C stops at once.
"""
from __future__ import annotations

import signal
import threading


class StopRequest:
    """Context manager: `.signal` is the name of the signal received (None until then)."""

    def __init__(self):
        self.signal: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a command stopped by this signal (130, 143)."""
        return 128 + int(getattr(signal, self.signal)) if self.signal else 0
