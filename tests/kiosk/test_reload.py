"""Live configuration: the sections an operator may change while the table runs reach the
running table and every table after it; the others are named; a bad file changes nothing."""
from __future__ import annotations

import threading

import pytest

from config import Config, changed_sections
from kiosk.kiosk import Kiosk
from kiosk.notify import Notifier
from table.assemble import open_table, prepare

BASE = '[camera]\nsource = "simulated"\nresolution = [320, 180]\n[display]\nmode = "headless"\nsize = [160, 120]\n'


def test_changed_sections_tells_live_from_restart():
    old = Config.from_dict({})
    new = Config.from_dict({"tone": {"contrast": 1.5}, "idle": {"after_s": 5}, "camera": {"fps": 15}})
    assert changed_sections(old, new) == (["tone", "idle"], ["camera"])
    kind = Config.from_dict({"transition": {"kind": "latent"}})
    assert changed_sections(old, kind) == ([], ["transition"])  # crossfade <-> latent is decided at start


@pytest.fixture
def running(tmp_path, tiny_bundle):
    path = tmp_path / "table.toml"
    path.write_text(BASE + f'[model]\nbundle = "{tiny_bundle}"\nthreads = 1\n')
    parts = prepare(Config.load(path))
    table = open_table(parts)
    kiosk = Kiosk(parts.config, notifier=Notifier({}), serve_health=False)
    kiosk.parts = parts
    kiosk.attach(table, source=parts.source)
    runner = threading.Thread(target=table.run, args=(20,), daemon=True)
    runner.start()
    yield path, parts, table, kiosk
    table.stop()
    runner.join(5)
    parts.close()
    table.display.close()


def test_reload_applies_the_live_sections_to_the_running_table(running):
    path, parts, table, kiosk = running
    k_before = table.sketcher.params.k
    path.write_text(path.read_text().replace("resolution = [320, 180]", "resolution = [640, 360]")
                    + "[tone]\ncontrast = 1.5\n[binarize]\nk = 0.31\n")
    assert kiosk.reload() == {"applied": ["binarize", "tone"], "needs_restart": ["camera"]}
    assert table.config.tone.contrast == 1.5 and table.sketcher.params.k == 0.31 != k_before
    assert table.config.camera.resolution == (320, 180)  # not live: the camera keeps its mode
    assert parts.config.tone.contrast == 1.5  # the next table (after the button) gets it too
    assert parts.sketcher.params.k == 0.31


def test_a_bad_reload_changes_nothing(running):
    path, parts, table, kiosk = running
    text = path.read_text()
    path.write_text(text + "[tone]\ncontrast = -1\n")
    result = kiosk.reload()
    assert result["applied"] == [] and "tone.contrast" in result["error"] and str(path) in result["error"]
    path.write_text(text + "[binarize]\nresolution = 64\n")  # valid alone, but not the bundle's grid
    result = kiosk.reload()
    assert "binarize.resolution 64 does not match the bundle's resolution 32" in result["error"]
    assert table.config.tone == Config().tone and table.sketcher.params.resolution == 32
