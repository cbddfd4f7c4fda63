"""Time in the demo: one month of business in the source and ZOHO's clock moved to its billing day.

    played = play_demo_month(engine, emulator_url, seed=42)

ZOHO's side of time is the emulator's: `PUT /__emulator__/clock` moves its `now` (forward only) and runs what fell
due on the way, so ZOHO renews the subscriptions and raises their invoices as it would over a real month. That
admin call belongs to the demo, not to the ZOHO client (`zoho/` speaks ZOHO's API; a real ZOHO has no clock to set).

A month is played in the order a provider lives it: ZOHO's clock moves to the eve of the billing day, the month's
account changes (new customers, upgrades, cancellations, closures) are written and synced (`sync_changes`), so
they reach ZOHO before its renewals; then the clock moves to the billing day (ZOHO renews and raises its
invoices), and the billing run's recurring invoices and the month's payments are written, for the next sync.
Without `sync_changes` the changes reach ZOHO only after its renewal (end-of-term plan changes, renewals of
cancelled services: the ledger's reasons). The month played follows the source (the month after its newest
billing run); a clock already past the billing day is left where it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import requests

from zoho_pipeline.source.demo_month import MonthPlayed, changes_end, next_billing_month, play_month

CLOCK_PATH = "/__emulator__/clock"
BILLING_HOUR = 6  # ZOHO's clock stops on the billing day at 06:00 UTC, after the provider's 02:00 billing run
EVE_MINUTES = 30  # before the billing day, ZOHO's clock stands this long after the month's last account change
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


class ChangesNotSynced(RuntimeError):
    """The month was played whole, but the sync of its account changes failed before ZOHO's renewal: they reach
    ZOHO with the next sync, after it (the ledger then names the end-of-term and renewal differences)."""


class CaughtUp(ValueError):
    """The next billing day is after today: the demo's business has reached the real date."""


def eve_moment(month: dt.date) -> dt.datetime:
    """Where ZOHO's clock stands while the month's account changes are synced: after them, before its renewals."""
    return changes_end(month) + dt.timedelta(minutes=EVE_MINUTES)


def play_demo_month(
    engine,
    emulator_url: str,
    seed: int = 42,
    today: dt.date | None = None,
    sync_changes: Callable[[], object] | None = None,
) -> tuple[MonthPlayed, dt.datetime]:
    """Play the next billing month: ZOHO's clock to its eve, the account changes written and `sync_changes()`
    called, ZOHO's clock to the billing day, then the payments and the billing run written (also when
    `sync_changes` fails: then ChangesNotSynced, after the whole month is written). Returns what the month
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
    move_clock(emulator_url, eve_moment(month))
    moved: list[dt.datetime] = []

    failed: list[str] = []

    def between(_played: MonthPlayed) -> None:
        try:
            if sync_changes is not None:
                sync_changes()
        except Exception as exc:  # noqa: BLE001 - the month is finished anyway: half a month would be played twice
            failed.append(f"{exc.__class__.__name__}: {exc}")
        moved.append(move_clock(emulator_url, billing_moment(month)))

    played = play_month(engine, seed=seed, month=month, between=between)
    if failed:
        raise ChangesNotSynced(
            f"{month:%B %Y} was played, but its account changes were not synced before ZOHO's renewal "
            f"({failed[0]}); the next sync sends them"
        )
    return played, moved[0]
