"""The health endpoint on 127.0.0.1: JSON status, Prometheus metrics, probes, and `newsnow status`."""
from __future__ import annotations

import argparse
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from kiosk import commands as ops_commands
from kiosk.health import HealthServer, StatusUnavailable, fetch_status, prometheus_text

STATUS = {
    "state": "running", "problems": [], "uptime_s": 12.5,
    "camera": {"state": "ok", "fps": 30.0, "last_frame_age_s": 0.02},
    "projector": {"power": "on", "max_display_gap_s": 0.041},
    "button_presses": 2,
    "serial": {"connected": True, "port": "/dev/newsnow-table", "connects": 2, "retries": 1, "temperature_c": 41.5},
    "model": {"bundle": "demo", "backend": "onnxruntime/CPUExecutionProvider"},
    "fps": {"display": 30.0, "inference": 9.5},
    "latency_ms": {"p50": 60.0, "p95": 90.0, "max": 120.0, "n": 50, "count": 70, "sum": 4900.0},
    "stroke_latency_ms": {"p50": 70.0, "p95": 95.0, "max": 130.0, "n": 10, "count": 12, "sum": 900.0},
    "faults": {"camera": 2, "inference": 1},
    "schedule": {"open": True, "next_change": "2026-11-25T17:00+01:00"},
}
# One sample line of the Prometheus text format 0.0.4.
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\})? '
                    r'(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def server():
    state = {"status": dict(STATUS)}
    with HealthServer(lambda: state["status"], "127.0.0.1", 0) as srv:
        yield srv, state


def test_status_is_served_as_json_on_loopback(server):
    """GET /status returns the snapshot as JSON; the server listens on 127.0.0.1 only."""
    srv, _ = server
    assert srv.url.startswith("http://127.0.0.1:")
    code, kind, body = get(srv.url + "/status")
    assert code == 200 and kind.startswith("application/json")
    assert json.loads(body) == STATUS
    assert fetch_status(srv.url + "/status") == STATUS


def test_metrics_are_valid_prometheus_text(server):
    """GET /metrics: every line is a HELP/TYPE comment or a valid sample; the figures match the status."""
    srv, _ = server
    code, kind, body = get(srv.url + "/metrics")
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    for line in body.strip().splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE.match(line), line
    assert 'newsnow_state{state="running"} 1' in body and 'newsnow_state{state="degraded"} 0' in body
    assert 'newsnow_faults_total{kind="camera"} 2' in body
    assert 'newsnow_latency_seconds{quantile="0.95"} 0.09' in body
    assert "newsnow_latency_seconds_count 70" in body and "newsnow_latency_seconds_sum 4.9" in body
    assert "newsnow_table_temperature_celsius 41.5" in body and "newsnow_serial_connected 1" in body
    assert "newsnow_display_max_gap_seconds 0.041" in body and "newsnow_button_presses_total 2" in body
    types = re.findall(r"^# TYPE (\S+) (\S+)$", body, flags=re.M)
    assert len(types) == len({name for name, _ in types})  # each metric declared once


def test_healthz_reports_degraded_and_unknown_paths_404(server):
    """/healthz is 200 while running and 503 once the state is degraded; other paths are 404 JSON."""
    srv, state = server
    assert get(srv.url + "/healthz")[0] == 200
    state["status"] = {**STATUS, "state": "degraded"}
    assert get(srv.url + "/healthz")[:1] == (503,)
    code, _, body = get(srv.url + "/nope")
    assert code == 404 and "try /status" in json.loads(body)["error"]


def test_a_failing_snapshot_gives_500_not_a_dead_server():
    """An exception while building the status is answered with 500 and the server keeps serving."""
    def broken():
        raise RuntimeError("stats lock poisoned")

    state_fn = {"n": 0}
    with HealthServer(lambda: broken() if state_fn["n"] == 0 else STATUS, "127.0.0.1", 0) as bad:
        code, _, body = get(bad.url + "/status")
        assert code == 500 and "stats lock poisoned" in body
        state_fn["n"] = 1
        assert get(bad.url + "/status")[0] == 200


def test_every_series_is_there_from_the_start():
    """A status of a table still starting (no serial, no latency yet) has every series, NaN where nothing
    was observed and zero counts, and no 'None'."""
    body = prometheus_text({"state": "starting", "uptime_s": 0.5, "serial": {"configured": False}, "latency_ms": {},
                            "faults": {"camera": 0, "inference": 0}})
    full = prometheus_text(STATUS)
    names = lambda text: set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))  # noqa: E731
    assert names(body) == names(full)
    assert "None" not in body and "newsnow_serial_connected NaN" in body
    assert 'newsnow_latency_seconds{quantile="0.5"} NaN' in body and "newsnow_latency_seconds_count 0" in body
    assert 'newsnow_faults_total{kind="inference"} 0' in body and 'newsnow_state{state="starting"} 1' in body


