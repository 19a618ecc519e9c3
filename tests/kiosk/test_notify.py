"""sd_notify: READY once, WATCHDOG rate-limited, silent outside systemd, WATCHDOG_PID honoured."""
from __future__ import annotations

import os
import socket

import pytest

from kiosk.notify import Notifier


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    yield path, sock
    sock.close()


def received(sock) -> list[str]:
    out = []
    sock.settimeout(0.05)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except (TimeoutError, socket.timeout):
        return out


def test_ready_is_sent_once_with_status(notify_socket):
    """READY=1 (with STATUS) reaches the socket once, however often ready() is called."""
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("projecting")
    notifier.ready("again")
    assert received(sock) == ["READY=1\nSTATUS=projecting"]


def test_watchdog_is_rate_limited_to_half_the_interval(notify_socket):
    """Called every 'frame' (10 ms of a driven clock) for 10 s with WatchdogSec=4: a ping per 2 s, not per frame."""
    path, sock = notify_socket
    now = [0.0]
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())},
                        clock=lambda: now[0])
    for _ in range(1000):
        notifier.watchdog()
        now[0] += 0.01
    pings = received(sock)
    assert pings == ["WATCHDOG=1"] * 5 and notifier.pings == 5


def test_silent_without_systemd_and_for_another_pid(notify_socket):
    """No NOTIFY_SOCKET: nothing is sent and nothing fails; a WATCHDOG_PID of another process disables pings."""
    path, sock = notify_socket
    quiet = Notifier({})
    quiet.ready()
    quiet.watchdog()
    assert not quiet.enabled and quiet.watchdog_interval_s is None
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s is None
    other.watchdog()
    assert received(sock) == []


def test_vanished_socket_does_not_raise(tmp_path):
    """systemd gone (socket path missing): send() returns False and the table goes on."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.send("STATUS=x") is False
    notifier.ready()
