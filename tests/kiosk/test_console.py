"""The operators' console: the live view, the live settings through the validated config
path (saved with a backup on request), the actions, and the token."""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

from config import Config, ConfigError
from kiosk.kiosk import Kiosk
from kiosk.run import model_info
from kiosk.notify import Notifier
from table.assemble import open_table, prepare

BASE = ('[camera]\nsource = "simulated"\nresolution = [320, 180]\n[display]\nmode = "headless"\n'
        'size = [160, 120]\n[health]\nport = 0\n')


def page_token(base: str, token: str | None = None) -> str:
    """The per-start console token the page carries (what the browser sends with a change)."""
    page = urllib.request.urlopen(base + "/" + (f"?token={token}" if token else ""), timeout=5).read().decode()
    return re.search(r'<meta name="newsnow-console" content="([^"]+)">', page).group(1)


def request(url, body=None, token=None, console=True, headers=None):
    """GET, or POST `body` as JSON with the page's console token (as the page does)."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None and console:
        base = url.split("/api/")[0]
        headers.setdefault("X-NewSnow-Console", page_token(base, token))
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return reply.status, reply.headers.get("Content-Type"), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


@pytest.fixture
def console_table(tmp_path, tiny_bundle):
    def start():
        path = tmp_path / "table.toml"
        path.write_text(BASE + f'[model]\nbundle = "{tiny_bundle}"\nthreads = 1\n')
        parts = prepare(Config.load(path))
        table = open_table(parts)
        kiosk = Kiosk(parts.config, notifier=Notifier({}))
        kiosk.parts, kiosk.model = parts, model_info(parts)
        kiosk.attach(table, source=parts.source)
        kiosk.start()
        runner = threading.Thread(target=table.run, args=(30,), daemon=True)
        runner.start()
        started.append((parts, table, kiosk, runner))
        return path, table, kiosk, kiosk.health.url

    started = []
    yield start
    for parts, table, kiosk, runner in started:
        table.stop()
        runner.join(5)
        kiosk.stop()
        parts.close()
        table.display.close()


def test_the_page_the_live_view_and_the_settings(console_table):
    path, table, kiosk, url = console_table()
    code, kind, page = request(url + "/")
    assert code == 200 and kind.startswith("text/html") and b"New Snow" in page and b"/view.jpg" in page
    deadline = time.monotonic() + 10
    while table.latest_picture is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the answer's fade onto the projector
    code, kind, jpeg = request(url + "/view.jpg")
    assert code == 200 and kind == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    import cv2
    import numpy as np

    view = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert view.shape[0] == 160 and view.shape[1] > 4 * 160  # four panels side by side
    assert view[:, -100:].mean() > 5  # the projector panel shows a drawing, not black
    code, _, body = request(url + "/api/settings")
    settings = json.loads(body)
    assert settings["sections"]["tone"]["contrast"] == {"value": 1.0, "min": 0.0, "max": 10.0, "type": "float",
                                                        "label": "Contrast", "unit": "x", "slider": True,
                                                        "step": 0.01}
    assert settings["sections"]["binarize"]["method"]["type"] == "choice"
    assert "resolution" not in settings["sections"]["binarize"] and "kind" not in settings["sections"]["transition"]
    assert settings["can_save"] is True
    status = json.loads(request(url + "/status")[2])
    assert "providers" not in status and set(status["camera"]) == {"state", "fps", "source", "last_frame_age_s",
                                                                    "frames"}
    assert status["model"]["providers"] == ["CPUExecutionProvider"]  # what the session runs on, not all installed
    assert status["faults"]["inference"] == 0 and status["calibration"] == {"calibrated": False, "age_s": None}
    from kiosk.commands import format_status

    text = format_status(status)
    assert "None" not in text and "?" not in text


def test_a_change_is_applied_validated_and_saved_on_request(console_table):
    path, table, kiosk, url = console_table()
    before = path.read_text()
    code, _, body = request(url + "/api/settings", {"changes": {"tone": {"contrast": 1.4}, "binarize": {"k": 0.25}}})
    assert code == 200 and json.loads(body) == {"applied": ["binarize", "tone"], "needs_restart": [],
                                                "unsaved": {"binarize": {"k": 0.25}, "tone": {"contrast": 1.4}}}
    assert table.config.tone.contrast == 1.4 and table.sketcher.params.k == 0.25
    assert path.read_text() == before  # not saved unless asked
    code, _, body = request(url + "/api/settings", {"changes": {"tone": {"contrast": -3}}})
    assert code == 400 and "tone.contrast: -3 is out of range" in json.loads(body)["error"]
    code, _, body = request(url + "/api/settings", {"changes": {"camera": {"fps": 10}}})
    assert code == 400 and "cannot change while the table runs" in json.loads(body)["error"]
    assert table.config.tone.contrast == 1.4  # a refused change changes nothing
    code, _, body = request(url + "/api/settings", {"changes": {"idle": {"after_s": 9.0}}, "save": True})
    assert code == 200 and json.loads(body)["saved"] == str(path)
    saved = Config.load(path)
    assert saved.idle.after_s == 9.0 and saved.tone.contrast == 1.4 and saved.binarize.values == {"k": 0.25}
    assert (path.parent / "table.toml.bak").read_text() == before


def test_new_sheet_from_the_console_stops_the_table_for_a_fresh_one(console_table):
    path, table, kiosk, url = console_table()
    deadline = time.monotonic() + 10
    while kiosk.display_frames == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    code, _, body = request(url + "/api/new-sheet", {})
    assert json.loads(body) == {"new_sheet": False}  # nothing here starts a next table (as in the demo)
    kiosk.can_restart_tables = True  # as under run_kiosk
    code, _, body = request(url + "/api/new-sheet", {})
    assert code == 200 and json.loads(body) == {"new_sheet": True}
    assert kiosk.button_presses == 1
    code, _, body = request(url + "/api/reload-model", {})
    assert json.loads(body) == {"reload_model": False}  # nothing here would start the reloaded table


def test_every_page_needs_the_token_when_one_is_set():
    token = "a-long-enough-console-token"
    cfg = Config.from_dict({"health": {"port": 0, "token": token}})
    guarded = Kiosk(cfg, notifier=Notifier({})).start()
    try:
        base = guarded.health.url
        for page in ("/status", "/metrics", "/", "/api/settings"):
            assert request(base + page)[0] == 401, page
        assert request(base + "/status", token=token)[0] == 200
        assert request(base + "/?token=" + token)[0] == 200
        assert request(base + "/api/new-sheet", {}, token="wrong-token-wrong-token", console=False)[0] == 401
        assert request(base + "/api/new-sheet", {}, token=token)[0] == 200
    finally:
        guarded.stop()


def test_a_console_beyond_this_machine_needs_a_token():
    with pytest.raises(ConfigError, match="health.token: health.host = '0.0.0.0' reaches beyond this machine"):
        Config.from_dict({"health": {"host": "0.0.0.0"}})
    assert Config.from_dict({"health": {"host": "0.0.0.0", "token": "x" * 16}}).health.token == "x" * 16


def test_the_console_in_a_real_browser(console_table, tmp_path):
    """Headless Chromium loads the console, shows the live view and the state, changes tone.contrast
    with the form, and the running table picks it up."""
    from tests.kiosk.browser import Browser, chromium

    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    path, table, kiosk, url = console_table()
    deadline = time.monotonic() + 10
    while kiosk.snapshot()["fps"]["display"] in (None, 0.0) and time.monotonic() < deadline:
        time.sleep(0.1)
    kiosk.history.sample()
    kiosk.history.sample()
    kiosk.history._samples[0]["t"] -= 600  # ten minutes of history, as the page would find after lunch
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=url + "/")
        browser.wait_for("document.getElementById('view').naturalWidth > 640")  # the live view arrived
        browser.wait_for("['running', 'idle'].includes(document.getElementById('state').textContent)")
        browser.wait_for("document.getElementById('tone.contrast') !== null")
        browser.evaluate("document.getElementById('tone.contrast').value = '1.7';"
                         "document.getElementById('apply').click(); true")
        message = browser.wait_for("document.getElementById('message').textContent")
        assert message.startswith("applied: tone"), message
        assert table.config.tone.contrast == 1.7
        # labels, units, ranges and a slider; the greyed-out buttons' reasons; the plots drawn
        assert browser.evaluate("document.querySelector('label[for=\"tone.contrast\"]').textContent") == "Contrast"
        assert browser.evaluate("document.getElementById('tone.contrast.slider').max") == "10"
        assert "grey levels" in browser.evaluate("document.getElementById('settings').textContent")
        assert browser.evaluate("document.getElementById('new-sheet').disabled")
        assert "single table" in browser.evaluate("document.getElementById('why').textContent")
        green = browser.wait_for("""(() => { const d = document.getElementById('plot-fps').getContext('2d')
            .getImageData(0, 0, 320, 70).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 120 && d[i] < 90 && d[i + 3] > 0) n++; return n; })()""")
        assert green > 20  # the display-fps line
        browser.evaluate("document.getElementById('tone.contrast').value = '-2';"
                         "document.getElementById('apply').click(); true")
        browser.wait_for("document.getElementById('message').className === 'error'")
        assert "out of range" in browser.evaluate("document.getElementById('message').textContent")
        assert table.config.tone.contrast == 1.7
    finally:
        browser.close()


def test_apply_with_nothing_changed_changes_nothing(console_table, caplog):
    """Issue 24: Apply with no field changed is built from what runs, not from the file: the file
    edited since (a camera mode, an idle time) does not come in, no 'needs a restart', no warning."""
    import logging

    path, table, kiosk, url = console_table()
    code, _, body = request(url + "/api/settings", {"changes": {"idle": {"after_s": 6.0}}})
    assert code == 200 and table.config.idle.after_s == 6.0
    path.write_text(path.read_text().replace("resolution = [320, 180]", "resolution = [640, 360]")
                    + "[idle]\nafter_s = 20.0\n")
    caplog.set_level(logging.INFO)
    caplog.clear()  # only what Apply logs: the set-up's own warning (an unevaluated test model) is not its
    code, _, body = request(url + "/api/settings", {"changes": {}})
    assert code == 200 and json.loads(body) == {"applied": [], "needs_restart": [],
                                                "unsaved": {"idle": {"after_s": 6.0}}}
    assert table.config.idle.after_s == 6.0 and table.config.camera.resolution == (320, 180)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_every_setting_has_a_label_a_unit_and_the_range_the_validation_enforces(console_table):
    """Each field's max is accepted and one step above it is refused, binarize's included (their
    ranges were null); sliders where the range is narrow."""
    path, table, kiosk, url = console_table()
    sections = json.loads(request(url + "/api/settings")[2])["sections"]
    numeric = 0
    for section, fields in sections.items():
        for key, f in fields.items():
            assert f["label"] and f["label"] != key, (section, key)
            if f["type"] not in ("int", "float"):
                continue
            numeric += 1
            assert f["min"] is not None and f["max"] is not None, (section, key)
            assert f["slider"] == (f["max"] - f["min"] <= 256), (section, key)
            cases = ((f["max"], not f.get("max_open")), (f["max"] + f["step"], False), (f["min"], not f.get("min_open")),
                     (f["min"] - f["step"], False))
            for value, ok in cases:
                value = int(value) if f["type"] == "int" else value
                code, _, body = request(url + "/api/settings", {"changes": {section: {key: value}}})
                assert (code == 200) == ok, (section, key, value, body)
                if not ok:
                    assert f"{section}.{key}" in json.loads(body)["error"]
            request(url + "/api/settings", {"changes": {section: {key: f["value"]}}})  # back as it was
    assert numeric >= 18
    assert sections["binarize"]["min_depth"]["unit"] == "grey levels" and sections["idle"]["after_s"]["unit"] == "s"
    assert sections["idle"]["after_s"]["slider"] is False and sections["tone"]["gamma"]["slider"] is True


def test_greyed_out_buttons_say_why(tmp_path):
    """Without a config file and outside `newsnow run` (the demo) the three buttons are off, each with
    its reason; the page shows the reasons."""
    kiosk = Kiosk(Config.from_dict({"health": {"port": 0}}), notifier=Notifier({})).start()
    try:
        actions = json.loads(request(kiosk.health.url + "/api/settings")[2])["actions"]
        assert actions["save"] == {"enabled": False, "why": actions["save"]["why"]}
        assert "without a config file" in actions["save"]["why"]
        assert "single table" in actions["new_sheet"]["why"] and "newsnow run" in actions["reload_model"]["why"]
        kiosk.can_restart_tables = kiosk.can_reload_model = True
        actions = json.loads(request(kiosk.health.url + "/api/settings")[2])["actions"]
        assert actions["new_sheet"] == {"enabled": True, "why": ""}
    finally:
        kiosk.stop()


@pytest.fixture
def small_mount(tmp_path):
    """A 256 KiB tmpfs (root only), for a folder made read-only or a disk made full; skipped
    where it cannot be mounted."""
    import subprocess

    where = tmp_path / "etc"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("failure", ["read-only", "full"])
def test_a_failed_save_leaves_the_change_applied_and_unsaved(small_mount, tiny_bundle, failure):
    """The config folder read-only or its disk full: Apply and save answers that the change is applied
    but not saved, the file stays whole, the console lists the change as unsaved, and the next Apply of
    another setting keeps it; once the disk has room, saving writes both."""
    import subprocess

    path = small_mount / "table.toml"
    path.write_text(BASE + f'[model]\nbundle = "{tiny_bundle}"\nthreads = 1\n')
    before = path.read_text()
    kiosk = Kiosk(Config.load(path), notifier=Notifier({})).start()
    ballast = small_mount / "ballast"
    try:
        url = kiosk.health.url
        if failure == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
        else:
            with open(ballast, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass
        code, _, body = request(url + "/api/settings", {"changes": {"tone": {"contrast": 2.5}}, "save": True})
        answer = json.loads(body)
        assert code == 200 and answer["applied"] == ["tone"] and "saved" not in answer
        assert "cannot save the config" in answer["save_error"] and str(path) in answer["save_error"]
        assert kiosk.config.tone.contrast == 2.5 and path.read_text() == before
        assert json.loads(request(url + "/api/settings")[2])["unsaved"] == {"tone": {"contrast": 2.5}}
        code, _, body = request(url + "/api/settings", {"changes": {"idle": {"after_s": 7.0}}})
        assert kiosk.config.tone.contrast == 2.5 and kiosk.config.idle.after_s == 7.0  # the first one stays
        assert json.loads(body)["unsaved"] == {"tone": {"contrast": 2.5}, "idle": {"after_s": 7.0}}
        if failure == "read-only":
            subprocess.run(["mount", "-o", "remount,rw", str(small_mount)], check=True)
        else:
            ballast.unlink()
        code, _, body = request(url + "/api/settings", {"changes": {}, "save": True})
        assert json.loads(body)["saved"] == str(path) and json.loads(body)["unsaved"] == {}
        saved = Config.load(path)
        assert saved.tone.contrast == 2.5 and saved.idle.after_s == 7.0
    finally:
        kiosk.stop()


def test_the_last_hour_is_kept_and_served_for_the_plots():
    """The kiosk samples the status every step (without anyone looking) and keeps an hour of it."""
    from kiosk.history import History

    clock = [1_000_000.0]
    states = iter([{"state": "running", "fps": {"display": 30.0}, "stroke_latency_ms": {"p95": 80.0},
                    "faults": {"camera": 1, "inference": 2}, "camera": {"last_frame_age_s": 0.03}}] * 400)
    history = History(lambda: next(states), step_s=10.0, clock=lambda: clock[0])
    for _ in range(400):
        history.sample()
        clock[0] += 10.0
    kept = history.to_dict()
    assert kept["step_s"] == 10.0 and len(kept["samples"]) == 360  # one hour
    assert kept["samples"][-1] == {"t": 1_003_990.0, "state": "running", "display_fps": 30.0, "stroke_p95_ms": 80.0,
                                   "faults": 3, "camera_age_s": 0.03}
    kiosk = Kiosk(Config.from_dict({"health": {"port": 0}}), notifier=Notifier({})).start()
    try:
        kiosk.history.sample()
        served = json.loads(request(kiosk.health.url + "/api/history")[2])
        assert len(served["samples"]) == 1 and served["samples"][0]["state"] == "starting"
    finally:
        kiosk.stop()


def test_apply_in_the_demo_keeps_the_demos_settings(tiny_bundle, caplog):
    """Issue 24, in the demo (no config file; idle.after_s set to 6 by the demo): Apply with nothing
    changed applies nothing and needs no restart; a tone change leaves idle.after_s and the camera be."""
    import dataclasses
    import logging

    from kiosk.run import demo_kiosk

    config = Config.from_dict({"camera": {"source": "simulated", "resolution": [320, 180]},
                               "display": {"mode": "headless", "size": [160, 120]}, "health": {"port": 0},
                               "model": {"threads": 1}})
    config = dataclasses.replace(config, idle=dataclasses.replace(config.idle, after_s=6.0), path="")
    parts = prepare(config, bundle=tiny_bundle)
    table = open_table(parts)
    kiosk = demo_kiosk(parts, table)
    runner = threading.Thread(target=table.run, args=(20,), daemon=True)
    runner.start()
    try:
        url = kiosk.health.url
        caplog.set_level(logging.INFO)
        code, _, body = request(url + "/api/settings", {"changes": {}})
        assert code == 200 and json.loads(body) == {"applied": [], "needs_restart": [], "unsaved": {}}
        code, _, body = request(url + "/api/settings", {"changes": {"tone": {"contrast": 1.3}}})
        assert json.loads(body)["applied"] == ["tone"] and json.loads(body)["needs_restart"] == []
        assert table.config.idle.after_s == 6.0 and table.config.tone.contrast == 1.3
        assert table.config.camera.source == "simulated"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("kiosk")]
        assert json.loads(request(url + "/api/settings")[2])["actions"]["save"]["enabled"] is False
    finally:
        table.stop()
        runner.join(5)
        kiosk.stop()
        parts.close()
        table.display.close()


def test_nan_from_the_console_is_refused_naming_the_field(console_table):
    """JSON's NaN and 1e999 reach the same validation as the file: 400 with the field, nothing applied
    (a NaN contrast blacked the projector)."""
    path, table, kiosk, url = console_table()
    token = page_token(url)
    for body, field in ((b'{"changes": {"tone": {"contrast": NaN}}}', "tone.contrast"),
                        (b'{"changes": {"transition": {"duration_s": NaN}}}', "transition.duration_s"),
                        (b'{"changes": {"idle": {"after_s": 1e999}}}', "idle.after_s")):
        req = urllib.request.Request(url + "/api/settings", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "X-NewSnow-Console": token})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 400
        assert f"{field}: " in (error := json.loads(info.value.read())["error"]) and "not a finite number" in error
    assert table.config.tone.contrast == 1.0 and table.config.transition.duration_s == 0.5