def test_promtool_finds_nothing_to_lint(tmp_path):
    """`promtool check metrics` (Debian's prometheus package) accepts the metrics of a running and of a
    starting table without a single lint finding."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    for status in (STATUS, {"state": "starting", "serial": {"configured": False}, "latency_ms": {}}):
        proc = subprocess.run([promtool, "check", "metrics"], input=prometheus_text(status), text=True,
                              capture_output=True, timeout=30)
        assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def run_status(argv):
    parser = argparse.ArgumentParser()
    ops_commands.register(parser.add_subparsers())
    args = parser.parse_args(["status", *argv])
    return args.handler(args)


def test_status_command_prints_json_and_plain_text(server, capsys):
    """`newsnow status --json` prints the served JSON; without --json a few readable lines; exit 0 when not degraded."""
    srv, state = server
    assert run_status(["--json", "--url", srv.url + "/status"]) == 0
    assert json.loads(capsys.readouterr().out) == STATUS
    assert run_status(["--url", srv.url + "/status"]) == 0
    out = capsys.readouterr().out
    assert "state       running" in out and "p95 95 ms" in out and "camera 2, inference 1" in out
    assert "None" not in out and "?" not in out
    state["status"] = {**STATUS, "state": "degraded", "problems": ["serial: disconnected"]}
    assert run_status(["--url", srv.url + "/status"]) == 1
    assert "degraded (serial: disconnected)" in capsys.readouterr().out


def test_status_command_without_a_table_says_what_to_check():
    """Nothing listening: StatusUnavailable (an OSError, printed by the CLI) naming the URL and systemctl."""
    srv = HealthServer(lambda: {}, "127.0.0.1", 0)
    url = srv.url + "/status"
    srv.stop()  # the port is free again: nobody answers there
    with pytest.raises(StatusUnavailable, match=r"127\.0\.0\.1.*systemctl status newsnow"):
        run_status(["--url", url, "--timeout", "0.5"])


def test_status_command_finds_the_port_in_the_config(server, tmp_path, capsys, monkeypatch):
    """Without --url, `newsnow status --config FILE` asks the [health] port the config gives."""
    srv, _ = server
    monkeypatch.delenv("NEWSNOW_STATUS_URL", raising=False)
    config = tmp_path / "table.toml"
    config.write_text(f"[health]\nport = {srv.port}\n")
    assert run_status(["--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "running"


class RecordingConsole:
    """What the server hands a console request to, recording the changes it got."""

    def __init__(self):
        self.changes = []

    def page(self):
        return '<meta name="newsnow-console" content="__NEWSNOW_CONSOLE_TOKEN__">'

    def settings(self):
        return {"sections": {}}

    def history(self):
        return {"step_s": 10, "samples": []}

    def change(self, changes, save=False):
        self.changes.append(changes)
        return {"applied": list(changes), "needs_restart": []}

    def new_sheet(self):
        self.changes.append("new sheet")
        return {"new_sheet": True}

    def reload_model(self):
        return {"reload_model": False}


def raw(port: int, data: bytes, wait_s: float = 10.0) -> tuple[int | None, bytes]:
    """(status code, body) of the answer to the bytes `data`, or (None, b'') when none came."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # closed while the body was still going: read the answer it sent
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
                if b"\r\n\r\n" in reply:
                    head, _, body = reply.partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length: (\d+)", head)
                    if length and len(body) >= int(length.group(1)):
                        break
        except OSError:
            pass
    if not reply:
        return None, b""
    return int(reply.split(b" ", 2)[1]), reply.partition(b"\r\n\r\n")[2]


@pytest.fixture
def console_server():
    console = RecordingConsole()
    with HealthServer(lambda: dict(STATUS), "127.0.0.1", 0, console=console) as srv:
        yield srv, console


