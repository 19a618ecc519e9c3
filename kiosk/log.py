"""Structured logs for the kiosk: one `key=value` (or JSON) line per event, to stderr
(which systemd sends to the journal) and optionally to a rotating file.

Two promises: nothing is logged per frame (the loop logs state changes and faults,
the health endpoint carries the figures), and a full disk never stops the table:
the handlers here drop lines they cannot write, count them, and say how many were
lost once writing works again.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path

_PLAIN_KEYS = ("event=",)


class KeyValueFormatter(logging.Formatter):
    """`level=info logger=kiosk.controller event=serial_connected port=/dev/...`.

    Messages already written as `event=... key=value` pass through; other messages
    are quoted into `msg="..."`. No timestamp by default: the journal adds its own.
    """

    def __init__(self, timestamps: bool = False):
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not message.startswith(_PLAIN_KEYS):
            message = "msg=" + json.dumps(message)
        head = f"level={record.levelname.lower()} logger={record.name} "
        if self.timestamps:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            head = f"ts={stamp}.{int(record.msecs):03d} " + head
        line = head + message
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                 "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _DropWhenFull:
    """handleError that drops the line (ENOSPC, EIO, a closed journal) instead of
    printing a traceback per record; the next line that gets through says how many
    were lost."""

    dropped = 0
    _reported = 0

    def handleError(self, record):  # noqa: N802 (logging's naming)
        self.dropped += 1
        stream = getattr(self, "stream", None)
        if isinstance(self, logging.FileHandler) and stream is not None:
            # Reopen on the next record: a stream whose buffer failed to flush keeps failing.
            try:
                stream.close()
            except OSError:
                pass
            self.stream = None

    def emit(self, record):
        lost = self.dropped - self._reported
        if lost:
            before = self.dropped
            super().emit(logging.LogRecord(record.name, logging.WARNING, __file__, 0,
                                           "event=log_lines_dropped count=%d", (lost,), None))
            if self.dropped > before:  # the note was lost too: say it next time
                self.dropped = before
            else:
                self._reported = before
        super().emit(record)


class SafeStreamHandler(_DropWhenFull, logging.StreamHandler):
    pass


class SafeFileHandler(_DropWhenFull, logging.handlers.RotatingFileHandler):
    """A size-rotated log file that survives a full disk."""

    def __init__(self, filename, max_bytes: int = 5_000_000, backups: int = 3):
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)

    def shouldRollover(self, record):  # noqa: N802
        try:
            return super().shouldRollover(record)
        except OSError:
            return False

    def doRollover(self):  # noqa: N802
        try:
            super().doRollover()
        except OSError:
            self.dropped += 1  # could not rotate (disk full): keep writing the current file


def _log_file(file: str) -> str:
    """The log file's folder made if missing, and the file opened once: a path the table cannot
    write is refused at start, not silently left empty."""
    path = Path(file).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"NEWSNOW_LOG_FILE={file}: cannot write the log file there ({exc.strerror}); "
                                 f"create the folder for the newsnow user, or unset it (the journal has every line)") from None
    return str(path)


def setup_logging(level: int = logging.INFO, fmt: str = "kv", file: str | None = None,
                  stream=None) -> list[logging.Handler]:
    """Routes the root logger to stderr (and `file`) with the kiosk's handlers."""
    if fmt not in ("kv", "json"):
        raise ValueError(f"logging format {fmt!r}: expected 'kv' or 'json'")
    formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    handlers: list[logging.Handler] = [SafeStreamHandler(stream or sys.stderr)]
    if file:
        handlers.append(SafeFileHandler(_log_file(file)))
        handlers[-1].setFormatter(KeyValueFormatter(timestamps=True) if fmt == "kv" else formatter)
    handlers[0].setFormatter(formatter)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    return handlers
