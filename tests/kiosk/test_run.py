"""The kiosk around a running table: READY and WATCHDOG to systemd, opening hours switching the
projector over serial and putting the loop to sleep, the button starting a fresh table, the
health endpoint while it runs, and the watchdog withheld when a model call hangs."""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from calibration import Calibration
from config import Config
from kiosk.controller_sim import TableSimulator
from kiosk.kiosk import Kiosk
from kiosk.run import run_kiosk
from table.loop import Pulse, TimedBackend
from table.loop import Table
from kiosk.notify import Notifier
from kiosk.schedule import Schedule
from render.warp import Warp
from tests.table.fakes import CAMERA, R, FakeBackend, NullDisplay, ScriptedSource, paper, threshold_sketcher
from tests.waiting import wait_for

DISPLAY = (96, 64)
BOX = (60, 40, 100, 80)
TUESDAY = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)



class NotifyListener:
    """A stand-in for systemd's notify socket that keeps every message."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout):
                pass

    def count(self, text: str) -> int:
        return sum(text in m for m in list(self.messages))

    def close(self):
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def make_parts(config: Config, backend=None):
    def open_table(parts, display=None):
        calibration = Calibration.uncalibrated(CAMERA, DISPLAY)
        warp = Warp(calibration.table_area_to_projector(R), DISPLAY)
        parts.tables += 1
        return Table(parts.config, parts.source, threshold_sketcher, parts.backend, display, warp,
                     transition="crossfade", seed=0)

    source = ScriptedSource(lambda t: paper([BOX]))
    backend = backend or FakeBackend()
    parts = SimpleNamespace(config=config, backend=backend, source=source, bundle=backend.bundle, tables=0)
    return parts, open_table


def table_config(**extra) -> Config:
    data = {
        "camera": {"resolution": list(CAMERA)},
        "display": {"mode": "headless", "size": list(DISPLAY), "fps": 60},
        "transition": {"duration_s": 0.05},
        "health": {"port": 0},
        "watchdog": {"tick_s": 0.05},
        "hours": {"default": "10:00-17:00"},
    }
    data.update(extra)
    return Config.from_dict(data)


def get_status(kiosk) -> dict:
    with urllib.request.urlopen(kiosk.health.url + "/status", timeout=2) as reply:
        return json.loads(reply.read())


def test_kiosk_runs_sleeps_wakes_and_restarts_on_the_button(tmp_path):
    """Open hours: READY after the first frame, WATCHDOG pings, projector and IR on over serial, /status running.
    The button: a fresh table. Closing time: projector and IR off, display black, state sleeping, pings go on.
    Opening again: a new table and the projector back on. Stop: STOPPING=1."""
    listener = NotifyListener(str(tmp_path / "notify"))
    now = [TUESDAY.replace(hour=11)]
    with TableSimulator() as sim:
        config = table_config(serial={"port": sim.path, "reply_timeout_s": 0.1, "poll_s": 0.2, "led_level": 200})
        notifier = Notifier({"NOTIFY_SOCKET": listener.sock.getsockname(), "WATCHDOG_USEC": "200000",
                             "WATCHDOG_PID": str(os.getpid())})
        kiosk = Kiosk(config, notifier=notifier,
                      schedule=Schedule(config.hours, now=lambda: now[0]))
        parts, open_table = make_parts(config)
        display = NullDisplay(DISPLAY)
        stop = threading.Event()
        runner = threading.Thread(target=run_kiosk, args=(parts, open_table),
                                  kwargs=dict(kiosk=kiosk, display=display, stop=stop), daemon=True)
        runner.start()
        try:
            assert wait_for(lambda: listener.count("READY=1") == 1)
            assert wait_for(lambda: sim.projector is True and sim.led == 200)
            assert wait_for(lambda: get_status(kiosk)["state"] == "running")
            assert wait_for(lambda: get_status(kiosk)["counts"]["inferences"] >= 1)
            assert wait_for(lambda: get_status(kiosk)["projector"]["power"] == "on")
            status = get_status(kiosk)
            assert status["serial"]["connected"]
            assert status["fps"]["display"] > 10
            assert wait_for(lambda: listener.count("WATCHDOG=1") >= 3)

            sim.press_button()
            assert wait_for(lambda: parts.tables == 2) and kiosk.button_presses == 1

            now[0] = TUESDAY.replace(hour=18)  # closing time
            assert wait_for(lambda: kiosk.sleeping and sim.projector is False and sim.led == 0)
            assert wait_for(lambda: display.last is not None and not display.last.any())  # black picture
            assert get_status(kiosk)["state"] == "sleeping"
            pings = listener.count("WATCHDOG=1")
            assert wait_for(lambda: listener.count("WATCHDOG=1") > pings + 2)  # still alive while asleep
            assert parts.tables == 2

            now[0] = TUESDAY.replace(day=25, hour=10)  # the next morning
            assert wait_for(lambda: parts.tables == 3 and sim.projector is True and sim.led == 200)
            assert wait_for(lambda: get_status(kiosk)["state"] == "running")
        finally:
            stop.set()
            runner.join(10)
        assert not runner.is_alive()
        assert wait_for(lambda: listener.count("STOPPING=1") == 1)
        assert listener.count("READY=1") == 1  # once per process, not per table
    listener.close()


def test_watchdog_is_withheld_while_a_model_call_hangs(tmp_path):
    """A model call running longer than watchdog.model_hang_s stops WATCHDOG=1 (systemd will restart the
    table) and shows as degraded 'model: hung'; when the call returns, pings resume."""
    listener = NotifyListener(str(tmp_path / "notify"))
    clock = [0.0]
    config = table_config(watchdog={"model_hang_s": 5.0})
    notifier = Notifier({"NOTIFY_SOCKET": listener.sock.getsockname(), "WATCHDOG_USEC": "1000000"},
                        clock=lambda: clock[0])
    release = threading.Event()

    class Stuck(FakeBackend):
        def sketch_to_drawing(self, x):
            release.wait(5)
            return super().sketch_to_drawing(x)

    backend = TimedBackend(Stuck(), clock=lambda: clock[0])  # the table's stopwatch on its model calls
    kiosk = Kiosk(config, notifier=notifier, clock=lambda: clock[0], serve_health=False)
    kiosk.started, kiosk.open = True, True

    def pulse():  # what the table's display loop hands its hooks
        return Pulse(clock[0], 0.0, backend.busy_s())

    call = threading.Thread(target=backend.sketch_to_drawing, args=(np.zeros((1, 1, R, R), np.float32),))
    call.start()
    assert wait_for(lambda: backend.busy_s() == 0.0 and backend._since is not None)
    pings_at = {}
    for step in range(100):  # 10 s of display frames at 10 fps on the driven clock
        kiosk.on_display_frame(pulse())
        pings_at[step] = notifier.pings
        clock[0] += 0.1
    # a ping every half interval for the first 5 s, none once the call passed model_hang_s
    assert pings_at[49] >= 9
    assert pings_at[99] == pings_at[51]
    assert wait_for(lambda: listener.count("WATCHDOG=1") == pings_at[99])
    assert kiosk.problems({"model_busy_s": backend.busy_s(), "last_frame_age_s": 0.0}, None) == ["model: hung (one call running for 10 s)"]
    release.set()
    call.join(2)
    kiosk.on_display_frame(pulse())
    assert wait_for(lambda: listener.count("WATCHDOG=1") == pings_at[99] + 1)
    assert kiosk.problems({"model_busy_s": backend.busy_s(), "last_frame_age_s": 0.0}, None) == []
    listener.close()


def test_display_gaps_are_measured_and_counted():
    """A gap between display frames longer than watchdog.display_stall_s is counted as a display_stall fault."""
    clock = [0.0]
    kiosk = Kiosk(table_config(watchdog={"display_stall_s": 0.5}), clock=lambda: clock[0], serve_health=False,
                  notifier=Notifier({}))
    for gap in [0.033] * 30 + [0.8] + [0.033] * 5:
        clock[0] += gap
        kiosk.on_display_frame(Pulse(clock[0], 0.0, 0.0))
    assert kiosk.max_display_gap_s == pytest.approx(0.8)
    faults = kiosk.snapshot()["faults"]
    assert faults["display_stall"] == 1 and sum(faults.values()) == 1


def test_demo_kiosk_serves_status_with_a_simulated_controller():
    """`newsnow demo`'s kiosk: /status answers (on any free port when the configured one is taken) and shows
    the simulated table controller connected with the projector on, and the table running. A model its
    own report calls unfit runs, with the report's words under "warnings" (running, not degraded)."""
    from kiosk.health import HealthServer
    from kiosk.run import demo_kiosk

    with HealthServer(lambda: {}, "127.0.0.1", 0) as taken:
        config = table_config(health={"port": taken.port})
        parts, open_table = make_parts(config)
        parts.bundle.verdict = {"fit_for_table": False, "reasons": ["a --tiny smoke test"]}
        table = open_table(parts, display=NullDisplay(DISPLAY))
        kiosk = demo_kiosk(parts, table)
        runner = threading.Thread(target=table.run, args=(1.5,))
        runner.start()
        try:
            assert kiosk.health.port != taken.port
            assert wait_for(lambda: get_status(kiosk)["serial"].get("device", "").startswith("newsnow-table-sim"))
            assert wait_for(lambda: get_status(kiosk)["state"] == "running")
            assert wait_for(lambda: get_status(kiosk)["projector"]["power"] == "on")
            status = get_status(kiosk)
            assert status["warnings"] == ["not for exhibition: a --tiny smoke test"]
            assert status["model"]["fit_for_table"] is False and status["problems"] == []
            from kiosk.commands import format_status
            assert "WARNING     not for exhibition: a --tiny smoke test" in format_status(status)
            with urllib.request.urlopen(kiosk.health.url + "/healthz", timeout=2) as reply:
                assert reply.status == 200  # a warning is no reason for a probe to restart the table
        finally:
            runner.join()
            kiosk.stop()