def post(srv, body: bytes, headers: dict) -> bytes:
    lines = [f"POST /api/settings HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_malformed_requests_get_a_4xx_and_no_traceback(console_server, caplog, monkeypatch):
    """Each request of issue 22 that the hand-made parser got wrong: a 4xx from the library's
    limits, the body never read past 64 KiB, nothing logged above debug, and the server goes on."""
    import resource

    from kiosk import health

    monkeypatch.setattr(health, "BODY_TIMEOUT_S", 1.0)
    srv, console = console_server
    ok = {"Content-Type": "application/json", "X-NewSnow-Console": srv.console_token}
    caplog.set_level(logging.DEBUG)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cases = {
        "length -1": (post(srv, b"{}", {**ok, "Content-Length": "-1"}), 400),
        "length abc": (post(srv, b"", {**ok, "Content-Length": "abc"}), 400),
        "32 MiB": (post(srv, b"x" * (1 << 20), {**ok, "Content-Length": str(32 << 20)}), 413),
        "a list": (post(srv, b"[1, 2]", {**ok, "Content-Length": "6"}), 400),
        "not JSON": (post(srv, b"{nope", {**ok, "Content-Length": "5"}), 400),
        "no body": (post(srv, b"", {**ok, "Content-Length": "10"}), 408),
        "bad request line": (b"GARBAGE\r\n\r\n", 400),
        "header too long": (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 400),
    }
    for name, (data, want) in cases.items():
        t0 = time.monotonic()
        code, body = raw(srv.port, data)
        assert code == want, (name, code, body[:200])
        assert b"Traceback" not in body, name
        assert time.monotonic() - t0 < 5, name
    assert console.changes == []  # none of them reached the table
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 16 * 1024  # KiB: the 32 MiB was not read
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG and r.name.startswith(("aiohttp", "kiosk"))
            and r.getMessage() != "" and "health_listening" not in r.getMessage()]
    assert not loud, [r.getMessage() for r in loud]
    assert not any(r.exc_info for r in caplog.records)
    assert get(srv.url + "/status")[0] == 200


def test_many_idle_connections_never_lock_the_probes_out():
    """2000 silent connections (half with a half-sent request): no thread each, the oldest closed beyond
    the cap, and 200 probes from 20 clients at once all answered."""
    from concurrent.futures import ThreadPoolExecutor

    from kiosk import health

    server = HealthServer(lambda: {"state": "running"}, "127.0.0.1", 0).start()
    threads_before = threading.active_count()
    idle = []
    try:
        for i in range(2000):
            s = socket.create_connection(("127.0.0.1", server.port))
            if i % 2:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(s)
        time.sleep(0.5)
        assert threading.active_count() - threads_before <= health.WORKERS
        assert server.connections <= health.MAX_CONNECTIONS + 20

        def probe(_):
            try:
                return get(server.url + "/healthz")[:1] == (200,)
            except OSError:
                return False

        with ThreadPoolExecutor(20) as pool:
            answered = list(pool.map(probe, range(200)))
        assert all(answered), f"{answered.count(False)} of 200 probes got no answer"
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_a_hung_snapshot_gets_the_prober_a_503_not_silence(monkeypatch):
    from kiosk import health

    monkeypatch.setattr(health, "WORK_TIMEOUT_S", 0.5)
    release = threading.Event()
    with HealthServer(lambda: release.wait(10) or STATUS, "127.0.0.1", 0) as srv:
        try:
            code, _, body = get(srv.url + "/healthz")
            assert code == 503 and "did not answer within" in body
        finally:
            release.set()


def test_metrics_carry_the_process_figures():
    """prometheus_client's process collector: the table's memory and open files beside its own series."""
    body = prometheus_text(STATUS)
    assert "process_resident_memory_bytes " in body and "process_open_fds " in body
    assert "# TYPE newsnow_faults_total counter" in body




def send(srv, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int | None, bytes]:
    headers = {"Host": f"127.0.0.1:{srv.port}", "Connection": "close", **(headers or {})}
    if method == "POST":
        headers.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return raw(srv.port, head.encode() + b"\r\n" + body)


