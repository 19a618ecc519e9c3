"""config: the example loads; bad files are refused naming the file and the key."""
from __future__ import annotations

from pathlib import Path

import pytest

import config
from capture.binarize import BinarizeParams
from config import Config, ConfigError
from config.kiosk import SerialConfig

EXAMPLE = Path(config.__file__).parent / "example.toml"


def test_example_config_loads_with_its_values():
    """The shipped example is valid and its values arrive typed in the sections."""
    config = Config.load(EXAMPLE)
    assert config.camera.resolution == (1280, 720) and config.camera.source == "camera"
    assert config.display.mode == "fullscreen" and config.tone.contrast == 1.2
    assert config.transition.kind == "auto" and config.idle.after_s == 20.0
    assert config.path == str(EXAMPLE)


@pytest.mark.parametrize("text,message", [
    ('[display]\nmode = "tv"', "display.mode: expected one of windowed, fullscreen, headless, got 'tv'"),
    ('[displya]\nmode = "headless"', "displya: unknown section"),
    ('[camera]\nfps = 30\nexposur = 3', "camera.exposur: unknown setting"),
    ('[camera]\nwidth = 640', "camera.width: give the camera mode as resolution = [width, height]"),
    ('[camera]\nread_timeout = 0', "camera.read_timeout: must be a positive number"),
    ('[serial]\nbaudrate = 1234', "serial.baudrate: expected one of"),
    ('[hours]\nmonday = "9-5"', "hours.monday: expected \"HH:MM-HH:MM\""),
    ('[camera]\nresolution = [1280]', "camera.resolution: expected 2 values"),
    ('[camera]\nresolution = [8, 8]', "camera.resolution: (8, 8) is too small"),
    ('[tone]\ngamma = 0', "tone.gamma: 0 is out of range"),
    ('[tone]\ncomposite_strokes = "yes"', "tone.composite_strokes: expected true or false"),
    ('[model]\nthreads = 1.5', "model.threads: expected an integer"),
    ('[transition]\nkind = "morph"', "transition.kind: expected one of crossfade, latent, auto"),
    ('[idle]\npsi = 2', "idle.psi: 2 is out of range [0, 1]"),
    ('[binarize]\nwindo = 15', "binarize.windo: unknown parameter"),
    ('[binarize]\nwindow = "wide"', "binarize.window: expected int"),
    ('display = 3', "display: expected a table"),
    ('[camera\nfps = 3', "not valid TOML"),
])
def test_bad_config_is_refused_naming_the_key(tmp_path, text, message):
    """Each mistake gives a ConfigError (a ValueError) with the file and the key path."""
    path = tmp_path / "table.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_config_names_the_file(tmp_path):
    """A config path that does not exist is named, with what to pass instead."""
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        Config.load(tmp_path / "nope.toml")


def test_unreadable_configs_name_the_file(tmp_path):
    """A config that is not UTF-8, or a folder, is refused naming the path and what to do."""
    bad = tmp_path / "table.toml"
    bad.write_bytes(b"[display]\nmode = \"headless\"\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"table.toml: not UTF-8 text \(byte 28\); save the config as UTF-8"):
        Config.load(bad)
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        Config.load(tmp_path)


def test_every_section_is_a_typed_field():
    """The kiosk's sections are fields of Config like the table's: typed, with their defaults."""
    cfg = Config.from_dict({"serial": {"baudrate": 9600}, "watchdog": {"model_hang_s": 3}})
    assert cfg.serial == SerialConfig(baudrate=9600) and cfg.watchdog.model_hang_s == 3.0
    assert Config.from_dict({}).health.port == 8765 and Config().hours.always_open


def test_camera_section_embeds_the_camera_settings():
    """[camera] takes every CameraSettings field (the mode as resolution), so a real camera's patience
    is configured where its device is."""
    cfg = Config.from_dict({"camera": {"device": "2", "resolution": [640, 480], "fps": 15,
                                       "read_timeout": 0.5, "give_up_after": 3}})
    assert cfg.camera.resolution == (640, 480) and cfg.camera.fps == 15.0 and cfg.camera.device == "2"
    assert cfg.camera.settings.device == 2 and cfg.camera.settings.read_timeout == 0.5
    assert cfg.camera.settings.give_up_after == 3


def test_binarize_overrides_are_validated_at_load_and_applied_over_the_bundle():
    """[binarize] keys are checked when the file loads; at start they change only the keys given."""
    cfg = Config.from_dict({"binarize": {"k": 0.3}})
    bundle = BinarizeParams(window=31)
    applied = cfg.binarize.apply(bundle)
    assert applied.k == 0.3 and applied.window == 31
    assert Config().binarize.apply(bundle) == bundle


@pytest.mark.parametrize("text, message", [
    ('[tone]\ncontrast = nan', "tone.contrast: nan is not a finite number; give a number in [0.0, 10.0]"),
    ('[transition]\nduration_s = nan', "transition.duration_s: nan is not a finite number"),
    ('[idle]\nafter_s = nan', "idle.after_s: nan is not a finite number"),
    ('[idle]\nafter_s = -inf', "idle.after_s: -inf is not a finite number"),
    ('[watchdog]\nmodel_hang_s = inf', "watchdog.model_hang_s: inf is not a finite number"),
    ('[camera]\nfps = inf', "camera.fps: must be a positive number"),
    ('[camera]\nexposure = nan', "camera.exposure: must be a number or absent"),
    ('[binarize]\nk = nan', "binarize.k: must be a number in (0, 1]"),
    ('[binarize]\noffset = inf', "binarize.offset: must be a number in [0, 1)"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, text, message):
    """NaN passes a range check (both comparisons are false), so the file's nan and inf are refused
    on their own, with the key, as any value out of range is."""
    path = tmp_path / "table.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_the_console_and_sighup_share_the_one_validation():
    """A dict from the console (JSON's NaN and 1e999) meets the same check as the file."""
    with pytest.raises(ConfigError, match=r"console: tone.contrast: nan is not a finite number"):
        Config.from_dict({"tone": {"contrast": float("nan")}}, source="console")
    with pytest.raises(ConfigError, match=r"tone.brightness: inf is not a finite number"):
        Config.from_dict({"tone": {"brightness": 1e999}})
