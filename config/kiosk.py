"""The kiosk's config sections: `[serial]` (the table controller), `[health]` (the status
endpoint) and `[watchdog]` (when the table counts as hung or degraded)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from config.schema import ConfigError, bounded

DEFAULT_HEALTH_PORT = 8765


@dataclass(frozen=True)
class SerialConfig:
    """`port = ""` means no table controller; "simulated" runs the pty simulator."""

    port: str = ""
    baudrate: Literal[9600, 19200, 38400, 57600, 115200, 230400] = 115200
    reply_timeout_s: float = field(default=0.3, metadata=bounded(0.01, 10))
    retries: int = field(default=3, metadata=bounded(0, 10))
    reconnect_max_s: float = field(default=10.0, metadata=bounded(0.1, 600))
    poll_s: float = field(default=5.0, metadata=bounded(0.1, 3600))
    led_level: int = field(default=255, metadata=bounded(0, 255))  # IR LED brightness while open
    max_temperature_c: float = field(default=70.0, metadata=bounded(1, 150))


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class HealthConfig:
    """The status endpoint and the operators' console (kiosk/console.py)."""

    enabled: bool = True
    host: str = "127.0.0.1"  # loopback: this machine and SSH tunnels only
    port: int = field(default=DEFAULT_HEALTH_PORT, metadata=bounded(0, 65535))  # 0: any free port
    token: str = ""  # every page asks for it (?token= or Authorization: Bearer); required off loopback
    console: bool = True  # serve the console page and its controls (status and metrics are always served)
    # Names (besides IP addresses, localhost and this machine's name) the Host header may carry:
    # a page of another site that rebinds its name to this machine is refused.
    allowed_hosts: tuple[str, ...] = ()

    def check(self, path: str) -> None:
        if self.host not in LOOPBACK and len(self.token) < 16:
            raise ConfigError(f"{path}.token: {path}.host = {self.host!r} reaches beyond this machine, and the "
                              f"console can change the table: set a token of at least 16 characters "
                              f"(e.g. `python -c \"import secrets; print(secrets.token_urlsafe())\"`)")


def _seconds(default: float) -> float:
    return field(default=default, metadata=bounded(0.01, 3600))


@dataclass(frozen=True)
class WatchdogConfig:
    model_hang_s: float = _seconds(20.0)  # one model call longer than this stops WATCHDOG=1: systemd restarts
    display_stall_s: float = _seconds(0.5)  # a gap between display frames longer than this is a fault
    camera_stale_s: float = _seconds(3.0)  # no camera frame this long: degraded (the camera reconnects itself)
    tick_s: float = _seconds(1.0)  # how often opening hours and temperature are checked
    # No camera frame this long stops WATCHDOG=1 too: a restart reopens a camera whose driver
    # hung. 0: never. Long enough that a restart loop stays under StartLimitBurst.
    camera_restart_s: float = field(default=300.0, metadata=bounded(0, 86400))
