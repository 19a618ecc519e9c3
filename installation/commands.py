"""`newsnow demo` (the embedded default) and `newsnow run` (the real table)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/etc/newsnow/table.toml"


def _bench(args) -> int:
    if args.pipeline:  # the live loop's benchmark (table/bench.py) instead of the graphs'
        from table.bench import run_from_bench_args

        return run_from_bench_args(args)
    from inference.bench import run

    return run(args)


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the whole table on the simulated pen camera and the bundled demo model",
        description="Runs capture -> binarize -> model -> display on a simulated pen camera and writes "
                    "OUT/demo.mp4, OUT/last.png (camera | sketch | drawing | projector) and OUT/stats.json.")
    demo.add_argument("--headless", action="store_true", help="no window (SDL dummy video driver)")
    demo.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    demo.add_argument("--bundle", type=Path, default=None, help="model bundle folder (default: the bundled demo)")
    demo.add_argument("--config", type=Path, default=None, help="table config to take settings from "
                      "(the camera is always the simulated pen)")
    demo.add_argument("--seed", type=int, default=0, help="the simulated visitor's script")
    demo.add_argument("--no-video", action="store_true", help="do not record demo.mp4")
    demo.set_defaults(handler=run_demo)

    run = subparsers.add_parser(
        "run", help="run the real table from its config (camera, projector, calibration)",
        description="Run the table as the kiosk service does: load the config, the model bundle, the calibration "
                    "and the camera (any problem stops it here, named), open the projector display (refused "
                    "without a display server), then show drawings until stopped, with the health endpoint, the "
                    "opening hours, the table controller and the systemd watchdog. `newsnow doctor` makes the "
                    "same checks first.")
    run.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=f"table config (default {DEFAULT_CONFIG})")
    run.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until stopped)")
    run.set_defaults(handler=run_table)
    _register_bench(subparsers)


def demo_config(args: argparse.Namespace):
    """The demo's config: the given file (or defaults) on the simulated pen camera."""
    from config import Config

    config = Config.load(args.config) if args.config else Config()
    camera = dataclasses.replace(config.camera, source="simulated", seed=args.seed)
    mode = "headless" if args.headless else ("windowed" if not args.config else config.display.mode)
    if mode != "headless" and not _has_screen():
        log.info("event=no_screen running headless (no DISPLAY/WAYLAND_DISPLAY, or SDL's dummy driver)")
        mode = "headless"
    display = dataclasses.replace(config.display, mode=mode)
    idle = config.idle if args.config else dataclasses.replace(config.idle, after_s=6.0)
    return dataclasses.replace(config, camera=camera, display=display, idle=idle)


def _has_screen() -> bool:
    """Whether a window could open: not on SDL's dummy driver, and on Linux an X or Wayland display."""
    if os.environ.get("SDL_VIDEODRIVER") == "dummy":
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run_demo(args: argparse.Namespace) -> int:
    from table.assemble import open_table, prepare
    from table.recorder import Recorder
    from table.report import last_png, summary_line

    config = demo_config(args)
    parts = prepare(config, bundle=args.bundle)  # a bad bundle stops here, before any window opens
    args.out.mkdir(parents=True, exist_ok=True)
    recorder = None if args.no_video else Recorder(args.out, fps=10.0)
    table = open_table(parts, recorder=recorder,
                       seed=args.seed)
    from kiosk.run import demo_kiosk, stop_on_signals

    stop_on_signals(table.stop)

    kiosk = demo_kiosk(parts, table)  # the health endpoint (/status, /metrics) and a simulated table controller
    try:
        status = table.run(args.seconds)
    finally:
        kiosk.stop()
        parts.close()
        table.display.close()
    video = recorder.close() if recorder else None
    stats = status.to_dict()
    stats.update(
        seconds=args.seconds,
        bundle=str(parts.bundle.path),
        camera=parts.source.health().to_dict() if hasattr(parts.source, "health") else None,
        video={"file": video.name if video else None,
               "frames": recorder.written if recorder else 0,
               "dropped": recorder.dropped if recorder else 0,
               "error": recorder.error if recorder else None},
    )
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    last_png(table, args.out / "last.png")
    print(summary_line(status, args.out))
    if parts.model_warning:  # said last, where it is seen: the demo runs the model all the same
        print(f"newsnow demo: warning: the model {parts.bundle.path} is {parts.model_warning}")
    return 0


class _StopDuringStart(BaseException):
    """SIGTERM/SIGINT while the table is still starting (config, model, camera)."""


def run_table(args: argparse.Namespace) -> int:
    """The real table under the kiosk (systemd, watchdog, opening hours, health, serial)."""
    import os

    from kiosk.log import setup_logging
    from kiosk.notify import Notifier

    # Before anything slow (the kiosk's imports take a second on a loaded machine, loading the
    # model seconds): a stop during start-up is a clean exit 0 with STOPPING=1, not a traceback
    # or a kill by signal; run_kiosk then installs the handlers of the running table.
    def stop_during_start(signum, frame):
        raise _StopDuringStart(signal.Signals(signum).name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_during_start)
    signal.signal(signal.SIGHUP, _reload_during_start)

    # key=value lines to stderr (the journal under systemd), optionally a file; no line per frame
    setup_logging(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                  file=os.environ.get("NEWSNOW_LOG_FILE"))
    parts = None
    try:
        from table.assemble import open_table, prepare
        from config import Config
        from kiosk.run import run_kiosk

        config = Config.load(args.config)  # config, bundle, calibration, camera: all before the display
        parts = prepare(config)
        run_kiosk(parts, open_table, seconds=args.seconds, handle_signals=True,
                  reprepare=lambda old: prepare(old.config, source=old.source))
    except _StopDuringStart as stop:
        logging.getLogger(__name__).info("event=stopping signal=%s during=startup", stop.args[0])
        Notifier(os.environ).stopping()
    finally:
        if parts is not None:
            parts.close()
    return 0


def _reload_during_start(signum, frame) -> None:
    """SIGHUP before the table runs: the running table re-reads the config on the next one."""
    logging.getLogger(__name__).warning("event=reload_ignored reason=still_starting action='reload again once running'")


def _register_bench(subparsers) -> None:
    """`newsnow bench`: the graphs' latency (inference.bench) or, with --pipeline, the live loop's."""
    p = subparsers.add_parser("bench", help="time a bundle per stage and backend (batch 1)",
                              description="Median and p95 latency of the encoder, generator and fused "
                                          "graphs, batch 1, after warm-up.")
    p.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the demo bundle)")
    p.add_argument("--backend", choices=["onnxruntime", "torch", "all"], default="onnxruntime",
                   help="the runtime to time; all: each, with the ratio (default onnxruntime, the kiosk's)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per stage (default 50)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: library's choice)")
    p.add_argument("--provider", default=None,
                   help="ONNX Runtime provider to try first (e.g. CUDAExecutionProvider); falls back to CPU")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--pipeline", action="store_true",
                   help="benchmark the whole live loop instead: each stage, then 20 s of the demo")
    p.set_defaults(handler=_bench)

