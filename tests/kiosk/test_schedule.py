"""Opening hours: parsing and refusals, weekdays and exceptions, time zones, the next change."""
from __future__ import annotations

import datetime as dt

import pytest

from config.hours import OpeningHours, parse_spans
from kiosk.schedule import Schedule

HOURS = {
    "timezone": "Europe/Oslo",
    "default": "10:00-17:00",
    "monday": "closed",
    "thursday": "10:00-12:00, 13:00-21:00",
    "exceptions": [
        {"date": "2026-12-24", "hours": "10:00-14:00"},
        {"date": "2026-12-25", "hours": "closed"},
    ],
}
OSLO = dt.timezone(dt.timedelta(hours=1))  # winter time in Oslo


def at(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=OSLO)


def test_spans_parse_and_refuse():
    """'HH:MM-HH:MM' lists parse to minute spans; malformed, reversed or overlapping ranges are refused by key."""
    assert parse_spans("10:00-12:00, 13:00-17:30", "hours.x") == ((600, 720), (780, 1050))
    assert parse_spans("closed", "hours.x") == ()
    assert parse_spans("00:00-24:00", "hours.x") == ((0, 1440),)
    for bad, why in [("9-17", "expected"), ("18:00-09:00", "ends before it starts"), ("25:00-26:00", "time of day"),
                     ("10:00-13:00, 12:00-14:00", "overlap"), (17, "expected")]:
        with pytest.raises(ValueError, match=rf"hours\.friday: .*{why}"):
            parse_spans(bad, "hours.friday")


def test_weekdays_and_exceptions():
    """Open on a default weekday inside the hours; closed on Monday, at lunch on Thursday, on Christmas Day."""
    hours = OpeningHours.from_dict(HOURS)
    assert hours.is_open(at("2026-11-24", "10:00"))  # a Tuesday, opening minute
    assert not hours.is_open(at("2026-11-24", "17:00"))  # closing minute is closed
    assert not hours.is_open(at("2026-11-23", "12:00"))  # Monday
    assert hours.is_open(at("2026-11-26", "20:59")) and not hours.is_open(at("2026-11-26", "12:30"))
    assert hours.is_open(at("2026-12-24", "13:00")) and not hours.is_open(at("2026-12-24", "15:00"))
    assert not hours.is_open(at("2026-12-25", "12:00"))


def test_time_zone_is_applied_to_aware_times():
    """An aware UTC time is judged in the configured zone (09:30 UTC is 10:30 in Oslo: open)."""
    hours = OpeningHours.from_dict(HOURS)
    assert hours.is_open(dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.timezone.utc))
    assert not hours.is_open(dt.datetime(2026, 11, 24, 8, 30, tzinfo=dt.timezone.utc))


def test_next_change_skips_closed_days():
    """From Saturday evening the next change is Tuesday's opening (Sunday default-open is 10-17, so Sunday 10:00)."""
    hours = OpeningHours.from_dict(HOURS)
    assert hours.next_change(at("2026-11-28", "18:00")) == at("2026-11-29", "10:00")  # Sunday opens
    assert hours.next_change(at("2026-11-29", "12:00")) == at("2026-11-29", "17:00")
    assert hours.next_change(at("2026-11-29", "18:00")) == at("2026-11-24", "10:00") + dt.timedelta(days=7)


def test_missing_section_means_always_open_and_schedule_uses_the_clock():
    """No [hours] (or always_open) never closes; Schedule asks its injected clock."""
    assert OpeningHours.from_dict(None).is_open(at("2026-11-23", "03:00"))
    assert OpeningHours.from_dict({"always_open": True, "monday": "closed"}).is_open(at("2026-11-23", "12:00"))
    now = [at("2026-11-24", "09:59")]
    schedule = Schedule(OpeningHours.from_dict(HOURS), now=lambda: now[0])
    assert not schedule.is_open()
    now[0] = at("2026-11-24", "10:00")
    assert schedule.is_open() and schedule.next_change() == at("2026-11-24", "17:00")


