"""`newsnow doctor`: checks what the table needs, one line each, with a plain-language fix.

Run it on the table's machine (as the `newsnow` user, with the service stopped, since
a running table holds the camera and the serial port). Each check says ok, warn, fail
or skip; any fail means the table cannot run as configured and the exit status is 1.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
CALIBRATION_MAX_AGE_DAYS = 60
MIN_FREE_MB = 200


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def run_checks(config, checks=None) -> list[Check]:
    """All checks for a loaded `config.Config`, in the order they print."""
    checks = checks or (check_running_table, check_camera, check_display, check_serial, check_bundle,
                        check_calibration, check_providers, check_gpu, check_disk)
    results = []
    for check in checks:
        try:
            results.append(check(config))
        except Exception as exc:  # a check that breaks is itself a finding, not a crash
            results.append(Check(check.__name__.removeprefix("check_"), FAIL, f"the check itself failed: {exc!r}",
                                 "run `newsnow -v doctor` and report the traceback"))
    return results


# ---------------------------------------------------------------- the checks


def check_camera(config) -> Check:
    cam = config.camera
    if cam.source == "simulated":
        return Check("camera", SKIP, "camera.source = \"simulated\": the simulated pen camera, no device needed")
    if cam.source == "video":
        path = Path(cam.device)
        if not path.is_file():
            return Check("camera", FAIL, f"{path}: video file not found",
                         "set camera.device to the video file to replay")
        return Check("camera", OK, f"replaying {path}")
    device = cam.device
    if not device.isdigit():
        problem = _device_problem("camera", device, "plug in the IR camera; check `ls -l /dev/v4l/by-id/`",
                                  "video")
        if problem is not None:
            return problem
    frame, seconds, error = _read_one_frame(device if not device.isdigit() else int(device), cam.resolution)
    if frame is None:
        return Check("camera", FAIL, f"{device}: {error}",
                     "stop the table first (`sudo systemctl stop newsnow`: a running table holds the camera); "
                     "replug the camera; check `v4l2-ctl --list-devices`")
    h, w = frame.shape[:2]
    detail = f"{device}: {w}x{h} frame in {seconds:.2f} s"
    if (w, h) != tuple(cam.resolution):
        return Check("camera", WARN, detail + f", not the configured {cam.resolution[0]}x{cam.resolution[1]}",
                     "set camera.resolution to a mode the camera has (`v4l2-ctl --list-formats-ext`)")
    return Check("camera", OK, detail)


def _read_one_frame(device, resolution, timeout: float = 8.0):
    """One frame from an OpenCV camera, in a thread: an unplugged camera can block forever."""
    import cv2

    result: list = [None, "no frame within %.0f s" % timeout]

    def grab():
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2) if isinstance(device, int) or str(device).startswith("/dev") \
            else cv2.VideoCapture(device)
        try:
            if not cap.isOpened():
                result[1] = "the camera does not open (busy, or not a video capture device)"
                return
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, resolution[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, resolution[1])
            ok, frame = cap.read()
            result[:] = [frame, ""] if ok and frame is not None else [None, "opened, but returned no frame"]
        finally:
            cap.release()

    start = time.monotonic()
    thread = threading.Thread(target=grab, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0], time.monotonic() - start, result[1]


def _device_problem(name: str, device: str, plug: str, group: str) -> Check | None:
    """A device node that is missing or that the user may not open, with the fix."""
    path = Path(device)
    if not path.exists():
        return Check(name, FAIL, f"{device}: no such device",
                     f"{plug} and the udev rule (docs/operations.md) that creates the stable name")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(name, FAIL, f"{device}: no permission to open it",
                     f"add the user to the {group} group: `sudo usermod -aG {group} newsnow`, then log in again")
    return None


def check_display(config) -> Check:
    disp = config.display
    if disp.mode == "headless":
        return Check("display", SKIP, "display.mode = \"headless\": no projector output")
    env = {k: os.environ.get(k) for k in ("WAYLAND_DISPLAY", "DISPLAY", "SDL_VIDEODRIVER") if os.environ.get(k)}
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # its banner would corrupt --json
    import pygame

    from render.display import NO_SCREEN_FIX, no_screen_problem

    try:
        pygame.display.init()
        # the rule `run` applies (render.display.Display): SDL's offscreen fallback is no screen
        problem = no_screen_problem(disp.mode, pygame.display.get_driver())
        if problem:
            return Check("display", FAIL, problem + "; `newsnow run` refuses to start", NO_SCREEN_FIX)
        count = pygame.display.get_num_displays()
        sizes = pygame.display.get_desktop_sizes()
    except pygame.error as exc:
        return Check("display", FAIL, f"cannot open the display ({', '.join(f'{k}={v}' for k, v in env.items())}): {exc}",
                     "check that the kiosk session runs and that the user may use it (group video/render)")
    finally:
        pygame.display.quit()
    if disp.index >= count:
        return Check("display", FAIL, f"display.index = {disp.index} but only {count} display(s) found",
                     "connect and switch on the projector, or set display.index (0 is the first display)")
    size = tuple(sizes[disp.index])
    detail = f"display {disp.index} of {count}: {size[0]}x{size[1]}"
    if size != tuple(disp.size):
        configured = f", configured {disp.size[0]}x{disp.size[1]}"
        fix = f"set [display] size = [{size[0]}, {size[1]}] (the projector's mode), then `newsnow calibrate projector`"
        if disp.mode == "fullscreen":  # `run` refuses it: its frames would never fit the screen
            return Check("display", FAIL, detail + configured, fix)
        return Check("display", WARN, detail + configured + " (a window of that size)", fix)
    return Check("display", OK, detail)


def check_serial(config) -> Check:
    from kiosk.controller import ControllerError, TableController

    serial_cfg = config.serial
    port = serial_cfg.port
    if not port:
        return Check("serial", SKIP, "no [serial] port: the table controller is not used")
    if port == "simulated":
        return Check("serial", SKIP, "serial.port = \"simulated\": the built-in table simulator")
    if not port.startswith(("loop://", "socket://", "rfc2217://")):
        problem = _device_problem("serial", port, "plug in the table controller's USB cable; check "
                                  "`ls -l /dev/serial/by-id/`", "dialout")
        if problem is not None:
            return problem
    controller = TableController(serial_cfg)
    try:
        controller.start()
        if not controller.wait_connected(4.0):
            return Check("serial", FAIL, f"{port}: the table controller does not answer ({controller.last_error})",
                         "stop the table first (it holds the port); check the baud rate (serial.baudrate) and "
                         "that the firmware speaks docs/serial-protocol.md")
        status = controller.status()
    except ControllerError as exc:
        return Check("serial", FAIL, str(exc), "replug the table controller")
    finally:
        controller.close()
    detail = f"{port}: {status['device']}, {status['temperature_c']} °C"
    if status["overheated"]:
        return Check("serial", WARN, detail + f" (above serial.max_temperature_c = {serial_cfg.max_temperature_c})",
                     "check the table's fans and vents; the projector heats the table")
    return Check("serial", OK, detail)


def check_bundle(config) -> Check:
    """The bundle and the binarize overrides, loaded as `run` loads them."""
    from inference.bundle import fit_for_table, fitness_warning
    from table.assemble import load_model

    try:
        bundle, params = load_model(config)
    except ValueError as exc:  # BundleError or ConfigError: names the file and the problem
        return Check("bundle", FAIL, str(exc),
                     "copy the model bundle folder that `newsnow export` wrote onto this machine and set "
                     "model.bundle to it" if "binarize" not in str(exc) else "remove or fix the [binarize] override")
    detail = (f"{bundle.path}: {bundle.resolution}px, {bundle.precision}, "
              f"graphs {', '.join(sorted(bundle.graphs))}, binarize {params.method}")
    warning = fitness_warning(bundle)
    if warning:  # `run` runs it all the same (a curator may try it), so a warning, not a failure
        return Check("bundle", WARN, f"{detail}; {warning}",
                     "train a model the report finds fit (docs/training.md), or run this one knowing "
                     "what visitors will see" if fit_for_table(bundle) is False else
                     "evaluate it: `newsnow train evaluate BUNDLE --out REPORT --dataset DATASET`")
    return Check("bundle", OK, detail + "; the model report finds it fit for the table")


def check_calibration(config) -> Check:
    file = config.calibration.file
    if not file:
        return Check("calibration", WARN, "calibration.file is empty: the table runs uncalibrated (centred)",
                     "calibrate: `newsnow calibrate camera`, then `newsnow calibrate projector`")
    from table.assemble import load_calibration

    try:  # as `run` loads it: measured in the configured camera and projector modes
        cal = load_calibration(config)
    except ValueError as exc:
        return Check("calibration", FAIL, str(exc), "recalibrate: `newsnow calibrate camera` and `projector`")
    age = cal.age_days()
    detail = f"{file}: made {cal.created[:10]}, {age:.0f} days ago"
    if age > CALIBRATION_MAX_AGE_DAYS:
        return Check("calibration", WARN, detail,
                     f"older than {CALIBRATION_MAX_AGE_DAYS} days: recalibrate if the projection looks shifted")
    return Check("calibration", OK, detail)


def check_running_table(config) -> Check:
    """The health port: free, or held by a table that already runs (which holds the camera
    and the serial port too), or by some other program."""
    import socket

    from kiosk.health import StatusUnavailable, fetch_status

    health = config.health
    if not health.enabled or health.port == 0:
        return Check("running table", SKIP, "health.enabled is false or health.port is 0: cannot tell")
    with socket.socket() as sock:
        sock.settimeout(1.0)
        if sock.connect_ex((health.host, health.port)) != 0:
            return Check("running table", OK, f"none: health port {health.host}:{health.port} is free")
    try:
        status = fetch_status(f"http://{health.host}:{health.port}/status", timeout=2.0)
    except StatusUnavailable:
        return Check("running table", FAIL, f"health port {health.host}:{health.port} is taken by another program",
                     "stop that program, or set [health] port to a free one")
    return Check("running table", FAIL, f"a table already runs here (state {status.get('state', '?')}, "
                 f"health port {health.port}) and holds the camera and the serial port",
                 "stop it first: `sudo systemctl stop newsnow`")


def check_providers(config) -> Check:
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = list(config.model.providers)
    missing = [p for p in wanted if p not in available]
    detail = f"ONNX Runtime {ort.__version__}: {', '.join(available)}"
    if wanted and len(missing) == len(wanted):
        return Check("providers", FAIL, detail + f"; none of model.providers ({', '.join(wanted)}) is available",
                     "swap ONNX Runtime for onnxruntime-gpu with a matching CUDA (docs/operations.md, "
                     "section 2), or list CPUExecutionProvider in model.providers")
    if missing:
        return Check("providers", WARN, detail + f"; not available: {', '.join(missing)}",
                     "the table falls back to the next provider; for GPU inference swap ONNX Runtime for "
                     "onnxruntime-gpu (docs/operations.md, section 2)")
    return Check("providers", OK, detail)


def check_gpu(config) -> Check:
    import onnxruntime as ort

    gpu_provider = any(p in ort.get_available_providers()
                       for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.used,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Check("gpu", FAIL, f"nvidia-smi does not answer ({exc})",
                         "the NVIDIA driver is stuck: reboot the machine")
        if out.returncode != 0:
            return Check("gpu", FAIL, f"nvidia-smi failed: {out.stderr.strip() or out.stdout.strip()}",
                         "reinstall the NVIDIA driver (`sudo apt install nvidia-driver`) and reboot")
        detail = "; ".join(line.strip() for line in out.stdout.splitlines() if line.strip())
        if not gpu_provider:
            return Check("gpu", WARN, detail + "; but ONNX Runtime has no CUDA provider",
                         "swap ONNX Runtime for onnxruntime-gpu to use the GPU (docs/operations.md, "
                         "section 2, \"GPU table\")")
        return Check("gpu", OK, detail)
    render = sorted(glob.glob("/dev/dri/renderD*"))
    if gpu_provider:
        return Check("gpu", FAIL, "ONNX Runtime has a CUDA provider but no NVIDIA GPU/driver is visible",
                     "install the NVIDIA driver, or the table falls back to CPU inference")
    if render:
        return Check("gpu", SKIP, f"no NVIDIA GPU; {', '.join(render)} present: inference runs on the CPU")
    return Check("gpu", SKIP, "no GPU: inference runs on the CPU")


def check_disk(config) -> Check:
    places = [p for p in (os.environ.get("STATE_DIRECTORY"), os.environ.get("LOGS_DIRECTORY"), "/var/lib/newsnow",
                          "/var/log/newsnow") if p and Path(p).is_dir()] or [os.getcwd()]
    lowest = min((shutil.disk_usage(p).free / 1e6, p) for p in places)
    detail = f"{lowest[0]:.0f} MB free on {lowest[1]}"
    if lowest[0] < MIN_FREE_MB:
        return Check("disk", WARN, detail,
                     "free some space (`sudo journalctl --vacuum-size=200M`); the table keeps running, "
                     "but drops log lines it cannot write")
    return Check("disk", OK, detail)


def print_report(results: list[Check], out) -> None:
    width = max(len(c.name) for c in results)
    for c in results:
        print(f"{c.status.upper():5} {c.name:{width}}  {c.detail}", file=out)
        if c.fix and c.status in (WARN, FAIL):
            print(f"{'':5} {'':{width}}  fix: {c.fix}", file=out)
    failed = [c.name for c in results if c.status == FAIL]
    print(f"doctor: {len(failed)} problem(s) block the table: {', '.join(failed)}" if failed
          else "doctor: nothing blocks the table", file=out)
