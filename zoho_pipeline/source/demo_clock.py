"""Time in the demo: one month of business in the source and ZOHO's clock moved to its billing day.

    played = play_demo_month(engine, emulator_url, seed=42)

ZOHO's side of time is the emulator's: `PUT /__emulator__/clock` moves its `now` (forward only) and runs what fell
due on the way, so ZOHO renews the subscriptions and raises their invoices as it would over a real month. That
admin call belongs to the demo, not to the ZOHO client (`zoho/` speaks ZOHO's API; a real ZOHO has no clock to set).

The clock moves first, then the month is written: a sensor tick between the two then finds rows dated no later than
ZOHO's `now`. The month played follows the source (the month after its newest billing run), so after a failure
half way playing again finishes that month; a clock already past the billing day is left where it is.
"""

from __future__ import annotations

import datetime as dt

import requests

from zoho_pipeline.source.demo_month import MonthPlayed, next_billing_month, play_month

CLOCK_PATH = "/__emulator__/clock"
BILLING_HOUR = 6  # ZOHO's clock stops on the billing day at 06:00 UTC, after the provider's 02:00 billing run
TIMEOUT_S = 120  # a move runs a month of ZOHO's scheduled work for every account


class ClockError(RuntimeError):
    """The emulator's clock could not be read or moved (not running, or not an emulator)."""


def _call(method: str, url: str, **kw) -> dict:
    try:
        resp = requests.request(method, url, timeout=TIMEOUT_S, **kw)
    except requests.RequestException as exc:
        raise ClockError(
            f"the ZOHO emulator is not reachable at {url} ({exc.__class__.__name__}): is `make dev` running?"
        ) from None
    if resp.status_code != 200:
        raise ClockError(f"{method} {url} answered {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def clock_now(emulator_url: str) -> dt.datetime:
    """ZOHO's `now` on the emulator at `emulator_url` (its root, where /oauth/v2/token is served)."""
    value = _call("GET", emulator_url.rstrip("/") + CLOCK_PATH)["now"]
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def move_clock(emulator_url: str, to: dt.datetime) -> dt.datetime:
    """Move ZOHO's clock forward to `to` (never back: a later clock stays); returns the clock's `now` after."""
    if clock_now(emulator_url) >= to:
        return clock_now(emulator_url)
    body = {"now": to.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    value = _call("PUT", emulator_url.rstrip("/") + CLOCK_PATH, json=body)["now"]
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def billing_moment(month: dt.date) -> dt.datetime:
    return dt.datetime.combine(month, dt.time(BILLING_HOUR, 0), tzinfo=dt.UTC)


class CaughtUp(ValueError):
    """The next billing day is after today: the demo's business has reached the real date."""


def play_demo_month(
    engine, emulator_url: str, seed: int = 42, today: dt.date | None = None
) -> tuple[MonthPlayed, dt.datetime]:
    """Move ZOHO's clock to the next billing day, then play that month in the source. Returns what the month
    changed and ZOHO's clock after the move. A billing day after `today` (default: the real one) is refused with
    CaughtUp: the pipeline judges dates (a cancellation ahead, a payment's day) against the real today, so the
    demo's business never runs ahead of it."""
    month = next_billing_month(engine)
    today = today or dt.datetime.now(dt.UTC).date()
    if month > today:
        raise CaughtUp(
            f"the demo has caught up with today: its next billing day, {month}, is after {today}. "
            "`make demo` starts a new demo months back (--months-back)"
        )
    zoho_now = move_clock(emulator_url, billing_moment(month))
    return play_month(engine, seed=seed, month=month), zoho_now
