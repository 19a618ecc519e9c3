"""installation.config: the example loads; bad files are refused naming the file and the key."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import installation
from installation import config as config_module
from installation.config import Config, ConfigError, register_section

EXAMPLE = Path(installation.__file__).parent / "example.toml"


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
    ('[camera]\nfps = 30\nexposur = 3', "camera.exposur: unknown key"),
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


def test_registered_section_is_validated_and_read_back(monkeypatch):
    """Another area's `[serial]` section is accepted once registered, validated like the rest."""
    monkeypatch.setattr(config_module, "_EXTRA_SECTIONS", {})
    monkeypatch.setattr(config_module, "SECTION_MODULES", [])  # only this test's section

    @dataclass(frozen=True)
    class Serial:
        port: str = "/dev/ttyACM0"
        baudrate: int = 115200

    register_section("serial", Serial)
    config = Config.from_dict({"serial": {"baudrate": 9600}})
    assert config.section("serial") == Serial(baudrate=9600)
    assert Config.from_dict({}).section("serial") == Serial()
    with pytest.raises(ConfigError, match="serial.baudrate: expected an integer"):
        Config.from_dict({"serial": {"baudrate": "fast"}})


def test_registered_section_with_its_own_from_dict(monkeypatch):
    """A section class that validates itself (from_dict(d, path)) has its ValueError reported as a ConfigError."""
    monkeypatch.setattr(config_module, "_EXTRA_SECTIONS", {})
    monkeypatch.setattr(config_module, "SECTION_MODULES", [])  # only this test's section

    class Hours:
        def __init__(self, d):
            self.d = d

        @classmethod
        def from_dict(cls, d, path):
            if "open" not in d:
                raise ValueError(f"{path}.open: missing")
            return cls(d)

    register_section("hours", Hours)
    assert Config.from_dict({"hours": {"open": "10:00"}}).section("hours").d == {"open": "10:00"}
    with pytest.raises(ConfigError, match="hours.open: missing"):
        Config.from_dict({"hours": {}}, source="t.toml")
