"""Faults the table must survive, each through the public API, seen as the kiosk reports them:
camera unplugged / hung / frozen / returning garbage, an exception inside inference, a bundle
missing or corrupt at start, and a GPU provider that fails to start."""
from __future__ import annotations

import logging
import shutil
import threading
import time

import numpy as np
import pytest

from calibration import Calibration
from capture.simulated import Fault, SimulatedPenCamera, SimulatedPenSettings
from installation import cli
from config import Config
from kiosk.kiosk import Kiosk
from table.loop import Table
from kiosk.notify import Notifier
from render.warp import Warp
from tests.table.fakes import CAMERA, R, FakeBackend, NullDisplay, ScriptedSource, paper, threshold_sketcher

DISPLAY = (96, 64)
BOX = (60, 40, 100, 80)
BOX2 = (62, 20, 98, 30)


def kiosk_table(source, backend=None, sketcher=threshold_sketcher, camera=CAMERA, **watchdog):
    config = Config.from_dict({
        "camera": {"resolution": list(camera)},
        "display": {"mode": "headless", "size": list(DISPLAY), "fps": 60},
        "transition": {"duration_s": 0.05},
        "idle": {"after_s": 60},
        "watchdog": {"camera_stale_s": 0.3, **watchdog},
    })
    warp = Warp(Calibration.uncalibrated(camera, DISPLAY).table_area_to_projector(R), DISPLAY)
    backend = backend or FakeBackend()
    display = NullDisplay(DISPLAY)
    table = Table(config, source, sketcher, backend, display, warp, transition="crossfade", seed=0)
    kiosk = Kiosk(config, notifier=Notifier({}), serve_health=False)
    kiosk.tick()
    kiosk.attach(table, source=source)
    return table, kiosk, display


def run_watching(table, kiosk, seconds: float, every: float = 0.02):
    """Runs the table for `seconds`; returns [(t, state, problems)] sampled from the kiosk meanwhile."""
    runner = threading.Thread(target=table.run, args=(seconds,), daemon=True)
    t0 = time.monotonic()
    runner.start()
    samples = []
    while runner.is_alive():
        snap = kiosk.snapshot()
        samples.append((time.monotonic() - t0, snap["state"], snap["problems"]))
        time.sleep(every)
    runner.join()
    return samples


def states_between(samples, t0, t1):
    return {state for t, state, _ in samples if t0 <= t < t1}


def test_camera_unplugged_and_back():
    """A camera that raises OSError for 0.6 s: faults counted, state degraded meanwhile, the display never
    stops, and a stroke drawn after it returns is answered (running again)."""
    def script(t):
        if 0.5 <= t < 1.1:
            raise OSError(19, "No such device: /dev/newsnow-camera")
        return paper([BOX] if t < 1.1 else [BOX, BOX2])

    table, kiosk, display = kiosk_table(ScriptedSource(script))
    samples = run_watching(table, kiosk, 2.0)
    status = table.status()
    assert status.faults.get("camera", 0) >= 2
    assert "degraded" in states_between(samples, 0.9, 1.1)
    assert states_between(samples, 1.7, 2.0) == {"running"}
    assert status.inferences == 2  # the stroke after the return was answered
    assert kiosk.max_display_gap_s < 0.5


def test_camera_hung_read_does_not_stall_the_display():
    """A camera that stops delivering for 1.4 s (each read waits its timeout and gives nothing, as the camera
    reader does for a hung USB camera): the display goes on at its rate, the stall is counted and reported as
    degraded, and the table runs normally once frames come again."""
    def script(t):
        if 0.4 <= t < 1.8:
            time.sleep(0.1)  # the read's timeout
            return None
        return paper([BOX] if t < 1.0 else [BOX, BOX2])

    table, kiosk, display = kiosk_table(ScriptedSource(script))
    samples = run_watching(table, kiosk, 2.6)
    status = table.status()
    assert status.faults.get("camera_stalled") == 1
    assert "degraded" in states_between(samples, 1.0, 1.7)
    assert states_between(samples, 2.3, 2.6) == {"running"}
    assert kiosk.max_display_gap_s < 0.5  # the display never waited for the camera
    assert status.inferences == 2


def test_camera_frozen_is_reported_and_recovers():
    """The simulated camera repeats one picture for 2 s: the camera reports frozen, the kiosk says degraded,
    nothing is inferred from the frozen picture, and the state is ok again after it."""
    settings = SimulatedPenSettings(width=256, height=144, fps=30, seed=3, px_per_mm=0.5,
                                    faults=(Fault("freeze", 0.8, 2.0),))
    camera = SimulatedPenCamera(settings)
    table, kiosk, _ = kiosk_table(camera, camera=(256, 144))
    samples = run_watching(table, kiosk, 3.6, every=0.05)
    frozen = [t for t, _, problems in samples if "camera: frozen" in problems]
    assert frozen and 1.6 < frozen[0] < 2.4 and frozen[-1] < 3.3
    assert camera.health().faults == {"freeze": 1}
    assert samples[-1][2] == []  # no problem left at the end