def test_another_sites_form_or_script_cannot_change_the_table(console_server):
    """The attacks of issue 22: a text/plain form POST from another site, a JSON POST from another
    Origin (even one that guessed the header name), and a POST without the page's token are refused;
    the page's own request with the token goes through."""
    srv, console = console_server
    change = json.dumps({"changes": {"tone": {"contrast": 3.5}}}).encode()
    form = send(srv, "POST", "/api/settings", change, {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert form[0] == 403 and b"JSON" in form[1]
    sheet = send(srv, "POST", "/api/new-sheet", b"", {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert sheet[0] == 403
    foreign = send(srv, "POST", "/api/settings", change, {"Content-Type": "application/json",
                                                         "Origin": "http://evil.example",
                                                         "X-NewSnow-Console": srv.console_token})
    assert foreign[0] == 403 and b"another site (http://evil.example)" in foreign[1]
    tokenless = send(srv, "POST", "/api/settings", change, {"Content-Type": "application/json"})
    assert tokenless[0] == 403 and b"console page's token" in tokenless[1]
    wrong = send(srv, "POST", "/api/settings", change, {"Content-Type": "application/json",
                                                       "X-NewSnow-Console": "x" * 43})
    assert wrong[0] == 403
    assert console.changes == []
    own = send(srv, "POST", "/api/settings", change, {"Content-Type": "application/json",
                                                     "Origin": f"http://127.0.0.1:{srv.port}",
                                                     "X-NewSnow-Console": srv.console_token})
    assert own[0] == 200 and console.changes == [{"tone": {"contrast": 3.5}}]
    code, page = send(srv, "GET", "/")
    assert code == 200 and srv.console_token.encode() in page  # the page carries this start's token


def test_the_console_token_is_new_at_every_start():
    console = RecordingConsole()
    with HealthServer(lambda: STATUS, "127.0.0.1", 0, console=console) as first:
        old = first.console_token
    with HealthServer(lambda: STATUS, "127.0.0.1", 0, console=console) as second:
        assert second.console_token != old and len(old) >= 32
        code, _ = send(second, "POST", "/api/new-sheet", b"{}", {"Content-Type": "application/json",
                                                                "X-NewSnow-Console": old})
        assert code == 403 and console.changes == []


def test_a_rebound_name_is_refused_and_tunnels_and_configured_names_answer():
    """DNS rebinding: a page of evil.example whose name now points to 127.0.0.1 sends Host: evil.example;
    it gets 403 on every page. Loopback names with any port (an SSH tunnel), IP addresses and the names
    in health.allowed_hosts are served."""
    with HealthServer(lambda: STATUS, "127.0.0.1", 0, console=RecordingConsole(),
                      allowed_hosts=("table.museum.example",)) as srv:
        for page in ("/status", "/metrics", "/", "/healthz"):
            code, body = send(srv, "GET", page, headers={"Host": f"evil.example:{srv.port}"})
            assert code == 403 and b"health.allowed_hosts" in body, page
        for host in (f"localhost:{srv.port}", "localhost:9000", "127.0.0.1", "[::1]:8765",
                     "Table.Museum.Example:8765"):
            assert send(srv, "GET", "/status", headers={"Host": host})[0] == 200, host


def test_the_token_is_taken_as_bearer_in_any_case_and_lets_a_script_change_things():
    token = "a-long-enough-console-token"
    console = RecordingConsole()
    with HealthServer(lambda: STATUS, "127.0.0.1", 0, console=console, token=token) as srv:
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert send(srv, "GET", "/status", headers={"Authorization": f"{scheme} {token}"})[0] == 200, scheme
        assert send(srv, "GET", "/status", headers={"Authorization": f"Bearer {token[:-1]}"})[0] == 401
        assert send(srv, "GET", "/status", headers={"Authorization": f"Basic {token}"})[0] == 401
        code, _ = send(srv, "POST", "/api/new-sheet", b"{}", {"Content-Type": "application/json",
                                                             "Authorization": f"bearer {token}"})
        assert code == 200 and console.changes == ["new sheet"]  # the token proves a script is the operator's


def test_the_token_is_compared_in_constant_time(monkeypatch):
    """Every comparison of a token goes through hmac.compare_digest."""
    from kiosk import health

    calls = []
    real = health.hmac.compare_digest
    monkeypatch.setattr(health.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    with HealthServer(lambda: STATUS, "127.0.0.1", 0, token="t" * 20) as srv:
        assert send(srv, "GET", "/status", headers={"Authorization": "Bearer " + "t" * 19 + "u"})[0] == 401
    assert (b"t" * 19 + b"u", b"t" * 20) in calls


def test_the_grafana_dashboard_asks_only_for_series_the_table_serves():
    """docs/grafana/newsnow.json: every metric its queries name is in /metrics, and it imports with a
    Prometheus data source of the site's choosing."""
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana" / "newsnow.json").read_text())
    served = set(re.findall(r"^# TYPE (\S+) ", prometheus_text(STATUS), flags=re.M))
    served |= {f"{name}_{suffix}" for name in served for suffix in ("sum", "count")}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {m for e in exprs for m in re.findall(r"\b((?:newsnow|process)_[a-z_]+)\b", e)}
    assert len(named) >= 15 and named <= served, named - served
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"])
