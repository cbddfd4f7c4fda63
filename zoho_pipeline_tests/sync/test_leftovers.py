"""Issue 12 items 9 and 10: a run's report and exit code are never quieter than the truth. Rows claimed by a run
that stopped beating count as backlog (in doubt), rows still retrying make the exit code 1 with the next attempt's
time, and a run dead past the staleness limit is closed as failed. Real HTTP to the emulator, SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from zoho_pipeline.cli.sync_summary import format_summary
from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support import rows

SETTINGS = SyncSettings(max_workers=2, backoff_base_s=0.05, heartbeat_interval_s=5.0, run_stale_after_s=120.0)


@pytest.fixture
def source(db_url):
    engine = rows.make_source(db_url)
    yield engine
    engine.dispose()


def _sync(engine, zoho_config, **kw):
    with ZohoClient(zoho_config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
        return run_sync(engine, client, SETTINGS, entities=["customers"], **kw)


def test_rows_under_a_run_that_stopped_beating_are_backlog_in_doubt(source, zoho_config, emulator):
    silent_since = rows.now() - timedelta(seconds=40)  # past 3 heartbeats, not yet stale (120 s)
    rows.add_run(source, "silent-run", started=silent_since - timedelta(minutes=1), heartbeat=silent_since)
    claimed = rows.add_customer(
        source,
        "Aisha",
        "Patel",
        zoho_sync_status="syncing",
        zoho_claimed_by="silent-run",
        zoho_claimed_at=silent_since,
        zoho_create_in_doubt=True,
    )
    rows.add_customer(source, "Sipho", "Dlamini")  # a plain new row: synced by this run

    report = _sync(source, zoho_config)

    customers = report.entities["customers"]
    assert customers.created == 1
    assert customers.backlog == 1 and customers.in_doubt == 1
    assert report.exit_code == 1
    assert "1 row(s) in doubt, claimed by a run that stopped beating" in format_summary(report)
    assert rows.row(source, T.customers, claimed)["zoho_claimed_by"] == "silent-run"  # not taken over early
    # status, health and the backlog check say the same: one row due (in doubt)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOHO_SYNC_HEARTBEAT_S", "5")
        assert Q.due_count(source, "customers") == 1


def test_rows_still_retrying_make_the_exit_code_one_with_the_next_attempt(source, zoho_config, emulator):
    later = rows.now() + timedelta(hours=1)
    rows.add_customer(
        source,
        "Naledi",
        "Khumalo",
        zoho_sync_status="retrying",
        zoho_attempts=2,
        zoho_error_code="retryable:502",
        zoho_last_sync_error="Bad Gateway",
        zoho_next_attempt_at=later,
    )

    report = _sync(source, zoho_config)

    customers = report.entities["customers"]
    assert customers.due == 0 and customers.still_retrying == 1
    assert customers.next_attempt_at[:16] == later.isoformat()[:16]
    assert report.exit_code == 1
    assert "1 row(s) still retrying (1 customers); next attempt at" in format_summary(report)


def test_a_clean_run_exits_zero(source, zoho_config, emulator):
    rows.add_customer(source, "Lerato", "Mokoena")
    report = _sync(source, zoho_config)
    assert report.entities["customers"].created == 1 and report.exit_code == 0


def test_a_run_dead_past_the_staleness_limit_is_closed_as_failed(source, zoho_config, emulator):
    rows.add_run(source, "dead-run", heartbeat=rows.now() - timedelta(minutes=10))
    rows.add_run(source, "live-run", heartbeat=rows.now())

    _sync(source, zoho_config)

    with source.connect() as conn:
        runs = {row.run_id: row for row in conn.execute(sa.select(T.zoho_sync_runs))}
    assert runs["dead-run"].status == "failed" and runs["dead-run"].finished_at is not None
    assert "no heartbeat" in runs["dead-run"].summary
    assert runs["live-run"].status == "running" and runs["live-run"].finished_at is None
