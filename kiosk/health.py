"""The table's health endpoint: JSON status and Prometheus metrics over HTTP.

A small `http.server` in a daemon thread, bound to 127.0.0.1 by default so only the
machine itself (and an SSH tunnel) can see it:

    GET /status   the status snapshot as JSON (`newsnow status` reads it)
    GET /metrics  the same figures in Prometheus text format
    GET /healthz  200 "ok" unless the state is degraded (503), for simple probes
    GET /         the operators' console (kiosk/console.py), with its /view.jpg and /api/...

The server knows nothing about the table: it serves whatever the `snapshot`
callable returns (see `kiosk.kiosk.Kiosk.snapshot` for the fields) and hands the
console's requests to the `Console`. With `[health] token` set, every request needs it.
"""
from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from config.kiosk import DEFAULT_HEALTH_PORT

log = logging.getLogger(__name__)

STATES = ("starting", "running", "idle", "sleeping", "degraded")
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_HEALTH_PORT}/status"


MAX_WORKERS = 8  # requests served at once
CONNECTION_TIMEOUT_S = 5.0


class _BoundedServer(ThreadingHTTPServer):
    """A thread per request, but at most MAX_WORKERS at once (more are closed at once), a
    backlog for bursts of probes, and a timeout per connection: idle clients cannot pile
    up threads in the table's process."""

    request_queue_size = 64
    daemon_threads = True

    def __init__(self, *args, **kwargs):
        self._workers = threading.BoundedSemaphore(MAX_WORKERS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self._workers.acquire(blocking=False):
            self.shutdown_request(request)  # busy: the prober retries
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._workers.release()


class HealthServer:
    """Serves `snapshot()` on /status and /metrics until `stop()`."""

    def __init__(self, snapshot: Callable[[], dict], host: str = "127.0.0.1", port: int = DEFAULT_HEALTH_PORT,
                 console=None, token: str = ""):
        self._snapshot = snapshot
        try:
            self._server = _BoundedServer((host, port), _handler(snapshot, console, token))
        except OSError as exc:
            raise OSError(
                exc.errno, f"health.port: cannot listen on {host}:{port} ({exc.strerror}); "
                f"another newsnow may be running, or pick another port in [health]"
            ) from None
        self._thread: threading.Thread | None = None
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("event=health_exposed host=%s port=%d", host, self.port)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> "HealthServer":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="health-http", daemon=True)
        self._thread.start()
        log.info("event=health_listening url=%s", self.url)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(2.0)
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


MAX_BODY = 64 * 1024  # a console change is a few hundred bytes


