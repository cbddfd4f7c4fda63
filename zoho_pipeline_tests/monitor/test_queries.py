"""monitor.queries and monitor.history (and the operator writes: requeue, the key/value state) on SQLite and
Postgres, with hand-made rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zoho_pipeline.monitor import history as H
from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.entities import entity_name
from zoho_pipeline.sync.requeue import requeue
from zoho_pipeline.sync.state import get_state, set_state
from zoho_pipeline_tests.support.rows import add_customer, add_log, add_run, make_source, now, row, scenario, set_usage


@pytest.fixture
def world(db_url):
    engine = make_source(db_url)
    ids = scenario(engine)
    yield engine, ids
    engine.dispose()


def test_status_counts_only_eligible_and_null_is_pending(world):
    engine, _ = world
    counts = Q.status_counts(engine)
    c = counts["customers"]
    assert c == {"pending": 1, "syncing": 1, "synced": 2, "failed": 1, "retrying": 1, "dead_lettered": 1, "total": 7}
    # the pending service is not eligible; the recurring invoice is not eligible
    assert counts["subscriptions"]["total"] == 1 and counts["subscriptions"]["pending"] == 1
    assert counts["invoices"] == {**dict.fromkeys(Q.COUNT_KEYS, 0), "failed": 1, "total": 1}
    assert counts["plans"]["synced"] == 1
    assert Q.totals(counts)["total"] == sum(v["total"] for v in counts.values())
    assert list(Q.status_counts(engine, "invoices")) == ["invoices"]


def test_due_count_and_backlog_age(world):
    engine, ids = world
    # the engine's rule (sync.due_rows.due_filter): due are sipho (never synced) and aisha (syncing, her run died);
    # lerato failed permanently and waits until her data changes or she is requeued; naledi waits for her next
    # attempt; pieter is dead-lettered; synced rows are clean
    assert Q.due_count(engine, "customers") == 2
    age = Q.oldest_due_age_s(engine, "customers")
    assert 3500 < age < 3700  # the rows were changed an hour ago
    assert Q.oldest_due_age_s(engine, "plans") is None
    # a synced row changed after its sync becomes due, and so does a permanently failed row whose data changed
    from zoho_pipeline_tests.support.rows import ts

    with engine.begin() as conn:
        conn.execute(T.customers.update().where(T.customers.c.id == ids["thandi"]).values(updated_at=ts(engine, now())))
    assert Q.due_count(engine, "customers") == 3
    with engine.begin() as conn:
        conn.execute(T.customers.update().where(T.customers.c.id == ids["lerato"]).values(updated_at=ts(engine, now())))
    assert Q.due_count(engine, "customers") == 4
    # the same count the engine's own find-work query gives
    from zoho_pipeline.sync import due_rows
    from zoho_pipeline.sync.entities import SPECS

    with engine.connect() as conn:
        assert due_rows.count_due(conn, SPECS["customers"]) == 4


def test_stuck_rows_claim_timeout_and_dead_heartbeat(world):
    engine, ids = world
    stuck = Q.stuck_rows(engine, "customers", older_than_s=3600, limit=10)
    assert [s["id"] for s in stuck] == [ids["aisha"]]  # claim only 30 min old, but the run's heartbeat is dead
    assert stuck[0]["label"] == "Aisha Patel <aisha@example.co.za>"
    assert stuck[0]["reason"] == "claiming run heartbeat stale"
    # a live run claiming a fresh row is not stuck
    add_run(engine, "live-run", heartbeat=now())
    add_customer(
        engine,
        "Busi",
        "Zulu",
        zoho_sync_status="syncing",
        zoho_claimed_by="live-run",
        zoho_claimed_at=now() - timedelta(seconds=20),
    )
    assert len(Q.stuck_rows(engine, "customers", older_than_s=600)) == 1
    # ... but it is once the claim is older than the timeout
    assert len(Q.stuck_rows(engine, "customers", older_than_s=5)) == 2
    assert Q.stuck_count(engine, "customers", 5) == 2


def test_failed_rows_labels_dead_letters_first(world):
    engine, ids = world
    rows = Q.failed_rows(engine, "customers", limit=10)
    assert [r["label"] for r in rows] == [
        "Pieter van Wyk <pieter@example.co.za>",
        "Lerato Mokoena <lerato@example.co.za>",
    ]
    assert rows[0]["dead_lettered"] and rows[0]["attempts"] == 5 and rows[0]["error_code"] == "retryable:503"
    assert rows[0]["last_attempt_at"] is not None
    with_retrying = Q.failed_rows(engine, "customers", include_retrying=True)
    assert len(with_retrying) == 3
    inv = Q.failed_rows(engine, "invoices")
    assert inv[0]["label"] == "INV-2025-000123" and inv[0]["error"] == "Customer does not exist"


def test_synced_without_id(world):
    engine, ids = world
    rows = Q.synced_without_id(engine, "customers")
    assert [r["label"] for r in rows] == ["Ghost Synced <ghost@example.co.za>"]
    assert Q.synced_without_id_count(engine, "customers") == 1
    assert Q.synced_without_id(engine, "plans") == []


def test_recent_logs_named_filtered_paged(world):
    engine, ids = world
    logs = H.recent_logs(engine)
    assert len(logs) == 5
    labels = {line["label"] for line in logs}
    assert "Thandi Nkosi <thandi@example.co.za>" in labels and "INV-2025-000123" in labels
    assert all(line["label"] != line["entity_id"] for line in logs)
    failed = H.recent_logs(engine, outcome="failed")
    assert {line["outcome"] for line in failed} == {"failed", "dead_lettered"}
    assert [x["label"] for x in H.recent_logs(engine, entity="invoice")] == ["INV-2025-000123"]
    assert len(H.recent_logs(engine, since="1d")) == 4  # naledi's line is 3 days old
    assert len(H.recent_logs(engine, since=(now() - timedelta(days=4)).isoformat())) == 5
    page1 = H.recent_logs(engine, limit=2)
    page2 = H.recent_logs(engine, limit=2, offset=2)
    assert not {x["id"] for x in page1} & {x["id"] for x in page2}
    add_log(engine, "customers", "00000000-0000-0000-0000-000000000000", "failed")
    assert "no longer in the source" in H.recent_logs(engine, limit=1)[0]["label"]


def test_parse_since():
    ref = now()
    assert H.parse_since("2h", ref) == ref - timedelta(hours=2)
    assert H.parse_since("30m", ref) == ref - timedelta(minutes=30)
    assert H.parse_since("7d", ref) == ref - timedelta(days=7)
    assert H.parse_since("2025-06-01T08:00").isoformat() == "2025-06-01T08:00:00+00:00"
    with pytest.raises(ValueError):
        H.parse_since("yesterday")


def test_success_rate(world):
    engine, _ = world
    rate = H.success_rate(engine, "24h")
    assert rate["attempts"] == 4 and rate["succeeded"] == 1 and rate["failed"] == 3
    assert rate["rate"] == 0.25
    assert H.success_rate(engine, "7d")["retrying"] == 1
    add_log(engine, "customers", "x", "dry_run")
    assert H.success_rate(engine, "24h")["attempts"] == 4


def test_requeue_ids_and_all_failed(world):
    engine, ids = world
    assert requeue(engine, "customers", ids=[ids["pieter"]]) == 1
    r = row(engine, T.customers, ids["pieter"])
    assert r["zoho_sync_status"] == "pending" and r["zoho_attempts"] == 0 and r["zoho_dead_lettered"] is False
    assert r["zoho_next_attempt_at"] is None
    # a syncing row belongs to a run: never requeued
    assert requeue(engine, "customers", ids=[ids["aisha"]]) == 0
    assert requeue(engine, "customers", all_failed=True) == 2  # lerato (failed) and naledi (retrying)
    assert Q.failed_ids(engine, "customers") == []
    assert Q.due_count(engine, "customers") == 5
    with pytest.raises(ValueError):
        requeue(engine, "customers")
    assert requeue(engine, "customers", ids=["not-a-uuid"]) == 0


def test_requeue_force_forgets_hash(world):
    engine, ids = world
    with engine.begin() as conn:
        conn.execute(T.customers.update().where(T.customers.c.id == ids["thandi"]).values(zoho_payload_hash="abc"))
    requeue(engine, "customers", ids=[ids["thandi"]], force=True)
    assert row(engine, T.customers, ids["thandi"])["zoho_payload_hash"] is None


def test_api_calls_runs_and_state(world):
    engine, _ = world
    set_usage(engine, "10234695", 321)
    set_usage(engine, "10234695", 999, day=(now() - timedelta(days=1)).date())
    assert H.api_calls_today(engine, "10234695") == 321
    assert H.api_calls_today(engine, "other") == 0
    add_run(
        engine,
        "r2",
        status="succeeded",
        started=now() - timedelta(minutes=2),
        finished=now(),
        summary='{"api_calls": 3}',
    )
    runs = H.recent_runs(engine, 5)
    assert runs[0]["run_id"] == "r2" and runs[0]["summary"] == {"api_calls": 3}
    assert H.runs_since(engine, now() - timedelta(hours=2)) == {"running": 1, "succeeded": 1}
    live = H.live_runs(engine)
    assert [(r["run_id"], r["alive"]) for r in live] == [("dead-run", False)]
    assert get_state(engine, "alert:x") is None
    set_state(engine, "alert:x", "failing")
    set_state(engine, "alert:x", "ok")
    assert get_state(engine, "alert:x") == "ok"


def test_entity_names():
    assert entity_name("invoice") == "invoices" and entity_name("customer_services") == "subscriptions"
    with pytest.raises(ValueError):
        entity_name("widgets")
    assert Q.entities(["payments", "plans"]) == ["plans", "payments"]
