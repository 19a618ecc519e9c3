"""The table's one configuration: a TOML file validated once, at load, into dataclasses.

Every section is a frozen dataclass; a field's type hint says what the file may hold and
its metadata adds choices and ranges. Unknown keys and bad values are refused with the key
path (`display.mode: expected one of ...`) and the file, before anything opens a camera
or a display.

Other areas add their own sections (`[serial]`, `[hours]`, `[health]`) with
`register_section(name, dataclass)` from a module listed in `SECTION_MODULES`; they are
validated the same way and read back with `config.section(name)`.
"""
from __future__ import annotations

import dataclasses
import importlib
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from render.tone import Tone


class ConfigError(ValueError):
    """The config file is missing or a key in it is unknown or has a bad value."""


def _range(lo: float | None = None, hi: float | None = None, **extra: Any) -> dict:
    return {"min": lo, "max": hi, **extra}


@dataclass(frozen=True)
class CameraConfig:
    source: Literal["camera", "video", "simulated"] = "camera"
    device: str = "/dev/video0"  # camera device path or index, or the video file to replay
    resolution: tuple[int, int] = (1280, 720)
    fps: float = field(default=30.0, metadata=_range(1, 240))
    exposure: float | None = None  # None leaves the camera's own setting
    gain: float | None = None
    seed: int = 0  # the simulated pen's random seed (other sources ignore it)

    def check(self, path: str) -> None:
        if min(self.resolution) < 16:
            raise ConfigError(f"{path}.resolution: {self.resolution} is too small; give [width, height] in pixels")


@dataclass(frozen=True)
class ModelConfig:
    bundle: str = "demo"  # a bundle folder, or "demo" for the bundled demo model
    backend: Literal["auto", "onnxruntime", "torch"] = "auto"
    providers: tuple[str, ...] = ()  # ONNX Runtime providers in order of preference; () picks
    threads: int = field(default=0, metadata=_range(0, 256))  # 0: the runtime's default


@dataclass(frozen=True)
class CalibrationConfig:
    file: str = ""  # "" runs uncalibrated (centred, identity-like) until the table is calibrated


@dataclass(frozen=True)
class DisplayConfig:
    mode: Literal["windowed", "fullscreen", "headless"] = "fullscreen"
    index: int = field(default=0, metadata=_range(0, 16))  # which display is the projector
    size: tuple[int, int] = (1280, 720)  # the projector's mode in pixels
    fps: float = field(default=30.0, metadata=_range(1, 240))

    def check(self, path: str) -> None:
        if min(self.size) < 16:
            raise ConfigError(f"{path}.size: {self.size} is too small; give [width, height] in pixels")


@dataclass(frozen=True)
class TransitionConfig:
    kind: Literal["crossfade", "latent", "auto"] = "auto"
    duration_s: float = field(default=0.5, metadata=_range(0, 10))
    latent_steps: int = field(default=6, metadata=_range(1, 120))  # W+ steps of a latent transition


@dataclass(frozen=True)
class IdleConfig:
    after_s: float = field(default=20.0, metadata=_range(0, 86400))  # no changed sketch this long -> idle
    wander_speed: float = field(default=0.15, metadata=_range(0.001, 10))  # latent keyframes per second
    psi: float = field(default=0.7, metadata=_range(0, 1))  # truncation towards the average drawing
    fps: float = field(default=12.0, metadata=_range(0.5, 120))  # how often idle generates a frame


@dataclass(frozen=True)
class ChangeConfig:
    """When a sketch counts as changed and goes to the model (see loop.new_ink_pixels).

    Either ink appears or vanishes away from the lines of the sketch last sent (a new
    stroke), or more than `threshold` of all pixels differ (above the binarizer's flicker on
    a still sheet: p99 0.00075, max 0.0016 at 256 px, docs/capture.md).
    """

    new_ink_px: int = field(default=1, metadata=_range(1, 1_000_000))  # new-stroke pixels that count
    threshold: float = field(default=0.0015, metadata=_range(0, 1))  # share of differing pixels that counts
    blank_ink: float = field(default=0.0005, metadata=_range(0, 1))  # below this ink share the sheet is blank


@dataclass(frozen=True)
class StatsConfig:
    window: int = field(default=600, metadata=_range(10, 1_000_000))  # frames kept for percentiles
    log_every_s: float = field(default=30.0, metadata=_range(0, 86400))  # 0: never log


