"""Structured logs: key=value lines, and handlers that survive a full disk (ENOSPC) by dropping lines."""
from __future__ import annotations

import io
import json
import logging

import pytest

from kiosk.log import JsonFormatter, KeyValueFormatter, SafeFileHandler, SafeStreamHandler, setup_logging


def logger_with(handler) -> logging.Logger:
    log = logging.getLogger(f"test.kiosk_log.{id(handler)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_full_disk_drops_lines_and_reports_them_when_space_returns(tmp_path, capsys):
    """Writing to /dev/full (every write ENOSPC) never raises nor prints tracebacks; lines are counted as dropped,
    and once the file is writable again the first line says how many were lost."""
    handler = SafeFileHandler("/dev/full", max_bytes=0)
    handler.setFormatter(KeyValueFormatter())
    log = logger_with(handler)
    for i in range(20):
        log.warning("event=camera_fault n=%d", i)
    assert handler.dropped == 20
    assert capsys.readouterr().err == ""  # logging's default would print 20 tracebacks here
    handler.baseFilename = str(tmp_path / "newsnow.log")  # the disk has room again
    log.warning("event=camera_back")
    lines = (tmp_path / "newsnow.log").read_text().splitlines()
    assert lines == ["level=warning logger=%s event=log_lines_dropped count=20" % log.name,
                     "level=warning logger=%s event=camera_back" % log.name]


def test_stream_that_raises_enospc_is_survived():
    """A stderr whose write raises OSError(ENOSPC) (journal pipe full / disk full) drops, counts, goes on."""
    class FullStream(io.StringIO):
        def write(self, s):
            raise OSError(28, "No space left on device")

    handler = SafeStreamHandler(FullStream())
    log = logger_with(handler)
    for _ in range(3):
        log.error("event=inference_fault")
    assert handler.dropped == 3


def test_rotation_failure_keeps_the_current_file(tmp_path, monkeypatch):
    """When rotating the log file fails (disk full), the handler keeps writing instead of raising."""
    path = tmp_path / "newsnow.log"
    handler = SafeFileHandler(str(path), max_bytes=60, backups=2)
    handler.setFormatter(KeyValueFormatter())
    log = logger_with(handler)
    monkeypatch.setattr("os.rename", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    for i in range(5):
        log.warning("event=line n=%d", i)
    handler.close()
    assert "event=line n=4" in path.read_text()


def test_formats_are_structured():
    """key=value lines pass `event=` messages through and quote free text; JSON lines parse."""
    record = logging.LogRecord("kiosk.kiosk", logging.INFO, __file__, 1, "event=opening next=%s", ("17:00",), None)
    assert KeyValueFormatter().format(record) == "level=info logger=kiosk.kiosk event=opening next=17:00"
    free = logging.LogRecord("x", logging.WARNING, __file__, 1, 'free "text"', (), None)
    assert KeyValueFormatter().format(free) == 'level=warning logger=x msg="free \\"text\\""'
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "event=opening next=17:00" and entry["level"] == "info"


def test_setup_logging_installs_the_safe_handlers(tmp_path):
    """setup_logging routes the root logger to a safe stderr handler (and a safe file) and refuses a bad format."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        handlers = setup_logging(fmt="kv", file=str(tmp_path / "t.log"), stream=stream)
        logging.getLogger("installation.test").info("event=hello")
        assert [type(h) for h in handlers] == [SafeStreamHandler, SafeFileHandler]
        assert "event=hello" in stream.getvalue() and "event=hello" in (tmp_path / "t.log").read_text()
        with pytest.raises(ValueError, match="'xml'"):
            setup_logging(fmt="xml")
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
            h.close()
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)


def test_a_log_file_in_a_new_folder_is_made_and_an_unwritable_one_refused(tmp_path):
    """NEWSNOW_LOG_FILE in a folder that does not exist yet: the folder is made and lines arrive; a path
    that cannot be written is refused at start with the variable's name, not silently empty."""
    import pytest

    from kiosk.log import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        target = tmp_path / "new" / "folder" / "table.log"
        setup_logging(file=str(target))
        logging.getLogger("test.logfile").warning("event=hello")
        for handler in root.handlers:
            handler.flush()
        assert "event=hello" in target.read_text()
        blocked = tmp_path / "file-not-folder"
        blocked.write_text("x")
        with pytest.raises(OSError, match="NEWSNOW_LOG_FILE=.*cannot write the log file there"):
            setup_logging(file=str(blocked / "table.log"))
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
