"""The table's config sections: the camera, the model, the calibration, the display and
what the visitor sees over time (tone, transitions, idle, when a sketch counts as changed)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from capture.binarize import BinarizeParams
from capture.camera import CameraSettings
from config.schema import ConfigError, bounded, convert


@dataclass(frozen=True)
class CameraConfig:
    """`[camera]`: which source gives the frames and, for a real camera, every field of
    `capture.camera.CameraSettings` (its mode, and how patient to be with it) under the same
    names, except that the mode is written `resolution = [width, height]`."""

    source: Literal["camera", "video", "simulated"] = "camera"
    seed: int = 0  # the simulated pen's random seed (other sources ignore it)
    settings: CameraSettings = CameraSettings(device="/dev/video0")

    @property
    def device(self) -> str:
        """The camera device (path or index) or the video file to replay."""
        return str(self.settings.device)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.settings.width, self.settings.height

    @property
    def fps(self) -> float:
        return self.settings.fps

    @classmethod
    def from_dict(cls, d: Any, path: str = "camera") -> "CameraConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a table [{path}], got {d!r}")
        d = dict(d)
        source = convert(d.pop("source", "camera"), Literal["camera", "video", "simulated"], f"{path}.source", {})
        seed = convert(d.pop("seed", 0), int, f"{path}.seed", {})
        for key in ("width", "height"):
            if key in d:
                raise ConfigError(f"{path}.{key}: give the camera mode as resolution = [width, height]")
        if "resolution" in d:
            resolution = convert(d.pop("resolution"), tuple[int, int], f"{path}.resolution", {})
            if min(resolution) < 16:
                raise ConfigError(f"{path}.resolution: {resolution} is too small; give [width, height] in pixels")
            d["width"], d["height"] = resolution
        device = d.setdefault("device", "/dev/video0")
        if isinstance(device, str) and device.isdigit():
            d["device"] = int(device)  # an index written as a string
        return cls(source=source, seed=seed, settings=CameraSettings.from_dict(d))  # ValueError names camera.<key>


@dataclass(frozen=True)
class BinarizeOverrides:
    """`[binarize]`: fields of the bundle's `BinarizeParams` that this table changes (a
    brighter lamp, a thicker pen), validated at load; applied over the bundle's at start."""

    values: dict = field(default_factory=dict)

    def apply(self, params: BinarizeParams) -> BinarizeParams:
        return BinarizeParams.from_dict({**params.to_dict(), **self.values})

    @classmethod
    def from_dict(cls, d: Any, path: str = "binarize") -> "BinarizeOverrides":
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a table [{path}], got {d!r}")
        BinarizeParams.from_dict(d)  # its ValueError names binarize.<key>
        return cls(dict(d))


@dataclass(frozen=True)
class ModelConfig:
    bundle: str = "demo"  # a bundle folder, or "demo" for the bundled demo model
    backend: Literal["auto", "onnxruntime", "torch"] = "auto"
    providers: tuple[str, ...] = ()  # ONNX Runtime providers in order of preference; () picks
    threads: int = field(default=0, metadata=bounded(0, 256))  # 0: the runtime's default


@dataclass(frozen=True)
class CalibrationConfig:
    file: str = ""  # "" runs uncalibrated (centred, identity-like) until the table is calibrated


@dataclass(frozen=True)
class DisplayConfig:
    mode: Literal["windowed", "fullscreen", "headless"] = "fullscreen"
    index: int = field(default=0, metadata=bounded(0, 16))  # which display is the projector
    size: tuple[int, int] = (1280, 720)  # the projector's mode in pixels
    fps: float = field(default=30.0, metadata=bounded(1, 240))

    def check(self, path: str) -> None:
        if min(self.size) < 16:
            raise ConfigError(f"{path}.size: {self.size} is too small; give [width, height] in pixels")


@dataclass(frozen=True)
class TransitionConfig:
    kind: Literal["crossfade", "latent", "auto"] = "auto"
    duration_s: float = field(default=0.5, metadata=bounded(0, 10))
    latent_steps: int = field(default=6, metadata=bounded(1, 120))  # W+ steps of a latent transition


@dataclass(frozen=True)
class IdleConfig:
    after_s: float = field(default=20.0, metadata=bounded(0, 86400))  # no changed sketch this long -> idle
    wander_speed: float = field(default=0.15, metadata=bounded(0.001, 10))  # latent keyframes per second
    psi: float = field(default=0.7, metadata=bounded(0, 1))  # truncation towards the average drawing
    fps: float = field(default=12.0, metadata=bounded(0.5, 120))  # how often idle generates a frame


@dataclass(frozen=True)
class ChangeConfig:
    """When a sketch counts as changed and goes to the model (see loop.new_ink_pixels).

    Either ink appears or vanishes away from the lines of the sketch last sent (a new
    stroke), or more than `threshold` of all pixels differ (above the binarizer's flicker on
    a still sheet: p99 0.00075, max 0.0016 at 256 px, docs/capture.md).
    """

    new_ink_px: int = field(default=1, metadata=bounded(1, 1_000_000))  # new-stroke pixels that count
    threshold: float = field(default=0.0015, metadata=bounded(0, 1))  # share of differing pixels that counts
    blank_ink: float = field(default=0.0005, metadata=bounded(0, 1))  # below this ink share the sheet is blank


@dataclass(frozen=True)
class StatsConfig:
    window: int = field(default=600, metadata=bounded(10, 1_000_000))  # frames kept for percentiles
    log_every_s: float = field(default=30.0, metadata=bounded(0, 86400))  # 0: never log


