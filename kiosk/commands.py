"""Operators' commands: `newsnow status` (reads a running table's health endpoint) and
`newsnow doctor` (checks the machine before the table runs). No torch, fast to start."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SYSTEM_CONFIG = "/etc/newsnow/table.toml"  # where docs/operations.md puts the table's config


def default_config() -> str | None:
    """$NEWSNOW_CONFIG, else the system config if there is one (as `newsnow run` defaults to it)."""
    path = os.environ.get("NEWSNOW_CONFIG") or SYSTEM_CONFIG
    return path if Path(path).is_file() else None


def register(subparsers) -> None:
    status = subparsers.add_parser("status", help="show a running table's state (from its health endpoint)",
                                   description="Read the status of the table running on this machine.")
    status.add_argument("--json", action="store_true", help="print the status JSON as served")
    status.add_argument("--url", default=None,
                        help="status URL (default: $NEWSNOW_STATUS_URL, else [health] of the config, "
                             "else http://127.0.0.1:8765/status)")
    status.add_argument("--config", default=None,
                        help=f"the table's config, for its [health] port (default: $NEWSNOW_CONFIG or {SYSTEM_CONFIG})")
    status.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    status.set_defaults(handler=status_command)

    doctor = subparsers.add_parser("doctor", help="check camera, display, serial, bundle, calibration, GPU",
                                   description="Check what the table needs; exit status 1 when something blocks it.")
    doctor.add_argument("--config", default=None,
                        help=f"the table's TOML config (default: $NEWSNOW_CONFIG or {SYSTEM_CONFIG}; "
                             "neither: the built-in defaults)")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(handler=doctor_command)


def status_command(args) -> int:
    from kiosk.health import DEFAULT_URL, fetch_status

    url = args.url or os.environ.get("NEWSNOW_STATUS_URL")
    config_path = args.config or (None if url else default_config())
    if not url and config_path:
        from config import Config

        health = Config.load(config_path).health
        host = "127.0.0.1" if health.host in ("0.0.0.0", "", "::") else health.host
        url = f"http://{host}:{health.port}/status"
    url = url or DEFAULT_URL
    status = fetch_status(url, timeout=args.timeout)
    if args.json:
        print(json.dumps(status, indent=1, default=str))
    else:
        print(format_status(status))
    return 0 if status.get("state") != "degraded" else 1


def format_status(s: dict) -> str:
    """A few plain lines for an operator at a terminal: words where a figure is missing."""
    def num(value, unit="", digits=1, missing="–"):
        return missing if not isinstance(value, (int, float)) else f"{value:.{digits}f}{unit}"

    camera = s.get("camera") or {}
    serial = s.get("serial") or {}
    model = s.get("model") or {}
    fps = s.get("fps") or {}
    stroke = s.get("stroke_latency_ms") or {}
    faults = {k: v for k, v in sorted((s.get("faults") or {}).items()) if v}
    age = camera.get("last_frame_age_s")
    if serial.get("configured", True) and serial:
        temperature = serial.get("temperature_c")
        link = f"{'connected' if serial.get('connected') else 'DISCONNECTED'} {serial.get('port', '')}".rstrip()
        serial_line = link + (f", {temperature:.1f} °C" if isinstance(temperature, (int, float)) else "")
        if not serial.get("connected") and serial.get("last_error"):
            serial_line += f" ({serial['last_error']})"
    else:
        serial_line = "not used"
    lines = [
        f"state       {s.get('state', 'unknown')}" + (f" ({', '.join(s['problems'])})" if s.get("problems") else ""),
        f"uptime      {_duration(s.get('uptime_s'))}",
        f"camera      {camera.get('state', 'unknown')}, {num(camera.get('fps'), ' fps')}, "
        + ("no frame yet" if age is None else f"last frame {age:.1f} s ago"),
        f"projector   {(s.get('projector') or {}).get('power', 'unknown')}",
        f"serial      {serial_line}",
        f"model       {model.get('bundle', 'unknown')} on {model.get('backend', 'unknown')}"
        + (f", {model['transition']} ({model['transition_reason']})" if model.get("transition_reason") else ""),
        *(f"WARNING     {w}" for w in s.get("warnings") or []),
        f"fps         display {num(fps.get('display'))}, inference {num(fps.get('inference'))}",
        "latency     " + ("no answer yet" if stroke.get("p50") is None else
                          f"new stroke p50 {num(stroke.get('p50'), ' ms', 0)}, p95 {num(stroke.get('p95'), ' ms', 0)}"),
        "faults      " + (", ".join(f"{k} {v}" for k, v in faults.items()) or "none"),
    ]
    schedule = s.get("schedule") or {}
    if schedule:
        lines.append(f"hours       {'open' if schedule.get('open') else 'closed'}"
                     + (f", next change {schedule['next_change']}" if schedule.get("next_change") else ""))
    return "\n".join(lines)


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "unknown"
    seconds = int(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def doctor_command(args) -> int:
    from config import Config
    from kiosk.doctor import FAIL, run_checks, print_report

    path = args.config or default_config()
    config = Config.load(path) if path else Config.from_dict({}, source="<defaults>")
    results = run_checks(config)
    if args.json:
        print(json.dumps([c.to_dict() for c in results], indent=1))
    else:
        print_report(results, sys.stdout)
    return 1 if any(c.status == FAIL for c in results) else 0
