"""A simulated table controller: the firmware's side of docs/serial-protocol.md on a pty.

It plays the microcontroller for the tests and the demo: `TableSimulator.path` is a
symlink to the slave side of a pseudo-terminal, as udev's /dev/newsnow-table would
be, and `TableController` opens it with pyserial like the real device. Faults can be
injected: `unplug()` / `replug()` (the pty disappears and a new one appears behind the
same link), `drop_replies(n)`, `corrupt_replies(n)`, `reboot()` (state lost, BOOT
event), and `press_button()` sends the operator button event.
"""
from __future__ import annotations

import logging
import os
import select
import tempfile
import threading
import time
import tty
from pathlib import Path

from kiosk.controller import PROTOCOL_VERSION, crc8, frame, unframe

log = logging.getLogger(__name__)

DEVICE_NAME = "newsnow-table-sim"


class TableSimulator:
    """The microcontroller in the table, on a pty. Use as a context manager."""

    def __init__(self, path: str | os.PathLike | None = None, temperature_c: float = 38.5):
        if path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="newsnow-serial-")
            path = Path(self._tmpdir.name) / "table"
        else:
            self._tmpdir = None
        self.path = str(path)
        # Device state, as the firmware would keep it.
        self.led = 0
        self.projector = False
        self.temperature_c = temperature_c
        self.received: list[str] = []  # command bodies, in order (for tests)
        self._last_seq: str | None = None
        self._last_reply: bytes = b""
        self._drop = 0
        self._corrupt = 0
        self._split = 0
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> "TableSimulator":
        self._plug()
        self._thread = threading.Thread(target=self._serve, name="table-simulator", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread:
            self._thread.join(2.0)
        self._unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._tmpdir:
            self._tmpdir.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- fault injection and events

    def unplug(self) -> None:
        """The USB cable is pulled: the device node and its link disappear."""
        with self._lock:
            self._unplug()
        os.write(self._wake_w, b"x")

    def replug(self) -> None:
        """The cable is back: a new device node behind the same link; the board rebooted."""
        with self._lock:
            self._reset_state()
            self._plug()
        os.write(self._wake_w, b"x")

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def drop_replies(self, n: int) -> None:
        """The next n replies are lost on the wire."""
        self._drop += n

    def split_replies(self, n: int) -> None:
        """The next n replies arrive in two pieces 80 ms apart (a slow USB-serial bridge)."""
        self._split += n

    def corrupt_replies(self, n: int) -> None:
        """The next n replies arrive with a wrong checksum."""
        self._corrupt += n

    def heal(self) -> None:
        """Stop dropping and damaging replies."""
        self._drop = self._corrupt = self._split = 0

    def reboot(self) -> None:
        """The board resets (brown-out, watchdog): state lost, `! BOOT` sent."""
        with self._lock:
            self._reset_state()
        self.send_event("BOOT", DEVICE_NAME, str(PROTOCOL_VERSION))

    def press_button(self, name: str = "NEW_SHEET") -> None:
        self.send_event("BUTTON", name)

    def send_event(self, *words: str) -> None:
        self._write(frame(" ".join(["!", *words])))

    # -- the firmware

    def reply_to(self, body: str) -> str:
        """The reply body for one command body (no framing): the firmware's logic."""
        words = body.split()
        if len(words) < 2 or not words[0].isdigit() or not 1 <= int(words[0]) <= 255:
            return "0 ERR SYNTAX"
        seq, verb, args = words[0], words[1], words[2:]
        if verb == "HELLO":
            return f"{seq} OK {DEVICE_NAME} {PROTOCOL_VERSION}"
        if verb == "PING":
            return f"{seq} OK"
        if verb == "LED" and len(args) == 1 and args[0].isdigit() and 0 <= int(args[0]) <= 255:
            self.led = int(args[0])
            return f"{seq} OK {self.led}"
        if verb == "LED?":
            return f"{seq} OK {self.led}"
        if verb == "PROJ" and args in (["ON"], ["OFF"]):
            self.projector = args[0] == "ON"
            return f"{seq} OK {args[0]}"
        if verb == "PROJ?":
            return f"{seq} OK {'ON' if self.projector else 'OFF'}"
        if verb == "TEMP?":
            return f"{seq} OK {self.temperature_c:.1f}"
        if verb in ("LED", "PROJ"):
            return f"{seq} ERR ARG {verb} {' '.join(args)}"
        return f"{seq} ERR VERB {verb}"

    def _handle(self, line: bytes) -> None:
        body = unframe(line)
        if body is None:
            self._write(frame("0 ERR CRC"))
            return
        seq = body.split(" ", 1)[0]
        with self._lock:
            self.received.append(body)
            if seq == self._last_seq:  # a retry: answer again, do not act twice
                reply = self._last_reply
            else:
                reply = frame(self.reply_to(body))
                self._last_seq, self._last_reply = seq, reply
        if self._drop:
            self._drop -= 1
            return
        if self._corrupt:
            self._corrupt -= 1
            reply = reply[:-3] + b"%02X\n" % (crc8(reply[:-4]) ^ 0x55)
        if self._split:
            self._split -= 1
            self._write(reply[:4])
            time.sleep(0.08)
            reply = reply[4:]
        self._write(reply)

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            master = self._master
            fds = [self._wake_r] + ([master] if master is not None else [])
            try:
                readable, _, _ = select.select(fds, [], [], 0.5)
            except (OSError, ValueError):
                continue  # the pty was closed by unplug() under select
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
                buffer = b""
                continue
            if master is None or master not in readable:
                continue
            try:
                chunk = os.read(master, 256)
            except OSError:
                continue  # unplugged while reading
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._handle(line)
            buffer = buffer[-200:]  # a line without newline never grows without bound

    def _write(self, data: bytes) -> None:
        master = self._master
        if master is None:
            return
        try:
            os.write(master, data)
        except OSError:
            pass

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        link = Path(self.path)
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(slave))

    def _unplug(self) -> None:
        Path(self.path).unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def _reset_state(self) -> None:
        self.led = 0
        self.projector = False
        self._last_seq = None
