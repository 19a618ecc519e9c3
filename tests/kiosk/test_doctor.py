"""`newsnow doctor`: each check finds its problem and says how to fix it; the exit status says
whether anything blocks the table."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from calibration import Calibration, save
from kiosk import commands as ops_commands, doctor
from config import Config
from kiosk.controller_sim import TableSimulator


def config(**sections) -> Config:
    data = {"camera": {"source": "simulated"}, "display": {"mode": "headless"}}
    data.update(sections)
    return Config.from_dict(data)


def test_camera_checks_name_the_device_and_the_fix(tmp_path):
    """A missing camera device fails with the udev hint; a path that is no camera fails 'does not open';
    the simulated camera is skipped."""
    missing = doctor.check_camera(config(camera={"source": "camera", "device": "/dev/newsnow-camera-none"}))
    assert missing.status == "fail" and "/dev/newsnow-camera-none" in missing.detail and "udev" in missing.fix
    not_a_camera = tmp_path / "video9"
    not_a_camera.write_bytes(b"\0" * 64)
    bad = doctor.check_camera(config(camera={"source": "camera", "device": str(not_a_camera)}))
    assert bad.status == "fail" and "systemctl stop newsnow" in bad.fix
    assert doctor.check_camera(config()).status == "skip"
    video = doctor.check_camera(config(camera={"source": "video", "device": str(tmp_path / "none.mp4")}))
    assert video.status == "fail" and "none.mp4" in video.detail


def test_serial_check_talks_to_the_device(tmp_path):
    """A table controller that answers is ok with its name and temperature; an absent one fails with the fix;
    an overheated one warns."""
    with TableSimulator() as sim:
        ok = doctor.check_serial(config(serial={"port": sim.path, "reply_timeout_s": 0.1}))
        assert ok.status == "ok" and "newsnow-table-sim" in ok.detail and "38.5" in ok.detail
        sim.temperature_c = 80.0
        hot = doctor.check_serial(config(serial={"port": sim.path, "reply_timeout_s": 0.1}))
        assert hot.status == "warn" and "fans" in hot.fix
    gone = doctor.check_serial(config(serial={"port": str(tmp_path / "newsnow-table")}))
    assert gone.status == "fail" and "USB cable" in gone.fix
    assert doctor.check_serial(config()).status == "skip"


def test_bundle_check(tiny_bundle, tmp_path):
    """The tiny bundle loads with its resolution (a warning: never evaluated); a missing bundle
    fails naming the folder."""
    loaded = doctor.check_bundle(config(model={"bundle": str(tiny_bundle)}))
    assert loaded.status == "warn" and "32px" in loaded.detail and "not evaluated" in loaded.detail
    assert "newsnow train evaluate" in loaded.fix
    missing = doctor.check_bundle(config(model={"bundle": str(tmp_path / "nope")}))
    assert missing.status == "fail" and "nope" in missing.detail and "newsnow export" in missing.fix


def test_calibration_age_and_absence(tmp_path):
    """No calibration warns; a missing file fails; a fresh one is ok and one older than 60 days warns."""
    assert doctor.check_calibration(config()).status == "warn"
    missing = doctor.check_calibration(config(calibration={"file": str(tmp_path / "none.json")}))
    assert missing.status == "fail" and "newsnow calibrate" in missing.fix
    fresh = save(Calibration.uncalibrated((1280, 720), (1280, 720)), tmp_path / "fresh.json")
    assert doctor.check_calibration(config(calibration={"file": str(fresh)})).status == "ok"
    old = dataclasses.replace(Calibration.uncalibrated((1280, 720), (1280, 720)), created="2025-01-01T00:00:00+00:00")
    stale = doctor.check_calibration(config(calibration={"file": str(save(old, tmp_path / "old.json"))}))
    assert stale.status == "warn" and "recalibrate" in stale.fix


def test_provider_check_against_the_installed_runtime():
    """Asking only for CUDA on a runtime without it fails; CUDA then CPU warns (fallback); default is ok."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this runtime has CUDA")
    only_gpu = doctor.check_providers(config(model={"providers": ["CUDAExecutionProvider"]}))
    assert only_gpu.status == "fail" and "onnxruntime-gpu" in only_gpu.fix
    fallback = doctor.check_providers(config(model={"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}))
    assert fallback.status == "warn"
    assert doctor.check_providers(config()).status == "ok"
    assert doctor.check_gpu(config()).status in ("ok", "skip", "warn")


def a_screen(monkeypatch):
    """SDL's dummy driver, dressed as X11: the size and index checks need a 'real' screen."""
    import pygame

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setattr(pygame.display, "get_driver", lambda: "x11")


def test_display_check(monkeypatch):
    """No display server fails with the kiosk hint (SDL's offscreen fallback is no screen, as `run`
    says too); a display index that does not exist fails."""
    for key in ("WAYLAND_DISPLAY", "DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(key, raising=False)
    none = doctor.check_display(config(display={"mode": "fullscreen"}))
    assert none.status == "fail" and "newsnow-kiosk" in none.fix and "refuses to start" in none.detail
    a_screen(monkeypatch)
    far = doctor.check_display(config(display={"mode": "fullscreen", "index": 5}))
    assert far.status == "fail" and "display.index" in far.detail
    assert doctor.check_display(config()).status == "skip"


def test_a_check_that_crashes_is_a_finding():
    """An exception inside a check becomes a failed check, not a crash of the doctor."""
    def check_broken(cfg):
        raise RuntimeError("boom")

    [result] = doctor.run_checks(config(), checks=(check_broken,))
    assert result.status == "fail" and result.name == "broken" and "boom" in result.detail


def run_doctor(argv):
    parser = argparse.ArgumentParser()
    ops_commands.register(parser.add_subparsers())
    args = parser.parse_args(["doctor", *argv])
    return args.handler(args)


def test_doctor_exit_status_and_json(tmp_path, tiny_bundle, capsys):
    """A healthy config (simulated camera, headless, real serial device, tiny bundle, fresh calibration) exits 0;
    the same with a missing bundle exits 1 and the report names the bundle and a fix."""
    import socket

    cal = save(Calibration.uncalibrated((1280, 720), (1280, 720)), tmp_path / "cal.json")
    with socket.socket() as probe:  # a free health port (another table on this machine may hold the default)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with TableSimulator() as sim:
        text = (f'[camera]\nsource = "simulated"\n[display]\nmode = "headless"\n'
                f'[model]\nbundle = "{tiny_bundle}"\n[calibration]\nfile = "{cal}"\n'
                f'[serial]\nport = "{sim.path}"\n[health]\nport = {port}\n')
        good = tmp_path / "good.toml"
        good.write_text(text)
        assert run_doctor(["--config", str(good), "--json"]) == 0
        checks = {c["name"]: c["status"] for c in json.loads(capsys.readouterr().out)}
        # the tiny bundle was never evaluated: a warning, which does not block the table
        assert checks["serial"] == "ok" and checks["bundle"] == "warn" and "fail" not in checks.values()
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace(str(tiny_bundle), str(tmp_path / "missing-bundle")))
        assert run_doctor(["--config", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  bundle" in out and "fix: copy the model bundle" in out and "block the table: bundle" in out


def test_kiosk_modules_and_doctor_never_import_torch():
    """The kiosk's modules, `newsnow status` and a whole `newsnow doctor` run leave torch unimported
    (a kiosk has only ONNX Runtime)."""
    import subprocess
    import sys

    code = ("import sys, kiosk.kiosk, kiosk.run, kiosk.console, kiosk.controller_sim, kiosk.log, "
            "kiosk.commands as ops, kiosk.doctor as d\n"
            "from config import Config\n"
            "d.run_checks(Config.from_dict({'camera': {'source': 'simulated'}, 'display': {'mode': 'headless'}}))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_display_of_another_size_fails_in_fullscreen(monkeypatch):
    """`run` refuses a fullscreen display.size that is not the screen's, so doctor fails on it and says
    what to set; in a window it is a warning."""
    a_screen(monkeypatch)
    import pygame

    pygame.display.init()
    w, h = pygame.display.get_desktop_sizes()[0]
    pygame.display.quit()
    wrong = doctor.check_display(config(display={"mode": "fullscreen", "size": [w + 64, h + 64]}))
    assert wrong.status == "fail" and f"size = [{w}, {h}]" in wrong.fix
    assert doctor.check_display(config(display={"mode": "windowed", "size": [w + 64, h + 64]})).status == "warn"
    assert doctor.check_display(config(display={"mode": "fullscreen", "size": [w, h]})).status == "ok"


def test_calibration_is_checked_as_run_loads_it(tmp_path):
    """A calibration measured in another camera or projector mode is refused by `run`, so doctor fails too."""
    cal = save(Calibration.uncalibrated((640, 480), (1280, 720)), tmp_path / "cal.json")
    same = config(camera={"resolution": [640, 480]}, display={"size": [1280, 720]}, calibration={"file": str(cal)})
    assert doctor.check_calibration(same).status == "ok"
    other_camera = config(camera={"resolution": [1280, 720]}, display={"size": [1280, 720]},
                          calibration={"file": str(cal)})
    other_projector = config(camera={"resolution": [640, 480]}, display={"size": [1920, 1080]},
                             calibration={"file": str(cal)})
    assert doctor.check_calibration(other_camera).status == "fail"
    assert doctor.check_calibration(other_projector).status == "fail"


def test_running_table_check_sees_a_table_on_the_health_port():
    """A free health port is ok; a port held by a running table fails (it holds the camera and the
    serial port); one held by another program fails naming that."""
    import socket

    from kiosk.health import HealthServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert doctor.check_running_table(config(health={"port": free})).status == "ok"
    server = HealthServer(lambda: {"state": "running"}, "127.0.0.1", 0)
    server.start()
    try:
        found = doctor.check_running_table(config(health={"port": server.port}))
        assert found.status == "fail" and "a table already runs here (state running" in found.detail
    finally:
        server.stop()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        taken = doctor.check_running_table(config(health={"port": other.getsockname()[1]}))
    assert taken.status == "fail" and "another program" in taken.detail


def test_doctor_json_is_json_with_a_display(tmp_path):
    """With a display configured, pygame's import banner must not reach stdout: --json parses."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "table.toml"
    cfg.write_text('[camera]\nsource = "simulated"\n[display]\nmode = "windowed"\n[health]\nenabled = false\n')
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    env.pop("PYGAME_HIDE_SUPPORT_PROMPT", None)
    proc = subprocess.run([sys.executable, "-m", "installation.cli", "doctor", "--config", str(cfg), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    checks = {c["name"]: c["status"] for c in json.loads(proc.stdout)}
    assert "display" in checks and "pygame" not in proc.stdout


def test_doctor_refuses_a_binarize_override_that_run_refuses(tiny_bundle):
    """A [binarize] resolution that is not the bundle's grid stops `run`; doctor fails on it too."""
    bad = doctor.check_bundle(config(model={"bundle": str(tiny_bundle)}, binarize={"resolution": 64}))
    assert bad.status == "fail" and "does not match the bundle's resolution 32" in bad.detail and "[binarize]" in bad.fix
    assert doctor.check_bundle(config(model={"bundle": str(tiny_bundle)})).status == "warn"  # loads; unevaluated


def test_bundle_check_warns_on_a_model_its_report_calls_unfit(tiny_bundle, tmp_path):
    """A bundle whose recorded verdict is unfit (a --tiny smoke test) is a warning that says why,
    not a failure: `run` loads it all the same. A fit verdict is ok and says so."""
    import shutil

    from inference.bundle import record_verdict

    unfit = shutil.copytree(tiny_bundle, tmp_path / "unfit")
    record_verdict(unfit, {"fit_for_table": False, "reasons": ["a --tiny smoke test"], "verdicts": []})
    check = doctor.check_bundle(config(model={"bundle": str(unfit)}))
    assert check.status == "warn" and "not for exhibition: a --tiny smoke test" in check.detail
    assert "fit" in check.fix
    fit = shutil.copytree(tiny_bundle, tmp_path / "fit")
    record_verdict(fit, {"fit_for_table": True, "reasons": [], "verdicts": ["pass: generator varied"]})
    check = doctor.check_bundle(config(model={"bundle": str(fit)}))
    assert check.status == "ok" and "finds it fit" in check.detail


@pytest.mark.parametrize("driver_env", [None, "dummy"])
def test_doctor_and_run_agree_on_a_table_with_no_screen(monkeypatch, tmp_path, driver_env, capsys):
    """No display server (SDL's offscreen fallback, or its dummy driver) with a fullscreen table:
    `newsnow run` refuses to start before any frame, naming display.mode and the fix, and doctor
    fails the display for the same reason."""
    from installation import cli

    for key in ("WAYLAND_DISPLAY", "DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(key, raising=False)
    if driver_env:
        monkeypatch.setenv("SDL_VIDEODRIVER", driver_env)
    path = tmp_path / "table.toml"
    path.write_text('[camera]\nsource = "simulated"\n[display]\nmode = "fullscreen"\n[health]\nenabled = false\n')
    assert doctor.check_display(config(display={"mode": "fullscreen"})).status == "fail"
    assert cli.main(["run", "--config", str(path), "--seconds", "5"]) == 2
    err = capsys.readouterr().err
    assert "display.mode = 'fullscreen' but there is no display server" in err and "headless" in err