@pytest.mark.slow
def test_newsnow_run_speaks_to_systemd(tmp_path, tiny_bundle):
    """`newsnow run` as systemd starts it (NOTIFY_SOCKET, WATCHDOG_USEC): READY=1 once the first frame is
    shown, WATCHDOG=1 while it runs, structured key=value logs; SIGHUP (ExecReload) applies the
    changed live sections and names the others; on SIGTERM STOPPING=1 and exit 0."""
    import signal
    import subprocess
    import sys

    listener = NotifyListener(str(tmp_path / "notify"))
    config = tmp_path / "table.toml"
    config.write_text(f'[camera]\nsource = "simulated"\nresolution = [320, 180]\n[model]\nbundle = "{tiny_bundle}"\n'
                      f'threads = 1\n[display]\nmode = "headless"\nsize = [160, 120]\n[health]\nport = 0\n')
    env = dict(os.environ, NOTIFY_SOCKET=listener.sock.getsockname(), WATCHDOG_USEC="1000000",
               SDL_VIDEODRIVER="dummy")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "installation.cli", "run", "--config", str(config)],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: listener.count("READY=1") == 1, timeout=60)
        assert wait_for(lambda: listener.count("WATCHDOG=1") >= 2, timeout=10)
        config.write_text(config.read_text().replace("resolution = [320, 180]", "resolution = [640, 360]")
                          + "[tone]\ncontrast = 1.5\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert wait_for(lambda: listener.count("STOPPING=1") == 1)
    assert "level=info logger=kiosk.kiosk event=first_frame_displayed" in err
    assert "event=config_applied sections=tone" in err and "event=config_needs_restart sections=camera" in err
    assert "event=stopping signal=SIGTERM" in err and "event=stopped" in err
    listener.close()


def test_watchdog_is_withheld_when_the_camera_is_gone_for_long():
    """No camera frame for longer than watchdog.camera_restart_s stops WATCHDOG=1 (a restart reopens a camera
    whose driver hung); pings resume as soon as a frame arrives."""
    clock = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000"}, clock=lambda: clock[0])
    sent = []
    notifier.send = lambda *fields: sent.append(fields) or True
    kiosk = Kiosk(table_config(watchdog={"camera_restart_s": 60}), notifier=notifier, clock=lambda: clock[0],
                  serve_health=False)
    t_last_frame = [100.0]
    kiosk.on_first_frame()
    pings_at = []
    for _ in range(1200):  # 120 s of display frames, no camera frame after t = 100
        kiosk.on_display_frame(Pulse(clock[0], clock[0] - t_last_frame[0], 0.0))
        pings_at.append(notifier.pings)
        clock[0] += 0.1
    assert pings_at[598] >= 90  # about one per 0.5 s while the camera is within 60 s
    assert pings_at[-1] == pings_at[602]  # none after
    t_last_frame[0] = clock[0]
    kiosk.on_display_frame(Pulse(clock[0], 0.0, 0.0))
    assert notifier.pings == pings_at[-1] + 1 and sent[-1] == ("WATCHDOG=1",)


def test_the_tables_own_problems_make_the_kiosk_degraded():
    """A problem the table reports (the model answering NaN) is in the kiosk's problems, so
    health says degraded, not running."""
    kiosk = Kiosk(table_config(), serve_health=False)
    found = kiosk.problems({"problems": ["model: 4 bad outputs in a row (output of shape [1, 1, 8, 8])"],
                            "last_frame_age_s": 0.0}, None)
    assert found == ["model: 4 bad outputs in a row (output of shape [1, 1, 8, 8])"]


def test_started_outside_opening_hours_is_ready_at_once(tmp_path):
    """Started at night, the table sends READY=1 with a STATUS saying it is closed (systemd's
    start timeout must not restart it all night), and still READY only once after opening."""
    listener = NotifyListener(str(tmp_path / "notify"))
    now = [TUESDAY.replace(hour=22)]
    config = table_config()
    notifier = Notifier({"NOTIFY_SOCKET": listener.sock.getsockname(), "WATCHDOG_USEC": "200000",
                         "WATCHDOG_PID": str(os.getpid())})
    kiosk = Kiosk(config, notifier=notifier, schedule=Schedule(config.hours, now=lambda: now[0]),
                  serve_health=False)
    parts, open_table = make_parts(config)
    stop = threading.Event()
    runner = threading.Thread(target=run_kiosk, args=(parts, open_table),
                              kwargs=dict(kiosk=kiosk, display=NullDisplay(DISPLAY), stop=stop), daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: listener.count("READY=1") == 1)
        assert any(m.startswith("READY=1\nSTATUS=closed until") for m in listener.messages)
        assert parts.tables == 0
        now[0] = TUESDAY.replace(day=25, hour=10)
        assert wait_for(lambda: parts.tables == 1 and kiosk.started)
    finally:
        stop.set()
        runner.join(10)
    assert listener.count("READY=1") == 1
    listener.close()



@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_while_the_model_loads_is_a_clean_exit(tmp_path, signame):
    """SIGTERM or SIGINT while `newsnow run` is still loading (here a model load that takes
    20 s): exit 0 within 2 s, STOPPING=1 to systemd, a log line, no traceback. SIGHUP does not
    kill it: it logs that it is still starting."""
    import signal
    import subprocess
    import sys

    listener = NotifyListener(str(tmp_path / "notify"))
    config = tmp_path / "table.toml"
    config.write_text('[display]\nmode = "headless"\n')
    slow_start = ("import signal, sys, time; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                  "import table.assemble as a\n"
                  "a.prepare = lambda config, **kw: time.sleep(20)\n"
                  "from installation.cli import main\n"
                  f"sys.exit(main(['run', '--config', {str(config)!r}]))\n")
    env = dict(os.environ, NOTIFY_SOCKET=listener.sock.getsockname())
    proc = subprocess.Popen([sys.executable, "-c", slow_start], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    proc.send_signal(getattr(signal, signame))
    t = time.monotonic()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and time.monotonic() - t < 2.0, err[-2000:]
    assert wait_for(lambda: listener.count("STOPPING=1") == 1)
    assert f"event=stopping signal={signame} during=startup" in err and "event=reload_ignored" in err
    assert "Traceback" not in err
    listener.close()


def test_button_bursts_start_one_new_table_at_a_time():
    """40 presses in 4 s: a press restarts the table only once the last new table has shown
    a frame and a second has passed; the rest are counted as ignored."""
    from kiosk.controller import Event

    clock = [0.0]
    kiosk = Kiosk(table_config(), clock=lambda: clock[0], serve_health=False)

    class FakeTable:
        on_first_frame, on_display_frame, stops = [], [], 0
        def stop(self):
            FakeTable.stops += 1
    kiosk.attach(FakeTable())
    press = Event("BUTTON", ("NEW_SHEET",))
    kiosk._on_event(press)  # before the table showed anything: ignored
    assert FakeTable.stops == 0
    for k in range(40):
        if k % 5 == 0:
            kiosk.on_display_frame(Pulse(0.0, 0.0, 0.0))  # the (new) table is showing drawings
        kiosk._on_event(press)
        clock[0] += 0.1
    assert FakeTable.stops == 4 and kiosk.button_presses == 4 and kiosk.button_ignored == 37


def test_model_reload_loads_beside_the_running_table_and_swaps_between_frames():
    """The console's 'reload the model': the bundle is prepared in another thread while the table
    goes on showing frames on the old model (a load of 0.8 s here: the longest display gap stays a
    few frames), then the same table runs on the new model, which answers the sheet as it is; the
    next table (a new sheet) is built on the new parts too. A bundle that no longer loads keeps
    the running model and counts a fault."""
    config = table_config(hours={"always_open": True})
    kiosk = Kiosk(config, notifier=Notifier({}), serve_health=False)
    parts, open_table = make_parts(config)
    fresh_backend = FakeBackend()
    loading = threading.Event()

    def slow_load(old):
        loading.set()
        time.sleep(0.8)  # as an ONNX session or a TensorRT engine takes its time
        return SimpleNamespace(**{**vars(old), "backend": fresh_backend})

    outcomes = [slow_load, lambda old: (_ for _ in ()).throw(ValueError("bundle.json: missing"))]

    def reprepare(old):
        return outcomes.pop(0)(old)

    stop = threading.Event()
    runner = threading.Thread(target=run_kiosk, args=(parts, open_table),
                              kwargs=dict(kiosk=kiosk, display=NullDisplay(DISPLAY), stop=stop, reprepare=reprepare),
                              daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: kiosk.display_frames > 5 and kiosk.table is not None)
        table = kiosk.table
        assert wait_for(lambda: table.status().inferences >= 1)
        kiosk.max_display_gap_s = 0.0
        frames_before = kiosk.display_frames
        assert kiosk.request_model_reload()
        assert loading.wait(2) and kiosk.snapshot()["model"]["reloading"] is True
        assert kiosk.request_model_reload()  # a second press while loading: the same reload
        assert wait_for(lambda: table.backend._backend is fresh_backend, timeout=5)
        assert kiosk.table is table and parts.tables == 1  # no new table: the running one swapped
        assert kiosk.display_frames - frames_before > 30  # the display went on while the model loaded
        assert kiosk.max_display_gap_s < 0.2, kiosk.max_display_gap_s
        assert wait_for(lambda: fresh_backend.calls.get("sketch_to_drawing", 0) >= 1)  # the sheet, answered anew
        assert table.status().faults.get("inference", 0) == 0
        assert kiosk.snapshot()["model"]["reloading"] is False
        kiosk._last_press = None
        assert kiosk.new_sheet("test")
        assert wait_for(lambda: kiosk.table is not None and kiosk.table is not table)  # built on the fresh parts
        assert kiosk.table.backend._backend is fresh_backend
        assert kiosk.request_model_reload()
        assert wait_for(lambda: kiosk.snapshot()["faults"].get("model_reload") == 1)
        assert kiosk.table.backend._backend is fresh_backend
    finally:
        stop.set()
        kiosk.table and kiosk.table.stop()
        runner.join(10)
