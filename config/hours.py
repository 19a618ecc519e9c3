"""The `[hours]` config section: when the table is on for visitors.

The `[hours]` config section gives the hours per weekday and exceptions for given
dates (holidays, late openings). Outside the hours the kiosk switches the projector
off over serial and lets the loop sleep; when the hours start again it wakes by
itself (kiosk/schedule.py). The time is passed in, so tests can walk a whole week in microseconds.

    [hours]
    timezone = "Europe/Oslo"          # optional; default: the machine's own zone (TZ, /etc/localtime)
    default = "10:00-17:00"           # days not listed below
    monday = "closed"
    thursday = "10:00-12:00, 13:00-21:00"
    exceptions = [
      { date = "2026-12-24", hours = "10:00-14:00" },
      { date = "2026-12-25", hours = "closed" },
    ]

No `[hours]` section (or `always_open = true`) means the table is always open.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_FORMAT_HELP = 'expected "HH:MM-HH:MM" ranges separated by commas (e.g. "10:00-12:00, 13:00-17:00") or "closed"'

Span = tuple[int, int]  # minutes after midnight, [start, end)


def machine_zone() -> dt.tzinfo:
    """The machine's own time zone with its rules (TZ, else /etc/localtime): a later day gets
    its own UTC offset, so the next opening is right across a DST change. Only where neither
    names a zone, today's fixed offset."""
    return _zone(os.environ.get("TZ", ""))


@functools.lru_cache(maxsize=4)
def _zone(tz: str) -> dt.tzinfo:
    name = tz.lstrip(":")
    try:
        if name.startswith("/"):
            with open(name, "rb") as f:
                return ZoneInfo.from_file(f, key=name)
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):  # a POSIX TZ string, or no zone file
        return dt.datetime.now().astimezone().tzinfo


def parse_spans(text, where: str) -> tuple[Span, ...]:
    """'10:00-12:00, 13:00-17:00' -> ((600, 720), (780, 1020)); 'closed' -> ()."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: {_FORMAT_HELP}, got {text!r}")
    if text.strip().lower() == "closed":
        return ()
    spans = []
    for part in text.split(","):
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"{where}: {_FORMAT_HELP}, got {text!r}")
        h0, m0, h1, m1 = (int(g) for g in m.groups())
        start, end = h0 * 60 + m0, h1 * 60 + m1
        if h0 > 23 or m0 > 59 or m1 > 59 or end > 24 * 60:
            raise ValueError(f"{where}: {part.strip()!r} is not a time of day (00:00 to 24:00)")
        if end <= start:
            raise ValueError(
                f"{where}: {part.strip()!r} ends before it starts; split a range past midnight "
                f"into '...-24:00' on one day and '00:00-...' on the next"
            )
        spans.append((start, end))
    spans.sort()
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ValueError(f"{where}: ranges overlap in {text!r}")
    return tuple(spans)


@dataclass(frozen=True)
class OpeningHours:
    """Validated opening hours; `is_open(when)` answers for an aware or naive datetime."""

    weekly: tuple[tuple[Span, ...], ...] = ((((0, 24 * 60),),) * 7)
    exceptions: dict[dt.date, tuple[Span, ...]] = field(default_factory=dict)
    timezone: str | None = None
    always_open: bool = True

    @classmethod
    def from_dict(cls, d: dict | None, path: str = "hours") -> "OpeningHours":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a table of weekday hours, got {type(d).__name__}")
        known = {"timezone", "default", "always_open", "exceptions", *WEEKDAYS}
        for key in d:
            if key not in known:
                raise ValueError(f"{path}.{key}: unknown key; expected one of {', '.join(sorted(known))}")
        always_open = d.get("always_open", False)
        if not isinstance(always_open, bool):
            raise ValueError(f"{path}.always_open: expected true or false, got {always_open!r}")
        timezone = d.get("timezone")
        if timezone is not None:
            try:
                ZoneInfo(str(timezone))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"{path}.timezone: unknown time zone {timezone!r}; use an IANA name such as "
                    f"'Europe/Oslo' (install the tzdata package if names are missing)"
                ) from None
        if "default" in d:
            default = parse_spans(d["default"], f"{path}.default")
        elif any(day in d for day in WEEKDAYS):
            default = ()  # days left out are closed once any day is given
        else:
            default = ((0, 24 * 60),)
        weekly = tuple(
            parse_spans(d[day], f"{path}.{day}") if day in d else default for day in WEEKDAYS
        )
        exceptions: dict[dt.date, tuple[Span, ...]] = {}
        raw = d.get("exceptions", [])
        if not isinstance(raw, list):
            raise ValueError(f"{path}.exceptions: expected a list of {{date = ..., hours = ...}}")
        for i, item in enumerate(raw):
            where = f"{path}.exceptions[{i}]"
            if not isinstance(item, dict) or set(item) - {"date", "hours", "note"} or "date" not in item:
                raise ValueError(f"{where}: expected {{ date = \"YYYY-MM-DD\", hours = \"...\" }}")
            date = item["date"]
            if isinstance(date, str):
                try:
                    date = dt.date.fromisoformat(date)
                except ValueError:
                    raise ValueError(f"{where}.date: expected YYYY-MM-DD, got {item['date']!r}") from None
            if not isinstance(date, dt.date) or isinstance(date, dt.datetime):
                raise ValueError(f"{where}.date: expected YYYY-MM-DD, got {item['date']!r}")
            exceptions[date] = parse_spans(item.get("hours", "closed"), f"{where}.hours")
        return cls(weekly=weekly, exceptions=exceptions, timezone=timezone, always_open=always_open)

    def zone(self) -> dt.tzinfo:
        """The zone the hours are read in: the configured one, else the machine's."""
        return ZoneInfo(self.timezone) if self.timezone is not None else machine_zone()

    def _local(self, when: dt.datetime) -> dt.datetime:
        zone = self.zone()
        return when.astimezone(zone) if when.tzinfo else when.replace(tzinfo=zone)

    def spans_on(self, day: dt.date) -> tuple[Span, ...]:
        if day in self.exceptions:
            return self.exceptions[day]
        return self.weekly[day.weekday()]

    def is_open(self, when: dt.datetime) -> bool:
        if self.always_open:
            return True
        local = self._local(when)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.spans_on(local.date()))

    def next_change(self, when: dt.datetime, horizon_days: int = 14) -> dt.datetime | None:
        """The next time the table opens or closes after `when` (local time), None if never."""
        if self.always_open:
            return None
        local = self._local(when)
        now_open = self.is_open(local)
        for offset in range(horizon_days + 1):
            day = local.date() + dt.timedelta(days=offset)
            edges = sorted({m for span in self.spans_on(day) for m in span} | {0})
            for minute in edges:
                t = dt.datetime.combine(day, dt.time(), tzinfo=local.tzinfo) + dt.timedelta(minutes=minute)
                if t > local and self.is_open(t) != now_open:
                    return t
        return None
