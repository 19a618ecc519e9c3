"""The systemd units and udev rules: `systemd-analyze verify` passes, and the promised settings are there."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ["newsnow.service", "newsnow-kiosk.service"]


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    """`systemd-analyze verify` reports nothing about the units except binaries this machine lacks (cage)."""
    for name in UNITS:
        shutil.copy(SYSTEMD / name, tmp_path / name)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *[str(tmp_path / n) for n in UNITS]],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    missing = {p for p in ("/usr/bin/cage",) if not Path(p).exists()}
    problems = [p for p in problems if not any(f"Command {m} is not executable" in p for m in missing)]
    assert problems == []


def test_table_service_promises():
    """newsnow.service: notify + watchdog, restart with rate limits, unprivileged with device groups, hardened."""
    u = unit("newsnow.service")
    s = u["Service"]
    assert s["Type"] == ["notify"] and int(s["WatchdogSec"][0]) > 0
    assert s["Restart"] == ["on-failure"]
    assert "StartLimitIntervalSec" in u["Unit"] and "StartLimitBurst" in u["Unit"]
    assert s["User"] == ["newsnow"]
    assert set(s["SupplementaryGroups"][0].split()) >= {"video", "dialout", "render"}
    for key in ("NoNewPrivileges", "PrivateTmp"):
        assert s[key] == ["yes"], key
    assert s["ProtectHome"] == ["read-only"]  # "yes" would hide /run/user and cage's Wayland socket
    assert s["ProtectSystem"] == ["strict"]
    assert {"/var/lib/newsnow", "/var/log/newsnow"} <= set(s["ReadWritePaths"][0].split())
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-video4linux", "char-ttyACM", "char-ttyUSB", "char-drm"} <= allowed
    assert "exec " in s["ExecStart"][0]  # the table is the main PID: READY/WATCHDOG accepted from it


def test_kiosk_display_unit_runs_cage_on_tty1():
    """newsnow-kiosk.service runs cage on tty1 in a logind (PAM) session as newsnow, restarting always."""
    s = unit("newsnow-kiosk.service")["Service"]
    assert s["ExecStart"][0].startswith("/usr/bin/cage ")
    assert s["TTYPath"] == ["/dev/tty1"] and s["User"] == ["newsnow"] and s["PAMName"] == ["newsnow-kiosk"]
    assert (SYSTEMD / "pam-newsnow-kiosk").read_text().count("pam_systemd.so") == 1


def test_udev_rules_name_camera_and_table():
    """The udev rules give /dev/newsnow-camera (video4linux, group video) and /dev/newsnow-table (tty, dialout)."""
    rules = [line for line in (SYSTEMD / "99-newsnow.rules").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    camera = next(r for r in rules if 'SYMLINK+="newsnow-camera"' in r)
    table = next(r for r in rules if 'SYMLINK+="newsnow-table"' in r)
    assert 'SUBSYSTEM=="video4linux"' in camera and 'GROUP="video"' in camera
    assert 'SUBSYSTEM=="tty"' in table and 'GROUP="dialout"' in table
    for rule in rules:  # every clause is KEY==value, KEY=value, KEY+=value or KEY{attr}... with quotes
        for clause in rule.split(", "):
            assert clause.count('"') == 2 and ("==" in clause or "=" in clause), clause


def test_the_table_comes_back_with_the_compositor():
    """cage restarting (Restart=always) stops the table through BindsTo=; the kiosk unit's Wants= and
    Before= start it again after the new compositor, instead of leaving the projector black."""
    table, kiosk = unit("newsnow.service")["Unit"], unit("newsnow-kiosk.service")
    assert table["BindsTo"] == ["newsnow-kiosk.service"] and "newsnow-kiosk.service" in table["After"]
    assert "newsnow.service" in " ".join(kiosk["Unit"]["Wants"]).split()
    assert kiosk["Unit"]["Before"] == ["newsnow.service"] and kiosk["Service"]["Restart"] == ["always"]