def test_garbage_frames_keep_the_last_good_drawing():
    """Wrong size, wrong dtype, all-black and all-white frames are counted as bad frames and never reach the
    model; the projector keeps showing the last good drawing."""
    garbage = [np.zeros((10, 10), np.uint8), paper([BOX]).astype(np.float32), np.zeros(CAMERA[::-1], np.uint8),
               np.full(CAMERA[::-1], 255, np.uint8)]

    def script(t):
        if 0.5 <= t < 1.3:
            return garbage[int(t * 20) % 4]
        return paper([BOX])

    backend = FakeBackend()
    table, kiosk, display = kiosk_table(ScriptedSource(script), backend)
    runner = threading.Thread(target=table.run, args=(1.6,))
    runner.start()
    time.sleep(0.45)
    good = display.last.copy()
    time.sleep(0.9)
    during = display.last.copy()
    runner.join()
    status = table.status()
    assert status.faults.get("bad_frame", 0) >= 10
    assert backend.calls["sketch_to_drawing"] == 1  # garbage never inferred; the same sheet after it is skipped
    assert np.array_equal(good, during) and good.max() > 200


def test_exception_inside_inference_keeps_the_last_good_drawing():
    """The model raises on the second stroke: the fault is counted, the drawing on show stays the first answer,
    and the next stroke (model healthy again) is answered."""
    backend = FakeBackend()

    def script(t):
        if t < 0.5:
            return paper([BOX])
        if t < 1.0:
            backend.fail = True
            return paper([BOX, BOX2])
        backend.fail = False
        return paper([BOX, BOX2, (20, 90, 140, 100)])

    table, kiosk, display = kiosk_table(ScriptedSource(script), backend)
    runner = threading.Thread(target=table.run, args=(1.5,))
    runner.start()
    time.sleep(0.45)
    first = display.last.copy()
    time.sleep(0.5)
    kept = display.last.copy()
    runner.join()
    status = table.status()
    assert status.faults.get("inference", 0) >= 1
    assert kiosk.snapshot()["faults"]["inference"] == status.faults["inference"]
    assert np.array_equal(first, kept)
    assert status.inferences == 2 and not np.array_equal(display.last, first)


def write_config(tmp_path, bundle) -> str:
    path = tmp_path / "table.toml"
    path.write_text(f'[camera]\nsource = "simulated"\n[model]\nbundle = "{bundle}"\n'
                    f'[display]\nmode = "headless"\n[health]\nport = 0\n')
    return str(path)


@pytest.fixture
def no_display(monkeypatch):
    """Records any attempt to open the projector display."""
    opened = []
    import render.display

    monkeypatch.setattr(render.display.Display, "__init__", lambda self, *a, **k: opened.append(a))
    return opened


def test_missing_bundle_is_refused_before_the_display_opens(tmp_path, capsys, no_display):
    """`newsnow run` with a bundle folder that does not exist exits 2 naming the folder; no display opened."""
    missing = tmp_path / "no-such-bundle"
    assert cli.main(["run", "--config", write_config(tmp_path, missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    assert no_display == []


def test_corrupt_bundle_is_refused_before_the_display_opens(tmp_path, capsys, no_display, tiny_bundle):
    """A bundle whose ONNX graph is truncated, or whose bundle.json is not JSON, is refused with the file named."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    graph = broken / "fused.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    assert cli.main(["run", "--config", write_config(tmp_path, broken)]) == 2
    assert "fused.onnx" in capsys.readouterr().err
    (broken / "bundle.json").write_text("{ not json")
    assert cli.main(["run", "--config", write_config(tmp_path, broken)]) == 2
    assert "bundle.json" in capsys.readouterr().err
    assert no_display == []


def test_failing_gpu_provider_falls_back_to_cpu_with_one_log_line(tiny_bundle, monkeypatch, caplog):
    """CUDA listed and 'installed' but unable to start (this CPU build brings the session up on CPU): the
    backend falls back to the CPU provider, says so in one log line, and answers sketches."""
    import onnxruntime

    from inference.runtime import open_backend

    real = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with caplog.at_level(logging.INFO, logger="inference"):
        backend = open_backend(tiny_bundle, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], threads=1)
    assert backend.name == "onnxruntime/CPUExecutionProvider"
    lines = [r.getMessage() for r in caplog.records if "CUDAExecutionProvider" in r.getMessage()]
    assert len(lines) == 1 and "CPUExecutionProvider" in lines[0]
    drawing = backend.sketch_to_drawing(np.ones((1, 1, 32, 32), np.float32))
    assert drawing.shape[-2:] == (32, 32) and np.isfinite(drawing).all()
