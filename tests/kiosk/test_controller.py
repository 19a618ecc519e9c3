"""The serial table controller against the pty device simulator: framing, retries,
events, and reconnection when the USB device disappears and returns."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from config.kiosk import SerialConfig
from kiosk.controller import ControllerError, Event, TableController, crc8, frame, unframe
from kiosk.controller_sim import TableSimulator
from tests.waiting import wait_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "serial-protocol.md"


def fast_config(port: str, **kw) -> SerialConfig:
    values = dict(port=port, reply_timeout_s=0.25, retries=2, reconnect_max_s=0.2, poll_s=0.5, led_level=180)
    values.update(kw)
    return SerialConfig(**values)



@pytest.fixture
def link():
    events: list[Event] = []
    with TableSimulator() as sim:
        controller = TableController(fast_config(sim.path), on_event=events.append).start()
        try:
            assert controller.wait_connected(3.0), controller.last_error
            yield sim, controller, events
        finally:
            controller.close()


def test_crc8_check_value_and_framing_round_trip():
    """CRC-8/SMBUS gives F4 for '123456789'; a framed line unframes to its body and a flipped byte is refused."""
    assert crc8(b"123456789") == 0xF4
    line = frame("7 LED 128")
    assert unframe(line) == "7 LED 128"
    assert unframe(line.replace(b"128", b"129")) is None
    assert unframe(b"7 LED 128\n") is None  # no checksum


def test_protocol_document_examples_are_correctly_framed():
    """Every example line in docs/serial-protocol.md carries the right checksum (the firmware is written from it)."""
    lines = re.findall(r"(?:->|<-) (.+\*[0-9A-F]{2})$", DOC.read_text(), flags=re.M)
    assert len(lines) >= 8
    for text in lines:
        assert unframe(text.encode() + b"\n") is not None, text


def test_connect_syncs_wanted_state(link):
    """On connect the controller says HELLO and sends the configured LED level; the projector follows set_projector."""
    sim, controller, _ = link
    assert controller.status()["device"].startswith("newsnow-table-sim")
    assert sim.led == 180 and controller.led == 180
    assert controller.set_projector(True) is True
    assert sim.projector is True and controller.status()["projector"] == "on"
    assert controller.temperature_c == pytest.approx(38.5)


def test_a_sync_before_the_hours_decide_reads_the_projector_switch(caplog):
    """Synced before anyone asked for the projector: the controller reads the switch (PROJ?), so
    the status and the serial_synced log line say on or off, never None."""
    import logging

    caplog.set_level(logging.INFO, logger="kiosk.controller")
    with TableSimulator() as sim:
        sim.projector = True
        controller = TableController(fast_config(sim.path)).start()
        try:
            assert controller.wait_connected(3.0), controller.last_error
            assert wait_for(lambda: controller.synced)
            assert controller.status()["projector"] == "on"
        finally:
            controller.close()
    synced = [r.getMessage() for r in caplog.records if "event=serial_synced" in r.getMessage()]
    assert synced and synced[0].endswith("projector=on")


def test_lost_and_damaged_replies_are_retried_without_acting_twice(link):
    """A dropped reply and a reply with a bad checksum are retried with the same seq; the device acts once."""
    sim, controller, _ = link
    sim.drop_replies(1)
    assert controller.set_led(90) is True
    sim.corrupt_replies(1)
    assert controller.read_temperature() == pytest.approx(38.5)
    status = controller.status()
    assert status["retries"] >= 2 and status["bad_lines"] >= 1
    led_commands = [body for body in sim.received if body.split()[1:2] == ["LED"] and body.endswith(" 90")]
    assert len(led_commands) == 2 and led_commands[0] == led_commands[1]  # same seq sent twice
    assert sim.led == 90


def test_a_reply_in_pieces_is_joined(link):
    """A reply whose bytes arrive 80 ms apart (longer than the port's read timeout) is one line, not two
    damaged ones: no retry, no bad line."""
    sim, controller, _ = link
    before = controller.status()
    sim.split_replies(1)
    assert controller.command("LED?") == ["180"]
    after = controller.status()
    assert after["retries"] == before["retries"] and after["bad_lines"] == before["bad_lines"]


def test_refusal_raises_with_the_device_reason(link):
    """An ERR reply is final: the command raises ControllerError naming the port and the device's reason."""
    _, controller, _ = link
    with pytest.raises(ControllerError, match="ERR VERB FOG"):
        controller.command("FOG", 1)
    with pytest.raises(ValueError, match="0 to 255"):
        controller.set_led(300)


def test_no_reply_times_out_after_the_retries(link):
    """A device that never answers makes a command fail after 1 + retries tries, within their timeouts."""
    sim, controller, _ = link
    sim.drop_replies(10)
    t0 = time.monotonic()
    with pytest.raises(ControllerError, match="failed after 3 tries"):
        controller.command("PING")
    assert time.monotonic() - t0 < 1.5  # 3 tries of 0.25 s
    sim.heal()  # let the poller talk again


def test_button_event_reaches_the_handler(link):
    """An unsolicited `! BUTTON NEW_SHEET` line arrives as an Event at the on_event handler."""
    sim, _, events = link
    sim.press_button()
    assert wait_for(lambda: Event("BUTTON", ("NEW_SHEET",)) in events)


def test_unplug_and_replug_reconnects_and_reapplies_state(link):
    """USB gone: commands fail fast and are remembered; the device back (rebooted, dark): state is sent again."""
    sim, controller, _ = link
    controller.set_projector(True)
    sim.unplug()
    assert wait_for(lambda: not controller.connected)
    t0 = time.monotonic()
    assert controller.set_projector(False) is False  # not connected: remembered, not sent
    assert time.monotonic() - t0 < 0.2
    time.sleep(0.5)  # a few reopen attempts with back-off while it is away
    sim.replug()
    assert sim.led == 0 and sim.projector is False  # the board came back dark
    assert controller.wait_connected(3.0)
    assert wait_for(lambda: sim.led == 180)
    assert sim.projector is False  # the wish made while unplugged
    status = controller.status()
    assert status["connects"] == 2 and status["disconnects"] == 1


def test_an_open_port_whose_device_is_silent_is_not_connected(link):
    """Status says connected only once the device has answered HELLO on the link: a board
    that comes back on the bus but stays silent is what the operator must hear about."""
    sim, controller, _ = link
    connects = controller.connects
    sim.drop_replies(10_000)
    sim.unplug()
    time.sleep(0.3)
    sim.replug()
    assert wait_for(lambda: controller.connects > connects, 5.0)  # the port is open again
    time.sleep(1.0)  # HELLO's three tries of 0.25 s, unanswered
    status = controller.status()
    assert not status["connected"] and status["device"] == ""
    from kiosk.commands import format_status
    line = next(l for l in format_status({"serial": status}).splitlines() if sim.path in l)
    assert "DISCONNECTED" in line and "HELLO failed after 3 tries" in line, line  # what `newsnow status` prints
    sim.heal()
    assert wait_for(lambda: controller.status()["connected"], 5.0), controller.last_error
    assert controller.status()["device"]


def test_device_reboot_is_resynced(link):
    """A `! BOOT` event (the board reset on its own) makes the controller send LED and projector again."""
    sim, controller, _ = link
    controller.set_projector(True)
    sim.reboot()
    assert wait_for(lambda: sim.led == 180 and sim.projector is True)


def test_missing_device_at_start_is_retried_until_it_appears(tmp_path):
    """Starting without the device is no error: the controller keeps trying and connects when it is plugged."""
    link_path = tmp_path / "newsnow-table"
    controller = TableController(fast_config(str(link_path))).start()
    try:
        time.sleep(0.3)
        assert not controller.connected and "could not open port" in controller.last_error
        with TableSimulator(link_path) as sim:
            assert controller.wait_connected(3.0)
            assert sim.led == 180
    finally:
        controller.close()


def test_serial_config_refuses_bad_values():
    """[serial], [health] and [watchdog] are checked by the table's config loader: unknown keys, wrong types
    and out-of-range values are refused with the file and the key named."""
    from config import Config, ConfigError

    config = Config.from_dict({"serial": {"port": "/dev/newsnow-table", "retries": 1}, "health": {"port": 0}})
    assert config.serial.retries == 1 and config.health.port == 0
    assert config.watchdog.model_hang_s == 20.0  # defaults without the table
    for data, message in [({"serial": {"baud": 9600}}, r"table\.toml: serial\.baud: unknown key"),
                          ({"serial": {"baudrate": 1234}}, r"serial\.baudrate: expected one of 9600"),
                          ({"serial": {"led_level": "full"}}, r"serial\.led_level: expected an integer"),
                          ({"health": {"port": 70000}}, r"health\.port: 70000 is out of range"),
                          ({"watchdog": {"model_hang_s": 0}}, r"watchdog\.model_hang_s: 0 is out of range")]:
        with pytest.raises(ConfigError, match=message):
            Config.from_dict(data, source="table.toml")
    with pytest.raises(ValueError, match="serial.port"):
        TableController(SerialConfig())


def test_a_chattering_device_does_not_flood_the_log(link, caplog):
    """2,000 device events within a second: every one reaches the handler and is counted, but the log
    gets the first of each kind and a count, not 2,000 lines."""
    import logging

    sim, controller, events = link
    caplog.set_level(logging.INFO, logger="kiosk.controller")
    for _ in range(2000):
        sim.press_button()
    assert wait_for(lambda: len(events) == 2000, timeout=10)
    assert controller.status()["events"] >= 2000
    lines = [r for r in caplog.records if "event=serial_event" in r.getMessage()]
    assert 1 <= len(lines) <= 3