def test_section_refusals_name_the_key():
    """Unknown keys, bad zones, bad exception dates are refused with hours.<key> in the message."""
    for data, key in [({"mondays": "closed"}, r"hours\.mondays"), ({"timezone": "Mars/Olympus"}, r"hours\.timezone"),
                      ({"exceptions": [{"date": "24.12.2026"}]}, r"hours\.exceptions\[0\]\.date"),
                      ({"exceptions": [{"hours": "closed"}]}, r"hours\.exceptions\[0\]"),
                      ({"always_open": "yes"}, r"hours\.always_open")]:
        with pytest.raises(ValueError, match=key):
            OpeningHours.from_dict(data)


def test_example_config_hours_block_is_valid_when_uncommented():
    """The commented [hours] example in config/example.toml parses once uncommented (operators copy it)."""
    import tomllib
    from pathlib import Path

    import config

    lines = (Path(config.__file__).parent / "example.toml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [hours]"))
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:].split("  #")[0])
    hours = OpeningHours.from_dict(tomllib.loads("\n".join(block))["hours"])
    assert not hours.always_open and not hours.is_open(at("2026-11-23", "12:00"))  # Monday closed
    assert hours.is_open(at("2026-11-26", "20:00"))


UTC = dt.timezone.utc


@pytest.mark.parametrize("configured", [True, False])
def test_next_opening_and_closing_are_right_on_both_dst_days(monkeypatch, configured):
    """Oslo's clocks go forward on Sun 29 March 2026 and back on Sun 25 October. With the zone
    configured, or left unset on a machine whose own zone is Oslo's, the next opening and
    closing on both days are 10:00 and 17:00 local (the UTC offset of that day, not today's)."""
    from config import hours as hours_module

    hours = {"default": "10:00-17:00"}
    if configured:
        hours["timezone"] = "Europe/Oslo"
    else:
        monkeypatch.setenv("TZ", "Europe/Oslo")  # the machine's own zone
        hours_module._zone.cache_clear()
    try:
        opening = OpeningHours.from_dict(hours)
        for saturday_evening, opens_utc, closes_utc in (
                (dt.datetime(2026, 3, 28, 17, 0, tzinfo=UTC), dt.datetime(2026, 3, 29, 8, 0, tzinfo=UTC),
                 dt.datetime(2026, 3, 29, 15, 0, tzinfo=UTC)),  # summer time: UTC+2 from Sunday 02:00
                (dt.datetime(2026, 10, 24, 16, 0, tzinfo=UTC), dt.datetime(2026, 10, 25, 9, 0, tzinfo=UTC),
                 dt.datetime(2026, 10, 25, 16, 0, tzinfo=UTC))):  # winter time: UTC+1 from Sunday 03:00
            nxt = opening.next_change(saturday_evening)
            assert nxt == opens_utc and f"{nxt:%a %H:%M}" == "Sun 10:00"
            assert not opening.is_open(opens_utc - dt.timedelta(minutes=1)) and opening.is_open(opens_utc)
            after = opening.next_change(opens_utc + dt.timedelta(minutes=1))
            assert after == closes_utc and f"{after:%a %H:%M}" == "Sun 17:00"
            # the kiosk's clock hands it today's fixed offset: the answer is the same
            today = saturday_evening.astimezone(dt.timezone(dt.timedelta(hours=1 if opens_utc.month == 3 else 2)))
            assert opening.next_change(today) == opens_utc
    finally:
        hours_module._zone.cache_clear()


def test_the_machines_zone_comes_from_tz_or_etc_localtime(monkeypatch):
    from config import hours as hours_module

    monkeypatch.setenv("TZ", "America/New_York")
    hours_module._zone.cache_clear()
    try:
        assert str(hours_module.machine_zone()) == "America/New_York"
        monkeypatch.setenv("TZ", "CET-1CEST")  # a POSIX rule string zoneinfo cannot name: today's offset
        assert hours_module.machine_zone().utcoffset(None) is not None
    finally:
        hours_module._zone.cache_clear()