# Areas outside the loop add sections here through register_section().
_EXTRA_SECTIONS: dict[str, type] = {}
# Modules imported before a config is parsed, so that their register_section() calls run.
SECTION_MODULES: list[str] = ["installation.kiosk"]  # [serial], [hours], [health], [watchdog]


def register_section(name: str, cls: type) -> None:
    """Accept a `[name]` table in the config, validated into the dataclass `cls`.

    A class with its own `from_dict(d, path)` classmethod is built by it (its ValueError
    becomes a ConfigError naming the file); others are validated from their type hints.
    """
    if not dataclasses.is_dataclass(cls) and not hasattr(cls, "from_dict"):
        raise TypeError(f"config section {name!r} must be a dataclass or have from_dict(d, path)")
    if name in {f.name for f in fields(Config)}:
        raise ValueError(f"config section {name!r} is already part of the table's config")
    _EXTRA_SECTIONS[name] = cls


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = CameraConfig()
    binarize: dict = field(default_factory=dict)  # overrides of the bundle's binarization parameters
    model: ModelConfig = ModelConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    display: DisplayConfig = DisplayConfig()
    tone: Tone = Tone()
    transition: TransitionConfig = TransitionConfig()
    idle: IdleConfig = IdleConfig()
    change: ChangeConfig = ChangeConfig()
    stats: StatsConfig = StatsConfig()
    extra: dict = field(default_factory=dict, repr=False)  # registered sections by name
    path: str = ""  # the file it came from, for messages

    def section(self, name: str) -> Any:
        """A registered section's dataclass (its defaults if the file has no such table)."""
        if name not in _EXTRA_SECTIONS:
            raise KeyError(f"no config section {name!r} is registered")
        return self.extra.get(name) or _EXTRA_SECTIONS[name]()

    @classmethod
    def from_dict(cls, data: dict, source: str = "<config>") -> "Config":
        for module in SECTION_MODULES:
            importlib.import_module(module)
        own = {f.name for f in fields(cls)} - {"extra", "path"}
        known = own | set(_EXTRA_SECTIONS)
        for key in data:
            if key not in known:
                raise ConfigError(f"{source}: {key}: unknown section; known sections: {', '.join(sorted(known))}")
        try:
            kwargs: dict[str, Any] = {}
            hints = typing.get_type_hints(cls)
            for name in own:
                if name in data:
                    kwargs[name] = _convert(data[name], hints[name], name, {})
            if "binarize" in kwargs:
                _check_binarize(kwargs["binarize"])
            extra = {name: _convert(data[name], sec, name, {}) for name, sec in _EXTRA_SECTIONS.items() if name in data}
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cls(**kwargs, extra=extra, path=source)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found; pass --config with the table's TOML file") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, not a config file; pass the table's TOML file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))


def _check_binarize(overrides: dict) -> None:
    """Refuse override keys and values that the binarizer does not accept."""
    from capture.binarize import BinarizeParams

    try:
        BinarizeParams.from_dict(overrides)
    except ValueError as exc:  # its message already names binarize.<key>
        raise ConfigError(str(exc)) from None


def _convert(value: Any, hint: Any, path: str, metadata: Any) -> Any:
    """`value` from TOML checked against the type hint (and metadata ranges) at key `path`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) or hasattr(hint, "from_dict"):
        return _section(value, hint, path)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], path, metadata)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not isinstance(value, int)):
            raise ConfigError(f"{path}: expected {'an integer' if hint is int else 'a number'}, got {value!r}")
        lo, hi = metadata.get("min"), metadata.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{path}: {value} is out of range [{lo}, {hi}]")
        return hint(value)
    if hint is str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a camera index written as a number
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]", metadata) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{path}[{i}]", metadata) for i, (v, a) in enumerate(zip(value, args)))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return dict(value)
    raise TypeError(f"config field {path} has a type the loader does not know: {hint!r}")


def _section(data: Any, cls: type, path: str) -> Any:
    if hasattr(cls, "from_dict"):  # a registered section that validates itself
        try:
            return cls.from_dict(data, path)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table [{path}], got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{path}.{key}: unknown key; known keys: {', '.join(names)}")
    kwargs = {key: _convert(value, hints[key], f"{path}.{key}", names[key].metadata) for key, value in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)
    return obj