def _handler(snapshot: Callable[[], dict], console=None, token: str = ""):
    """GET /status, /metrics, /healthz always; with a console also GET / (the page), /view.jpg,
    /api/settings and POST /api/settings, /api/new-sheet, /api/reload-model. With a token,
    every request must carry it (?token=... or Authorization: Bearer ...)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "newsnow-health"
        timeout = CONNECTION_TIMEOUT_S  # an idle or slow client is dropped

        def _authorized(self) -> bool:
            if not token:
                return True
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            given = (query.get("token") or [""])[0]
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[len("Bearer "):]
            if hmac.compare_digest(given.encode(), token.encode()):
                return True
            self._json(401, {"error": "this table's health endpoint needs its token (health.token in the "
                                      "config): add ?token=... to the address"})
            return False

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if not self._authorized():
                return
            path = urllib.parse.urlsplit(self.path).path.rstrip("/") or ("/console" if console else "/status")
            if console is not None and path in ("/console", "/view.jpg", "/api/settings"):
                self._console_get(path)
                return
            if path not in ("/status", "/metrics", "/healthz"):
                self._json(404, {"error": f"no such page {path}; try /status or /metrics"
                                          + (" or / (the console)" if console else "")})
                return
            try:
                status = snapshot()
            except Exception as exc:  # the table's problem must not take the endpoint down
                log.exception("event=health_snapshot_failed")
                self._json(500, {"error": repr(exc)})
                return
            if path == "/status":
                self._send(200, "application/json", json.dumps(status, default=str, indent=1))
            elif path == "/metrics":
                self._send(200, "text/plain; version=0.0.4; charset=utf-8", prometheus_text(status))
            else:
                degraded = status.get("state") == "degraded"
                self._send(503 if degraded else 200, "text/plain", status.get("state", "unknown") + "\n")

        def _console_get(self, path: str) -> None:
            try:
                if path == "/console":
                    self._send(200, "text/html; charset=utf-8", console.page())
                elif path == "/view.jpg":
                    self._send(200, "image/jpeg", console.view_jpeg(), cache=False)
                else:
                    self._json(200, console.settings())
            except Exception as exc:
                log.exception("event=console_failed path=%s", path)
                self._json(500, {"error": repr(exc)})

        def do_POST(self):  # noqa: N802
            if not self._authorized():
                return
            path = urllib.parse.urlsplit(self.path).path.rstrip("/")
            actions = {"/api/settings": None, "/api/new-sheet": "new_sheet", "/api/reload-model": "reload_model"}
            if console is None or path not in actions:
                self._json(404, {"error": f"no such action {path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": f"request body over {MAX_BODY} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if actions[path] is None:
                    result = console.change(body.get("changes", {}), bool(body.get("save", False)))
                else:
                    result = getattr(console, actions[path])()
            except ValueError as exc:  # ConfigError and bad JSON: the operator's mistake, said plainly
                self._json(400, {"error": str(exc)})
                return
            except Exception as exc:
                log.exception("event=console_failed path=%s", path)
                self._json(500, {"error": repr(exc)})
                return
            self._json(200, result)

        def _json(self, code: int, record: dict) -> None:
            self._send(code, "application/json", json.dumps(record, default=str))

        def _send(self, code: int, kind: str, body: str | bytes, cache: bool = True):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if not cache:
                self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):  # one line per request would flood the journal
            log.debug("event=health_request " + fmt, *args)

    return Handler


# ---------------------------------------------------------------- Prometheus


def prometheus_text(status: dict) -> str:
    """The status snapshot as Prometheus exposition text (format 0.0.4), clean under
    `promtool check metrics`: base units (seconds), latency as a real summary, and every
    series present from the start (NaN where nothing was observed yet)."""
    out: list[str] = []
    nan = float("nan")

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, object]]):
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            shown = _number(value)
            shown = "NaN" if shown is None else shown
            out.append(f"{name}{{{label}}} {shown}" if label else f"{name} {shown}")

    def seconds(ms):
        return nan if ms is None else ms / 1000.0

    def summary(name: str, help_: str, figures: dict):
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} summary")
        for key, q in (("p50", "0.5"), ("p95", "0.95")):
            shown = _number(seconds(figures.get(key)))
            out.append(f'{name}{{quantile="{q}"}} {"NaN" if shown is None else shown}')
        out.append(f"{name}_sum {_number(seconds(figures.get('sum', 0.0))) or '0'}")
        out.append(f"{name}_count {int(figures.get('count', 0))}")

    state = status.get("state")
    camera = status.get("camera") or {}
    serial = status.get("serial") or {}
    projector = status.get("projector") or {}
    fps = status.get("fps") or {}
    schedule = status.get("schedule") or {}
    model = status.get("model") or {}
    calibration = status.get("calibration") or {}

    metric("newsnow_up", "gauge", "1 while the table process answers.", [({}, 1)])
    metric("newsnow_build_info", "gauge", "The running New Snow and its model (value 1).",
           [({"version": model.get("version", "unknown"), "backend": model.get("backend", "unknown")}, 1)])
    metric("newsnow_state", "gauge", "1 for the table's current state.",
           [({"state": s}, int(s == state)) for s in STATES])
    metric("newsnow_uptime_seconds", "gauge", "Seconds since the table started.", [({}, status.get("uptime_s"))])
    metric("newsnow_fps", "gauge", "Frames per second by stage.",
           [({"stage": k}, fps.get(k)) for k in ("display", "inference")])
    summary("newsnow_latency_seconds", "Capture-to-display latency of answered sketches (quantiles over "
            "the recent window).", status.get("latency_ms") or {})
    summary("newsnow_stroke_latency_seconds", "First frame showing a new stroke to the display of its answer.",
            status.get("stroke_latency_ms") or {})
    metric("newsnow_faults_total", "counter", "Faults survived, by kind.",
           [({"kind": k}, v) for k, v in sorted((status.get("faults") or {}).items())])
    metric("newsnow_camera_ok", "gauge", "1 while the camera delivers good frames.",
           [({}, int(camera.get("state") == "ok"))])
    metric("newsnow_camera_last_frame_age_seconds", "gauge", "Age of the newest camera frame (NaN: none yet).",
           [({}, camera.get("last_frame_age_s"))])
    metric("newsnow_projector_on", "gauge", "1 when the projector is switched on (NaN: not controlled).",
           [({}, {"on": 1, "off": 0}.get(projector.get("power")))])
    metric("newsnow_display_max_gap_seconds", "gauge", "Longest gap between two projector frames.",
           [({}, projector.get("max_display_gap_s"))])
    metric("newsnow_button_presses_total", "counter", "Presses of the new-sheet button that started a new table.",
           [({}, status.get("button_presses", 0))])
    metric("newsnow_button_ignored_total", "counter",
           "Presses ignored: within a second of the last, or before the new table showed a drawing.",
           [({}, status.get("button_ignored", 0))])
    metric("newsnow_calibrated", "gauge", "1 when the table runs with a calibration file.",
           [({}, int(bool(calibration.get("calibrated"))))])
    metric("newsnow_calibration_age_seconds", "gauge", "Age of the calibration (NaN: uncalibrated).",
           [({}, calibration.get("age_s"))])
    configured = bool(serial.get("configured", bool(serial)))
    metric("newsnow_serial_connected", "gauge", "1 while the table controller answers (NaN: none configured).",
           [({}, int(bool(serial.get("connected"))) if configured else None)])
    metric("newsnow_serial_connects_total", "counter", "Connections to the table controller.",
           [({}, serial.get("connects", 0))])
    metric("newsnow_serial_retries_total", "counter", "Commands sent again after no or a bad reply.",
           [({}, serial.get("retries", 0))])
    metric("newsnow_table_temperature_celsius", "gauge", "Temperature inside the table (NaN: not measured).",
           [({}, serial.get("temperature_c"))])
    metric("newsnow_open", "gauge", "1 inside opening hours.", [({}, int(bool(schedule.get("open"))))])
    return "\n".join(out) + "\n"


def _number(value) -> str | None:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and not math.isnan(value):
        return repr(value) if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")
    return None


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# ---------------------------------------------------------------- client


class StatusUnavailable(OSError):
    """No status endpoint answered at the URL."""


def fetch_status(url: str = DEFAULT_URL, timeout: float = 2.0) -> dict:
    """Reads /status from a running table; StatusUnavailable says what to check."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return json.loads(reply.read().decode())
    except urllib.error.HTTPError as exc:
        raise StatusUnavailable(f"{url}: the table answered HTTP {exc.code}; see `journalctl -u newsnow`") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusUnavailable(
            f"{url}: no New Snow status ({reason}); is the table running? "
            f"Check `systemctl status newsnow` or pass --url"
        ) from None
