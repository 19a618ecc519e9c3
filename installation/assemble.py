"""Put the table together from its config, everything that can fail before the display opens.

`prepare(config)` loads the bundle, opens the backend, reads the calibration and opens the
frame source, in that order; a missing or invalid file raises a ValueError/OSError subclass
naming it, so `newsnow run` stops before the projector shows anything. Only then does
`open_table` open the display and build the `Table`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from installation.config import Config, ConfigError
from installation.loop import Table

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """The table's pieces, ready to run, with the display still closed."""

    config: Config
    bundle: object
    backend: object
    calibration: object
    source: object
    sketcher: Callable[[np.ndarray], np.ndarray]
    transition: str  # crossfade | latent
    generate_ms: float | None

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close:
            close()


def bundle_path(name: str) -> Path:
    """The bundle folder a config names ("demo" is the bundled demo model)."""
    from inference.bundle import DEMO_BUNDLE

    return DEMO_BUNDLE if name == "demo" else Path(name).expanduser()


def open_source(config: Config):
    """The frame source of `[camera]` (a source has read(timeout), health() and close())."""
    cam = config.camera
    width, height = cam.resolution
    if cam.source == "simulated":
        from capture.simulated import SimulatedPenCamera, SimulatedPenSettings

        return SimulatedPenCamera(SimulatedPenSettings(width=width, height=height, fps=cam.fps, seed=cam.seed))
    if cam.source == "video":
        from capture.video import VideoFileSource

        return VideoFileSource(cam.device, fps=cam.fps)
    from capture.camera import CameraSettings, CameraSource

    device: int | str = int(cam.device) if cam.device.isdigit() else cam.device
    return CameraSource(CameraSettings(device=device, width=width, height=height, fps=cam.fps,
                                       exposure=cam.exposure, gain=cam.gain))


def measure_generate_ms(backend, bundle, repeats: int = 3) -> float:
    """Median time of one W+ -> drawing generation (after one warm-up call)."""
    w = np.repeat(np.asarray(bundle.w_avg, np.float32).reshape(1, 1, -1), int(bundle.num_ws), axis=1)
    backend.generate(w)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend.generate(w)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def choose_transition(kind: str, generate_ms: float | None, config: Config) -> str:
    """"auto": latent when a transition's generations take at most half its duration.

    The other half of the CPU is left to capture and display, which share the machine.
    """
    if kind != "auto":
        return kind
    if generate_ms is None:
        return "crossfade"
    t = config.transition
    return "latent" if generate_ms * t.latent_steps <= 0.5 * t.duration_s * 1000.0 else "crossfade"


def prepare(config: Config, bundle: str | Path | None = None, source=None) -> Parts:
    """Load and check everything the table needs, in the order a misconfiguration shows up."""
    from calibration import Calibration, load as load_calibration
    from capture.binarize import BinarizeParams, binarize
    from inference.bundle import Bundle
    from inference.runtime import open_backend

    path = Path(bundle) if bundle is not None else bundle_path(config.model.bundle)
    model = Bundle.load(path)
    try:
        params = BinarizeParams.from_dict({**model.binarize, **config.binarize})
    except ValueError as exc:
        raise ConfigError(f"{config.path or 'config'}: {exc}") from None
    if params.resolution != model.resolution:
        raise ConfigError(f"{config.path or 'config'}: binarize.resolution {params.resolution} does not match "
                          f"the bundle's resolution {model.resolution}; remove the override")
    m = config.model
    backend = open_backend(model, kind=m.backend if m.backend != "auto" else "auto",
                           providers=list(m.providers) or None, threads=m.threads or None)
    generate_ms = None
    try:
        generate_ms = measure_generate_ms(backend, model)
    except Exception as exc:  # no generator graph: crossfade still works with the fused graph
        log.warning("event=generate_unavailable error=%r", exc)
    transition = choose_transition(config.transition.kind, generate_ms, config)
    if transition == "latent" and generate_ms is None:
        raise ConfigError(f"{config.path or 'config'}: transition.kind: latent needs the bundle's generator graph")

    if config.calibration.file:
        calibration = load_calibration(config.calibration.file, camera_mode=config.camera.resolution,
                                       projector_mode=config.display.size)
    else:
        calibration = Calibration.uncalibrated(config.camera.resolution, config.display.size)

    source = source if source is not None else open_source(config)
    r = model.resolution
    if calibration.calibrated:
        to_sketch = calibration.camera_to_sketch(r)

        def sketcher(image: np.ndarray) -> np.ndarray:
            return binarize(image, params, to_sketch)
    elif hasattr(source, "camera_to_sketch"):
        # The simulated camera knows where its sheet lies: it stands in for a calibration.
        def sketcher(image: np.ndarray) -> np.ndarray:
            return binarize(image, params, source.camera_to_sketch(r))
    else:
        def sketcher(image: np.ndarray) -> np.ndarray:
            return binarize(image, params, None)  # the centred square of the frame

    log.info("event=table_prepared bundle=%s backend=%s transition=%s generate_ms=%s calibrated=%s",
             path, getattr(backend, "name", "?"), transition,
             None if generate_ms is None else round(generate_ms, 2), calibration.calibrated)
    return Parts(config, model, backend, calibration, source, sketcher, transition, generate_ms)


def open_table(parts: Parts, display=None, recorder=None, record_every: int = 3, seed: int | None = None) -> Table:
    """Open the projector display (unless one is given) and build the running table."""
    from render.display import Display
    from render.warp import Warp

    cfg = parts.config
    warp = Warp(parts.calibration.table_area_to_projector(parts.bundle.resolution), cfg.display.size)
    if display is None:
        display = Display(cfg.display.mode, cfg.display.size, cfg.display.index)
    return Table(cfg, parts.source, parts.sketcher, parts.backend, display, warp,
                 transition=parts.transition, generate_ms=parts.generate_ms,
                 recorder=recorder, record_every=record_every, seed=seed)
