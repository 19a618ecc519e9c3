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

from config import Config, ConfigError
from table.loop import Table

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """The table's pieces, ready to run, with the display still closed."""

    config: Config
    bundle: object
    backend: object
    calibration: object
    warp: object  # drawing pixels -> projector frame
    source: object
    sketcher: Sketcher
    transition: str  # crossfade | latent
    step_ms: float | None  # measured latent step (generate + tone + warp); None: no generator
    transition_reason: str = ""  # why that transition (what "auto" measured)
    model_warning: str | None = None  # the bundle's own report calls it unfit, or it was never evaluated

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close:
            close()


def binarize_params(bundle, overrides, where: str):
    """The bundle's binarization with the config's `[binarize]` overrides, checked."""
    from capture.binarize import BinarizeParams

    try:
        params = overrides.apply(BinarizeParams.from_dict(bundle.binarize))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if params.resolution != bundle.resolution:
        raise ConfigError(f"{where}: binarize.resolution {params.resolution} does not match the bundle's "
                          f"resolution {bundle.resolution}; remove the override")
    return params


class Sketcher:
    """Camera image -> sketch (uint8 R x R, ink 0): the drawing area, binarized with the
    bundle's parameters and the config's overrides. The overrides may change while the
    table runs (`set_overrides`: SIGHUP, the console); a change is checked first."""

    def __init__(self, bundle, params, to_sketch: Callable[[], np.ndarray | None],
                 undistort: Callable[[np.ndarray], np.ndarray] | None = None):
        self.bundle, self.params = bundle, params
        self._to_sketch, self._undistort = to_sketch, undistort

    def set_overrides(self, overrides, where: str = "config") -> None:
        self.params = binarize_params(self.bundle, overrides, where)  # one reference swap, read per frame

    def __call__(self, image: np.ndarray) -> np.ndarray:
        from capture.binarize import binarize

        if self._undistort is not None:
            image = self._undistort(image)
        return binarize(image, self.params, self._to_sketch())


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
    from capture.camera import CameraSource

    return CameraSource(cam.settings)


def measure_step_ms(backend, bundle, warp, tone, repeats: int = 3) -> float:
    """Median time of one latent-transition step: generate a W+, tone it, warp it to the projector."""
    from render.tone import apply_tone, drawing_to_uint8

    w = np.repeat(np.asarray(bundle.w_avg, np.float32).reshape(1, 1, -1), int(bundle.num_ws), axis=1)

    def step():
        warp(apply_tone(drawing_to_uint8(np.asarray(backend.generate(w))[0]), tone))

    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def choose_transition(kind: str, step_ms: float | None, config: Config) -> str:
    """"auto": latent when one latent step (generate, tone, warp) takes at most a quarter of a
    display frame (8.3 ms at 30 fps), measured alone at start-up.

    A latent transition does `latent_steps` times the model work of a crossfade per answer;
    in the running loop that work shares the CPU with capture and display, and a due step
    holds up the next sketch. With a fast (GPU) backend that costs nothing; on a 2-core CPU
    the crossfade answers sooner.
    """
    if kind != "auto":
        return kind
    if step_ms is None:
        return "crossfade"
    return "latent" if step_ms <= 0.25 * 1000.0 / config.display.fps else "crossfade"


def transition_reason(kind: str, chosen: str, step_ms: float | None, config: Config) -> str:
    """Why the table moves between drawings as it does, in words (the log and the status)."""
    if kind != "auto":
        return f"transition.kind = {kind!r} in the config"
    if step_ms is None:
        return "auto: the bundle has no working generator graph, so no latent step can be made"
    budget = 0.25 * 1000.0 / config.display.fps
    return (f"auto: one latent step took {step_ms:.1f} ms at start-up, "
            f"{'within' if chosen == 'latent' else 'more than'} a quarter of a display frame "
            f"({budget:.1f} ms at {config.display.fps:g} fps)")


# The checks `run` makes before the display opens, one function each, so that `newsnow
# doctor` makes exactly the same ones.

def load_model(config: Config, bundle: str | Path | None = None):
    """(the bundle, its binarization with the config's overrides), both checked."""
    from inference.bundle import Bundle

    model = Bundle.load(Path(bundle) if bundle is not None else bundle_path(config.model.bundle))
    return model, binarize_params(model, config.binarize, config.path or "config")


def load_calibration(config: Config):
    """The calibration file, measured in the configured camera and projector modes (or the
    uncalibrated table without one)."""
    from calibration import Calibration, load

    if not config.calibration.file:
        return Calibration.uncalibrated(config.camera.resolution, config.display.size)
    return load(config.calibration.file, camera_mode=config.camera.resolution, projector_mode=config.display.size)


def prepare(config: Config, bundle: str | Path | None = None, source=None) -> Parts:
    """Load and check everything the table needs, in the order a misconfiguration shows up."""
    from inference.bundle import fitness_warning
    from inference.runtime import open_backend
    from render.warp import Warp

    model, params = load_model(config, bundle)
    m = config.model
    backend = open_backend(model, kind=m.backend, providers=list(m.providers) or None, threads=m.threads or None)
    calibration = load_calibration(config)
    warp = Warp(calibration.table_area_to_projector(model.resolution), config.display.size)

    step_ms = None
    try:
        step_ms = measure_step_ms(backend, model, warp, config.tone)
    except Exception as exc:  # no generator graph: crossfade still works with the fused graph
        log.warning("event=generate_unavailable error=%r", exc)
    transition = choose_transition(config.transition.kind, step_ms, config)
    if transition == "latent" and step_ms is None:
        raise ConfigError(f"{config.path or 'config'}: transition.kind: latent needs the bundle's generator graph")

    source = source if source is not None else open_source(config)
    r = model.resolution
    if calibration.calibrated:
        # camera_to_sketch holds for the undistorted frame when a lens model was stored.
        fixed = calibration.camera_to_sketch(r)
        sketcher = Sketcher(model, params, lambda: fixed, calibration.undistort)
    elif hasattr(source, "camera_to_sketch"):
        # The simulated camera knows where its sheet lies: it stands in for a calibration.
        sketcher = Sketcher(model, params, lambda: source.camera_to_sketch(r))
    else:
        sketcher = Sketcher(model, params, lambda: None)  # the centred square of the frame

    reason = transition_reason(config.transition.kind, transition, step_ms, config)
    log.info("event=table_prepared bundle=%s backend=%s transition=%s step_ms=%s calibrated=%s",
             model.path, getattr(backend, "name", "?"), transition,
             None if step_ms is None else round(step_ms, 2), calibration.calibrated)
    log.info("event=transition_chosen kind=%s reason=%r", transition, reason)
    warning = fitness_warning(model)
    if warning:  # a warning, not a refusal: a curator may want to try the model on the table
        log.warning("event=model_warning bundle=%s warning=%r", model.path, warning)
    return Parts(config, model, backend, calibration, warp, source, sketcher, transition, step_ms,
                 transition_reason=reason, model_warning=warning)


def open_table(parts: Parts, display=None, recorder=None, seed: int | None = None) -> Table:
    """Open the projector display (unless one is given) and build the running table."""
    from render.display import Display

    cfg = parts.config
    if display is None:
        display = Display(cfg.display.mode, cfg.display.size, cfg.display.index)
    return Table(cfg, parts.source, parts.sketcher, parts.backend, display, parts.warp,
                 transition=parts.transition, step_ms=parts.step_ms, transition_reason=parts.transition_reason,
                 recorder=recorder, seed=seed)
