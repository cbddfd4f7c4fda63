"""A demo month is played in a provider's order (source/demo_clock.py): the month's account changes reach ZOHO while
its clock stands on the eve of the billing day, before its renewals. So no played month leaves a balance difference
of ordering (an end-of-term plan change, a renewal of a cancelled service): the number of customers differing stays
that of the demo's deliberately bad rows. On a small demo played two months over real HTTP, SQLite and Postgres.
(monitor/test_ledger_reasons.py plays the same demo without syncing in between and finds those reasons.)"""

from __future__ import annotations

import datetime as dt

import pytest

from zoho_pipeline.monitor.ledger import ledger
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.source.demo_clock import ChangesNotSynced, clock_now, eve_moment, play_demo_month
from zoho_pipeline.source.demo_month import next_billing_month
from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline_tests.support.emulator import make_client, start_emulator
from zoho_pipeline_tests.support.lifecycle import FAST

TODAY = dt.date(2026, 3, 17)
ORDERING = ("end_of_term", "cancellation reached ZOHO after its renewal")


def test_played_months_add_no_difference_of_ordering(db_url):
    create_demo(db_url, customers=60, seed=42, today=TODAY)
    engine = make_engine(db_url)
    emulator = start_emulator(start_time=f"{TODAY.isoformat()}T12:00:00Z")
    client = make_client(engine, emulator.url)
    try:
        run_sync(engine, client, FAST)
        differing = [ledger(engine, client).customers_differing]
        changes = 0
        for _ in range(2):
            clocks = []

            def sync_changes(clocks=clocks):
                clocks.append(clock_now(emulator.url))
                run_sync(engine, client, FAST)

            played, zoho_now = play_demo_month(
                engine, emulator.url, seed=42, today=dt.date(2026, 12, 31), sync_changes=sync_changes
            )
            # the changes were synced with ZOHO's clock on the eve, then it moved on to the billing day
            assert clocks == [eve_moment(played.month)] and zoho_now.date() == played.month
            changes += played.upgrades + played.cancellations + played.closures
            run_sync(engine, client, FAST)
            report = ledger(engine, client)
            details = " ".join(report.differences["detail"])
            assert not any(reason in details for reason in ORDERING), details
            differing.append(report.customers_differing)
        assert changes > 0, "no account changed in the months played (this test would prove nothing)"
        assert differing[1] <= differing[0] and differing[2] <= differing[1], differing
    finally:
        client.close()
        emulator.stop()
        engine.dispose()


def test_a_failed_sync_of_the_changes_still_finishes_the_month(sqlite_url):
    create_demo(sqlite_url, customers=20, seed=3, today=TODAY)
    engine = make_engine(sqlite_url)
    emulator = start_emulator(start_time=f"{TODAY.isoformat()}T12:00:00Z")

    def sync_changes():
        raise ConnectionError("ZOHO is down")

    try:
        with pytest.raises(ChangesNotSynced, match="April 2026 was played, .* not synced .* ZOHO is down"):
            play_demo_month(engine, emulator.url, seed=1, today=dt.date(2026, 12, 31), sync_changes=sync_changes)
        # the whole month is written (its billing run too) and ZOHO's clock is on the billing day: playing again
        # plays the next month, never this month's changes twice
        assert next_billing_month(engine) == dt.date(2026, 5, 1)
        assert clock_now(emulator.url) == dt.datetime(2026, 4, 1, 6, tzinfo=dt.UTC)
    finally:
        emulator.stop()
        engine.dispose()
