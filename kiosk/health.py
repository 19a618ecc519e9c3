"""The table's health endpoint: JSON status, Prometheus metrics and the operators' console
over HTTP, served by aiohttp from one thread of the table's process.

    GET /status   the status snapshot as JSON (`newsnow status` reads it)
    GET /metrics  the same figures in Prometheus text format (written by prometheus_client)
    GET /healthz  200 "<state>" unless the state is degraded (503), for simple probes
    GET /         the operators' console (kiosk/console.py), with its /view.jpg and /api/...

aiohttp parses the requests and enforces the limits (line and header sizes, a 64 KiB body:
413); a malformed request gets a 4xx and one debug line, never a traceback. Idle and slow
clients cost an asyncio connection each (a few KB, no thread), the oldest dropped beyond
MAX_CONNECTIONS, so probes always find the server free. The table's own work (the snapshot,
the view, a change) runs on a few worker threads, each call bounded by WORK_TIMEOUT_S: a hung
table gets the prober a 503, not silence (benchmarks/compare_http_servers.py chose aiohttp
over uvicorn + starlette: 2.5x the probes per second on one core, and it enforces the body
limit itself; benchmarks/bench_health.py measures the cost to the display loop).

What protects what (docs/operations.md, "The console"):
- the Host must be an IP address, `localhost`, this machine's name or one of
  `health.allowed_hosts` (a DNS-rebinding page carries its own name: 403);
- with `health.token`, every request carries it (`?token=` or `Authorization: Bearer`, the
  scheme in any case), compared in constant time (401 otherwise);
- a request that changes the table (POST) must be JSON, its Origin (when the browser sends
  one) must be this server, and it must carry the per-start console token the page received
  (`X-NewSnow-Console`) or the configured token as Bearer: another site's form or script
  cannot change or save settings (403).
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import secrets
import socket
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from config.kiosk import DEFAULT_HEALTH_PORT

log = logging.getLogger(__name__)

STATES = ("starting", "running", "idle", "sleeping", "degraded")
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_HEALTH_PORT}/status"

MAX_BODY = 64 * 1024  # a console change is a few hundred bytes
BODY_TIMEOUT_S = 5.0  # a body that does not arrive in this time: 408
WORK_TIMEOUT_S = 5.0  # the table's answer (snapshot, view, change) within this, else 503
WORKERS = 4  # threads for the table's work; the connections themselves need none
MAX_CONNECTIONS = 512  # open connections beyond this: the oldest (idle) ones are closed
CONSOLE_HEADER = "X-NewSnow-Console"  # the per-start token the console page sends with a change
TOKEN_PLACEHOLDER = "__NEWSNOW_CONSOLE_TOKEN__"  # in console.html, replaced as the page is served


class _QuietLog(logging.LoggerAdapter):
    """aiohttp's server log: a malformed request is the client's problem, one debug line
    without a traceback (aiohttp has answered it with a 4xx already)."""

    def log(self, level, msg, *args, exc_info=None, stack_info=False, **kwargs):
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        text = msg % args if args else str(msg)
        # the client's malformed request or a dropped connection is routine; anything else is
        # worth a warning line (still without a traceback: the answer went out)
        routine = error is None or isinstance(error, (HttpProcessingError, ConnectionError, asyncio.CancelledError))
        self.logger.log(logging.DEBUG if routine else logging.WARNING, "event=http_refused reason=%r",
                        f"{text}: {error!r}" if error else text)


def host_name(header: str) -> str:
    """The name in a Host header, without its port: 'localhost:9000' -> 'localhost'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(header: str, names: frozenset[str]) -> bool:
    """An IP address cannot be rebound to this machine by another site's DNS; a name must be
    one this table answers to."""
    name = host_name(header).rstrip(".")
    if not header or name in names:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def bearer(request) -> str:
    """The token a request carries: `Authorization: Bearer ...` (any case), else ?token=."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return request.query.get("token", "")


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())  # constant time


class HealthServer:
    """Serves `snapshot()` on /status, /metrics and /healthz (and the console) until `stop()`."""

    def __init__(self, snapshot: Callable[[], dict], host: str = "127.0.0.1", port: int = DEFAULT_HEALTH_PORT,
                 console=None, token: str = "", allowed_hosts: tuple[str, ...] = ()):
        self._snapshot = snapshot
        self._console = console
        self._token = token
        self.console_token = secrets.token_urlsafe(32)  # new at every start: a page from before cannot act
        self._names = frozenset({"localhost", socket.gethostname().lower(), host.lower(),
                                 *(h.lower() for h in allowed_hosts)})
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._socket = socket.create_server((host, port), family=family, backlog=128)
        except OSError as exc:
            raise OSError(
                exc.errno, f"health.port: cannot listen on {host}:{port} ({exc.strerror}); "
                f"another newsnow may be running, or pick another port in [health]"
            ) from None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="health-work")
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("event=health_exposed host=%s port=%d", host, self.port)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = self._socket.getsockname()[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open now (idle ones included)."""
        runner = self._runner
        return len(runner.server.connections) if runner is not None and runner.server is not None else 0

    # -- life cycle

    def start(self) -> "HealthServer":
        ready = threading.Event()
        failed: list[BaseException] = []

        def serve():
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to start()'s caller
                failed.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="health-http", daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            raise failed[0]
        log.info("event=health_listening url=%s", self.url)
        return self

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=_QuietLog(log, {}),
                                     keepalive_timeout=30.0)
        await self._runner.setup()
        server = self._runner.server
        made = server.connection_made

        def capped(handler, transport):  # many idle clients: the oldest go, the newest (a probe) is served
            made(handler, transport)
            open_now = server.connections
            for old in open_now[:max(0, len(open_now) - MAX_CONNECTIONS)]:
                old.force_close()

        server.connection_made = capped
        await web.SockSite(self._runner, self._socket).start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the guard every request passes

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if not host_allowed(request.headers.get("Host", ""), self._names):
            return _json(403, {"error": f"this table does not answer to the name {request.headers.get('Host')!r}; "
                                        f"add it to health.allowed_hosts in the config"})
        if self._token and not same(bearer(request), self._token):
            return _json(401, {"error": "this table's health endpoint needs its token (health.token in the "
                                        "config): add ?token=... to the address, or send Authorization: Bearer ..."})
        if request.method == "POST":
            refused = self._cross_site(request)
            if refused:
                return _json(403, {"error": refused})
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 4xx (a body over MAX_BODY: 413)
            return _json(exc.status, {"error": exc.reason})
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")  # no clickjacking
        return response

    def _cross_site(self, request: web.Request) -> str | None:
        """Why a POST may not have come from this console, or None."""
        if request.content_type != "application/json":
            return "a change must be sent as JSON (Content-Type: application/json)"
        origin = request.headers.get("Origin")
        host = request.headers.get("Host", "").lower()  # (request.host would ask DNS when it is missing)
        if origin is not None and origin.lower() not in {f"http://{host}", f"https://{host}"}:
            return f"refused a change sent from another site ({origin})"
        if same(request.headers.get(CONSOLE_HEADER, ""), self.console_token):
            return None
        if self._token and same(bearer(request), self._token):
            return None
        return (f"a change needs the console page's token ({CONSOLE_HEADER}; reload the page after a restart) "
                f"or Authorization: Bearer with health.token")

    # -- the pages

    async def _work(self, fn, *args):
        """The table's side of a request on a worker thread, bounded in time."""
        return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self._pool, fn, *args),
                                      WORK_TIMEOUT_S)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"].rstrip("/")
        console = self._console
        if path == "/":
            path = "/console" if console is not None else "/status"
        try:
            if request.method in ("GET", "HEAD"):
                return await self._get(path)
            if request.method == "POST":
                return await self._post(path, request)
            return _json(405, {"error": f"{request.method} is not served here; use GET (or POST for a change)"})
        except asyncio.TimeoutError:
            log.warning("event=health_slow path=%s after_s=%.0f", path, WORK_TIMEOUT_S)
            return _json(503, {"error": f"the table did not answer within {WORK_TIMEOUT_S:.0f} s"})
        except web.HTTPException:
            raise
        except ValueError as exc:  # ConfigError and the like: the operator's mistake, said plainly
            return _json(400, {"error": str(exc)})
        except Exception as exc:  # the table's problem must not take the endpoint down
            log.exception("event=health_failed path=%s", path)
            return _json(500, {"error": repr(exc)})

    async def _get(self, path: str) -> web.StreamResponse:
        console = self._console
        if console is not None and path in ("/console", "/view.jpg", "/api/settings", "/api/history"):
            if path == "/console":
                page = await self._work(console.page)
                return web.Response(text=page.replace(TOKEN_PLACEHOLDER, self.console_token),
                                    content_type="text/html", headers={"Cache-Control": "no-store"})
            if path == "/view.jpg":
                return web.Response(body=await self._work(console.view_jpeg), content_type="image/jpeg",
                                    headers={"Cache-Control": "no-store"})
            return _json(200, await self._work(console.settings if path == "/api/settings" else console.history))
        if path not in ("/status", "/metrics", "/healthz"):
            return _json(404, {"error": f"no such page {path}; try /status or /metrics"
                                        + (" or / (the console)" if console is not None else "")})
        status = await self._work(self._snapshot)
        if path == "/status":
            return web.Response(text=json.dumps(status, default=str, indent=1), content_type="application/json")
        if path == "/metrics":
            return web.Response(body=(await self._work(prometheus_text, status)).encode(),
                                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
        degraded = status.get("state") == "degraded"
        return web.Response(status=503 if degraded else 200, text=status.get("state", "unknown") + "\n")

    async def _post(self, path: str, request: web.Request) -> web.StreamResponse:
        actions = {"/api/settings": None, "/api/new-sheet": "new_sheet", "/api/reload-model": "reload_model"}
        console = self._console
        if console is None or path not in actions:
            return _json(404, {"error": f"no such action {path}"})
        try:
            raw = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            return _json(408, {"error": f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s"})
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            return _json(400, {"error": f"the request body is not JSON ({exc})"})
        if not isinstance(body, dict):
            return _json(400, {"error": f"expected a JSON object, got {type(body).__name__}"})
        if actions[path] is None:
            result = await self._work(console.change, body.get("changes", {}), body.get("save", False) is True)
        else:
            result = await self._work(getattr(console, actions[path]))
        return _json(200, result)


def _json(code: int, record: dict) -> web.Response:
    return web.Response(status=code, text=json.dumps(record, default=str), content_type="application/json")


# ---------------------------------------------------------------- Prometheus


def _value(value) -> float:
    """A status figure as a sample value: None (nothing observed yet) is NaN."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


class _Figures:
    """The status snapshot as metric families (a prometheus_client custom collector)."""

    def __init__(self, status: dict):
        self.status = status

    def collect(self):
        status = self.status
        state = status.get("state")
        camera = status.get("camera") or {}
        serial = status.get("serial") or {}
        projector = status.get("projector") or {}
        fps = status.get("fps") or {}
        schedule = status.get("schedule") or {}
        model = status.get("model") or {}
        calibration = status.get("calibration") or {}

        def gauge(name, help_, value=None, labels=None, samples=()):
            family = GaugeMetricFamily(name, help_, labels=list(labels or ()) or None)
            if labels:
                for label_values, v in samples:
                    family.add_metric(label_values, _value(v))
            else:
                family.add_metric([], _value(value))
            return family

        def counter(name, help_, value=None, labels=None, samples=()):
            family = CounterMetricFamily(name, help_, labels=list(labels or ()) or None)
            for label_values, v in (samples if labels else [([], value)]):
                family.add_metric(label_values, _value(v if v is not None else 0))
            return family

        def summary(name, help_, figures: dict):
            family = Metric(name, help_, "summary")
            for key, q in (("p50", "0.5"), ("p95", "0.95")):
                ms = figures.get(key)
                family.add_sample(name, {"quantile": q}, math.nan if ms is None else ms / 1000.0)
            family.add_sample(name + "_sum", {}, float(figures.get("sum", 0.0) or 0.0) / 1000.0)
            family.add_sample(name + "_count", {}, float(figures.get("count", 0) or 0))
            return family

        yield gauge("newsnow_up", "1 while the table process answers.", 1)
        yield gauge("newsnow_build_info", "The running New Snow and its model (value 1).", labels=("version", "backend"),
                    samples=[((str(model.get("version", "unknown")), str(model.get("backend") or "unknown")), 1)])
        yield gauge("newsnow_state", "1 for the table's current state.", labels=("state",),
                    samples=[((s,), int(s == state)) for s in STATES])
        yield gauge("newsnow_uptime_seconds", "Seconds since the table started.", status.get("uptime_s"))
        yield gauge("newsnow_fps", "Frames per second by stage.", labels=("stage",),
                    samples=[((k,), fps.get(k)) for k in ("display", "inference")])
        yield summary("newsnow_latency_seconds", "Capture-to-display latency of answered sketches (quantiles over "
                      "the recent window).", status.get("latency_ms") or {})
        yield summary("newsnow_stroke_latency_seconds", "First frame showing a new stroke to the display of its "
                      "answer.", status.get("stroke_latency_ms") or {})
        yield counter("newsnow_faults_total", "Faults survived, by kind.", labels=("kind",),
                      samples=[((k,), v) for k, v in sorted((status.get("faults") or {}).items())])
        yield gauge("newsnow_camera_ok", "1 while the camera delivers good frames.", int(camera.get("state") == "ok"))
        yield gauge("newsnow_camera_last_frame_age_seconds", "Age of the newest camera frame (NaN: none yet).",
                    camera.get("last_frame_age_s"))
        yield gauge("newsnow_projector_on", "1 when the projector is switched on (NaN: not controlled).",
                    {"on": 1, "off": 0}.get(projector.get("power")))
        yield gauge("newsnow_display_max_gap_seconds", "Longest gap between two projector frames.",
                    projector.get("max_display_gap_s"))
        yield counter("newsnow_button_presses_total", "Presses of the new-sheet button that started a new table.",
                      status.get("button_presses", 0))
        yield counter("newsnow_button_ignored_total",
                      "Presses ignored: within a second of the last, or before the new table showed a drawing.",
                      status.get("button_ignored", 0))
        yield gauge("newsnow_calibrated", "1 when the table runs with a calibration file.",
                    int(bool(calibration.get("calibrated"))))
        yield gauge("newsnow_calibration_age_seconds", "Age of the calibration (NaN: uncalibrated).",
                    calibration.get("age_s"))
        configured = bool(serial.get("configured", bool(serial)))
        yield gauge("newsnow_serial_connected", "1 while the table controller answers (NaN: none configured).",
                    int(bool(serial.get("connected"))) if configured else None)
        yield counter("newsnow_serial_connects_total", "Connections to the table controller.",
                      serial.get("connects", 0))
        yield counter("newsnow_serial_retries_total", "Commands sent again after no or a bad reply.",
                      serial.get("retries", 0))
        yield gauge("newsnow_table_temperature_celsius", "Temperature inside the table (NaN: not measured).",
                    serial.get("temperature_c"))
        yield gauge("newsnow_open", "1 inside opening hours.", int(bool(schedule.get("open"))))


def prometheus_text(status: dict, process: bool = True) -> str:
    """The status snapshot as Prometheus exposition text (format 0.0.4) by prometheus_client,
    clean under `promtool check metrics`: base units (seconds), latency as a summary, every
    series present from the start (NaN where nothing was observed yet), and with `process`
    the process's own figures (memory, CPU, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(status))
    if process:
        ProcessCollector(registry=registry)
    return generate_latest(registry).decode()


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
