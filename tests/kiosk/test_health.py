"""The health endpoint on 127.0.0.1: JSON status, Prometheus metrics, probes, and `newsnow status`."""
from __future__ import annotations

import argparse
import json
import re
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


def test_idle_connections_cannot_pile_up_threads():
    """200 idle local connections: the server keeps at most a handful of threads, drops the
    idle ones after its timeout, and still answers /status."""
    import socket
    import threading
    import time
    import urllib.request

    from kiosk import health as health_module
    server = HealthServer(lambda: {"state": "running"}, "127.0.0.1", 0).start()
    before = threading.active_count()
    socks = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", server.port))
            socks.append(s)
        time.sleep(0.5)
        assert threading.active_count() - before <= health_module.MAX_WORKERS
        deadline = time.monotonic() + health_module.CONNECTION_TIMEOUT_S + 5
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as reply:
                    assert reply.read() == b"running\n"
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("/healthz never answered while idle connections were open")
    finally:
        for s in socks:
            s.close()
        server.stop()
