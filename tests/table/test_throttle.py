"""Fault warnings come as one line per burst and interval, with the count held back."""
import logging

from table.throttle import ThrottledLog


def test_a_burst_of_2000_faults_gives_a_few_lines_with_their_count(caplog):
    clock = [0.0]
    log = ThrottledLog(logging.getLogger("test.throttle"), interval_s=10.0, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for _ in range(2000):
            log.warning("camera_fault", "error=%r", "read failed")
            clock[0] += 0.01  # 2000 events in 20 s
        log.warning("display_fault", "error=%r", "other")  # another event is not held back by the first
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "event=camera_fault error='read failed'"
    assert len(lines) == 3 and lines[-1].startswith("event=display_fault")  # 2 lines for 20 s of one fault
    assert lines[1].endswith("repeated=999 in_s=10") or lines[1].endswith("repeated=1000 in_s=10")
