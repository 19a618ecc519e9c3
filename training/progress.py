"""What a person watching a training run sees: a live bar per stage on the terminal,
stage headers and a progress line now and then in the log (RUN/train.log as well as the
terminal), and nothing from torchrun ranks other than 0."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOG_FILE = "train.log"


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process: the one that prints."""
    return int(os.environ.get("RANK", "0")) == 0


def stage_bar(total: int, initial: int = 0, unit: str = "step", desc: str | None = None,
              enabled: bool = True):
    """A tqdm bar on stderr, or None when disabled or not rank 0.

    A terminal that reports its size as 0 x 0 (a pty nobody sized: `docker exec -t`,
    editors' shells, `script`) makes tqdm cut the bar to nothing and hide it as below the
    screen, so an unknown size is taken as 100 x 24. Into a file (not a terminal) the bar
    is redrawn every 30 s, not ten times a second. The rate and the time left are the
    session's average (smoothing 0): the GAN's steps differ in cost (lazy R1 every 16th,
    path length every 4th, snapshots), and tqdm's default of the last few steps made the
    time left swing between 4 and 26 minutes."""
    if not enabled or not is_main_process():
        return None
    from tqdm import tqdm
    stream = sys.stderr
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        size = None
    sized = bool(size and size.columns and size.lines)
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=stream, dynamic_ncols=sized,
                mininterval=0.5 if stream.isatty() else 30.0, smoothing=0, **({} if sized else {"ncols": 100, "nrows": 24}))


def around_bar():
    """Log records go above a live bar instead of through it."""
    from tqdm.contrib.logging import logging_redirect_tqdm
    return logging_redirect_tqdm()


@contextlib.contextmanager
def run_log(folder: Path):
    """Copy every INFO record of the process into FOLDER/train.log (appended, so a resumed
    run's log continues the first one's)."""
    if not is_main_process():
        yield None
        return
    from storage import output_folder
    folder = output_folder(folder)
    handler = logging.FileHandler(folder / LOG_FILE, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    if level > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield folder / LOG_FILE
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def note_in_run_log(folder: Path, text: str, name: str = "training") -> None:
    """One INFO line into FOLDER/train.log only (the terminal has it already): what was said
    after the run's log closed, such as the command that resumes it."""
    folder = Path(folder)
    if not is_main_process() or not folder.is_dir():
        return
    handler = logging.FileHandler(folder / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    try:
        handler.emit(logging.LogRecord(name, logging.INFO, __file__, 0, "%s", (text,), None))
    finally:
        handler.close()


def stage_header(number: int, count: int, name: str, detail: str = "") -> None:
    log.info("== stage %d/%d: %s%s ==", number, count, name, f" ({detail})" if detail else "")


class ProgressLines:
    """A progress line in the log at most every `seconds` (and whenever forced), so a log
    file shows how a run went without a line a step."""

    def __init__(self, logger: logging.Logger, seconds: float = 60.0):
        self.logger, self.seconds, self.last = logger, seconds, time.monotonic()

    def __call__(self, text: str, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.seconds:
            self.last = time.monotonic()
            if is_main_process():
                self.logger.info("%s", text)
