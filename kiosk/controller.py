"""The table controller: a microcontroller on USB serial that drives the IR LEDs,
switches the projector, reports its temperature and the operator's button.

The wire protocol is in docs/serial-protocol.md (written so the firmware can be
built from it): ASCII lines `<body>*<CRC-8 hex>`, commands `<seq> <VERB> [args]`,
replies `<seq> OK [values]` / `<seq> ERR <code> [text]`, events `! <NAME> [args]`.

`TableController` keeps the link alive by itself: a reader thread opens the port,
reopens it with exponential back-off when the USB device disappears and returns,
and a keeper thread re-applies the wanted LED level and projector power after each
(re)connection or device reboot and polls the temperature. Callers never wait
longer than `retries * reply_timeout_s` for a command, and the display loop never
calls it at all.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import serial

from config.kiosk import SerialConfig
from table.throttle import ThrottledLog

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_LINE = 80  # bytes, including the checksum and newline


class ControllerError(OSError):
    """The table controller did not do what was asked (no device, timeout, ERR reply)."""


# ---------------------------------------------------------------- framing


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial value 0, no reflection (CRC-8/SMBUS; "123456789" -> 0xF4)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def frame(body: str) -> bytes:
    """'12 LED 200' -> b'12 LED 200*5B\\n'."""
    raw = body.encode("ascii")
    return raw + b"*%02X\n" % crc8(raw)


def unframe(line: bytes) -> str | None:
    """The body of a received line, or None when the checksum or the framing is wrong."""
    line = line.strip(b"\r\n")
    body, star, check = line.rpartition(b"*")
    if not star or len(check) != 2:
        return None
    try:
        if int(check, 16) != crc8(body):
            return None
        return body.decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Event:
    """An unsolicited message from the device, e.g. Event('BUTTON', ('NEW_SHEET',))."""

    name: str
    args: tuple[str, ...] = ()


# ---------------------------------------------------------------- controller


@dataclass
class _Pending:
    seq: int
    done: threading.Event = field(default_factory=threading.Event)
    reply: list[str] | None = None


class TableController:
    """Talks to the table's microcontroller; survives unplugging and device resets."""

    def __init__(
        self,
        config: SerialConfig,
        on_event: Callable[[Event], None] | None = None,
        open_port: Callable[[str, int], serial.SerialBase] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not config.port:
            raise ValueError("serial.port: no serial device configured for the table controller")
        self.config = config
        self.on_event = on_event or (lambda event: None)
        self._open_port = open_port or _open_serial
        self._clock = clock
        self._log = ThrottledLog(log)  # a chattering device must not flood the journal; counts are in status()
        self._port: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._command_lock = threading.Lock()  # one command in flight: simple firmware
        self._pending: _Pending | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._resync = threading.Event()
        self._threads: list[threading.Thread] = []
        # What the table should be doing; re-applied after every (re)connection.
        self.wanted_led = config.led_level
        self.wanted_projector: bool | None = None
        # Observed state and counters for the health endpoint.
        self.device = ""
        self.synced = False
        self.led: int | None = None
        self.projector: bool | None = None
        self.temperature_c: float | None = None
        self.connects = 0
        self.disconnects = 0
        self.commands = 0
        self.retries = 0
        self.failures = 0
        self.bad_lines = 0
        self.events = 0
        self.last_error = ""

    # -- life cycle

    def start(self) -> "TableController":
        for name, target in (("serial-reader", self._read_forever), ("serial-keeper", self._keep_forever)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._resync.set()
        for thread in self._threads:
            thread.join(timeout)
        self._disconnect("closed", level=logging.INFO)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def connected(self) -> bool:
        return self._port is not None

    def wait_connected(self, timeout: float) -> bool:
        """True once the device answered HELLO and got its state back (tests, doctor)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connected and self.synced:
                return True
            time.sleep(0.01)
        return False

    # -- commands

    def command(self, verb: str, *args) -> list[str]:
        """Sends one command and returns the reply's values; raises ControllerError."""
        with self._command_lock:
            try:
                return self._command_locked(verb, args)
            finally:
                self._pending = None

    def _command_locked(self, verb: str, args) -> list[str]:
        self._seq = self._seq % 255 + 1
        pending = _Pending(self._seq)
        line = frame(" ".join([str(pending.seq), verb, *map(str, args)]))
        last = "no reply"
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.retries += 1
            port = self._port
            if port is None:
                self.failures += 1
                raise ControllerError(f"serial {self.config.port}: table controller not connected")
            pending.done.clear()
            self._pending = pending
            try:
                with self._write_lock:
                    port.write(line)
            except (serial.SerialException, OSError) as exc:
                self._disconnect(f"write failed: {exc}")
                continue
            if not pending.done.wait(self.config.reply_timeout_s):
                last = f"no reply within {self.config.reply_timeout_s} s"
                continue
            reply, pending.reply = pending.reply, None
            if reply is None:  # woken because the link dropped
                last = "link lost"
                continue
            if reply[:1] == ["OK"]:
                self.commands += 1
                return reply[1:]
            if reply[1:2] == ["CRC"]:  # the device got a damaged line: send it again
                last = "device saw a bad checksum"
                continue
            self.failures += 1
            raise ControllerError(f"serial {self.config.port}: {verb} refused: {' '.join(reply)}")
        self.failures += 1
        raise ControllerError(f"serial {self.config.port}: {verb} failed after "
                              f"{self.config.retries + 1} tries ({last})")

    def set_led(self, level: int) -> bool:
        """IR LED brightness 0-255; remembered and re-applied after a reconnect."""
        if not 0 <= int(level) <= 255:
            raise ValueError(f"IR LED level {level!r}: expected 0 to 255")
        self.wanted_led = int(level)
        return self._apply(lambda: self._set_led(self.wanted_led))

    def set_projector(self, on: bool) -> bool:
        """Projector power; remembered and re-applied after a reconnect.

        Returns True when the device confirmed it now, False when it will be applied
        once the device is back."""
        self.wanted_projector = bool(on)
        return self._apply(lambda: self._set_projector(bool(on)))

    def read_temperature(self) -> float:
        self.temperature_c = float(self.command("TEMP?")[0])
        return self.temperature_c

    def status(self) -> dict:
        return {
            "port": self.config.port,
            # the device answered HELLO on this link: an open port with a silent board is not connected
            "connected": self.connected and self.synced,
            "device": self.device,
            "led": self.led,
            "projector": None if self.projector is None else ("on" if self.projector else "off"),
            "temperature_c": self.temperature_c,
            "overheated": self.temperature_c is not None and self.temperature_c > self.config.max_temperature_c,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "commands": self.commands,
            "retries": self.retries,
            "failures": self.failures,
            "bad_lines": self.bad_lines,
            "events": self.events,
            "last_error": self.last_error,
        }

    def _apply(self, send: Callable[[], None]) -> bool:
        if not self.connected:
            return False
        try:
            send()
            return True
        except ControllerError as exc:
            self.last_error = str(exc)
            self._log.warning("serial_command_failed", "port=%s error=%r", self.config.port, str(exc))
            return False

    def _set_led(self, level: int) -> None:
        self.led = int(self.command("LED", level)[0])

    def _set_projector(self, on: bool) -> None:
        self.projector = self.command("PROJ", "ON" if on else "OFF")[0] == "ON"

    # -- threads

    def _read_forever(self) -> None:
        delay = 0.0
        next_try = 0.0
        pending = b""  # bytes of a line not yet complete (a line may arrive in pieces)
        while not self._stop.is_set():
            port = self._port
            if port is None:
                if self._clock() < next_try:
                    self._stop.wait(0.02)
                    continue
                try:
                    self._port = self._open_port(self.config.port, self.config.baudrate)
                except (serial.SerialException, OSError, ValueError) as exc:
                    delay = min(max(delay * 2, 0.1), self.config.reconnect_max_s)
                    next_try = self._clock() + delay
                    if str(exc) != self.last_error:
                        self.last_error = str(exc)
                        log.warning("event=serial_unavailable port=%s retry_in_s=%.1f error=%r",
                                    self.config.port, delay, str(exc))
                    continue
                delay = 0.0
                pending = b""
                self.connects += 1
                self.last_error = "port open; waiting for the device to answer HELLO"
                log.info("event=serial_connected port=%s connects=%d", self.config.port, self.connects)
                self._resync.set()
                continue
            try:
                chunk = port.read(max(1, port.in_waiting))  # waits the port's timeout (50 ms) at most
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # pyserial raises TypeError/AttributeError when the port is closed under it.
                self._disconnect(f"read failed: {exc}")
                continue
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                self._handle(line)
            if len(pending) > MAX_LINE:  # garbage without newlines: drop it
                self.bad_lines += 1
                pending = b""

    def _handle(self, line: bytes) -> None:
        body = unframe(line)
        if body is None:
            self.bad_lines += 1  # noise on the line; a missing reply is retried
            return
        words = body.split()
        if not words:
            self.bad_lines += 1
            return
        if words[0] == "!":
            self.events += 1
            event = Event(words[1] if len(words) > 1 else "", tuple(words[2:]))
            if event.name == "BOOT":  # the device restarted and lost its state
                self._resync.set()
            self._log.info("serial_event", "name=%s args=%s", event.name, ",".join(event.args), key=event.name)
            try:
                self.on_event(event)
            except Exception:  # a bad handler must not kill the link
                log.exception("event=serial_event_handler_failed name=%s", event.name)
            return
        pending = self._pending
        if pending is not None and words[0] == str(pending.seq):
            pending.reply = words[1:]
            pending.done.set()
        elif words[0] == "0" and pending is not None and words[1:3] == ["ERR", "CRC"]:
            pending.reply = words[1:]  # the device could not read our seq: resend
            pending.done.set()
        # else: a late reply to a command already given up; ignore it

    def _keep_forever(self) -> None:
        last_poll = -float("inf")
        misses = 0
        while not self._stop.is_set():
            if self._resync.is_set() and self.connected:
                self._sync()
                last_poll = self._clock()
                continue
            if self.connected and self._clock() - last_poll >= self.config.poll_s:
                last_poll = self._clock()
                try:
                    self.read_temperature()
                    misses = 0
                except ControllerError as exc:
                    misses += 1
                    self.last_error = str(exc)
                    if misses >= 2:  # alive port, silent device: reopening resets most boards
                        misses = 0
                        self._disconnect("device stopped answering")
            self._stop.wait(0.05)

    def _sync(self) -> None:
        """HELLO, then the wanted LED level and projector power."""
        self._resync.clear()  # a BOOT event from here on asks for another sync
        self.synced = False
        try:
            hello = self.command("HELLO", PROTOCOL_VERSION)
            self.device = " ".join(hello)
            if len(hello) >= 2 and hello[1] != str(PROTOCOL_VERSION):
                log.error("event=serial_protocol_mismatch port=%s device=%r expected=%d",
                          self.config.port, self.device, PROTOCOL_VERSION)
            self._set_led(self.wanted_led)
            if self.wanted_projector is not None:
                self._set_projector(self.wanted_projector)
            else:  # the hours have not decided yet: read the switch, so the state is known, not None
                self.projector = self.command("PROJ?")[0] == "ON"
            self.read_temperature()
            self.synced = True
            log.info("event=serial_synced port=%s device=%r led=%s projector=%s",
                     self.config.port, self.device, self.led, "on" if self.projector else "off")
        except ControllerError as exc:
            self.last_error = str(exc)
            self._resync.set()
            self._stop.wait(0.2)

    def _disconnect(self, why: str, level: int = logging.WARNING) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        self.disconnects += 1
        self.device = ""
        self.synced = False
        self.last_error = why
        log.log(level, "event=serial_disconnected port=%s reason=%r", self.config.port, why)
        try:
            port.close()
        except Exception:
            pass
        pending = self._pending
        if pending is not None:
            pending.done.set()  # wake the waiting command; it finds no OK and retries


def _open_serial(port: str, baudrate: int) -> serial.SerialBase:
    # exclusive: a second process on the same port would steal replies
    return serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, write_timeout=0.5,
                                 exclusive=True if not port.startswith(("loop://", "socket://")) else None)
