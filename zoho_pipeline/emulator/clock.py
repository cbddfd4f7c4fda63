"""ZOHO's business clock: the emulator's `now`, which moves only forward and only when told.

It stands still between moves, so a test's dates never depend on how long it ran; `PUT /__emulator__/clock` (see
``schedule.advance``) moves it and runs ZOHO's scheduled work on the way. Token expiry and rate limits keep real
time: they are the API's plumbing, not ZOHO's books. Dates are UTC calendar dates (the emulated organization does
its daily work at 00:00 UTC, where ZOHO uses 6 AM in the organization's time zone).
"""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC


def parse_time(value: str) -> dt.datetime:
    """An ISO-8601 date or date-time ("2025-01-31", "2025-01-31T06:00:00Z", "...+02:00"), as aware UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a date or ISO-8601 time is expected, got {value!r}")
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 date or time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def midnight(day: str) -> dt.datetime:
    """The moment a calendar day starts: when that day's scheduled work falls due."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(0, 0), tzinfo=UTC)


class Clock:
    def __init__(self, now: dt.datetime):
        self._now = now

    def now(self) -> dt.datetime:
        return self._now

    def today(self) -> str:
        return self._now.date().isoformat()

    def timestamp(self) -> str:
        """ZOHO's `created_time` / `updated_time` format."""
        return self._now.strftime("%Y-%m-%dT%H:%M:%S+0000")

    def move_to(self, moment: dt.datetime) -> None:
        if moment < self._now:
            raise ValueError(f"the clock only moves forward: it is {iso(self._now)}, {iso(moment)} is earlier")
        self._now = moment


def wall_clock() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def days_between(start: str, end: str) -> int:
    return (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days


def add_days(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()
