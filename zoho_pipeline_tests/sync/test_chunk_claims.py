"""A chunk's claim and its outcomes on both databases: Postgres runs each as one UPDATE joined to the chunk's
arrays (sync.chunk_sql), SQLite as executemany. The compare-and-set must hold either way: a row claimed by another
run since it was read is not ours, and an outcome is written only where this run still owns the row."""

from __future__ import annotations

import sqlalchemy as sa

from zoho_pipeline.source.database import make_engine, utcnow
from zoho_pipeline.sync import claims, due_rows
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline_tests.support.rows import customers_database

SPEC = SPECS["customers"]


def _due(engine, run_id: str) -> list[dict]:
    with engine.connect() as conn:
        return due_rows.find_due(conn, SPEC, mode="due", now=utcnow(), run_id=run_id, stale_after_s=120, limit=50)


def _statuses(engine) -> dict:
    c = SPEC.table.c
    with engine.connect() as conn:
        return {
            str(r.id): (r.zoho_sync_status, r.zoho_claimed_by, r.zoho_billing_customer_id, r.zoho_lookup_key)
            for r in conn.execute(
                sa.select(c.id, c.zoho_sync_status, c.zoho_claimed_by, c.zoho_billing_customer_id, c.zoho_lookup_key)
            )
        }


def test_a_chunk_claims_only_the_rows_nobody_claimed_since_they_were_read(db_url):
    customers_database(db_url, 6)
    engine = make_engine(db_url)
    try:
        read_by_b = _due(engine, "run-b")  # run B reads six rows; run A claims two of them first
        taken = claims.claim_rows(engine, SPEC, _due(engine, "run-a")[:2], "run-a")
        assert len(taken) == 2

        mine = claims.claim_rows(engine, SPEC, read_by_b, "run-b")

        assert sorted(r["id"] for r in mine) == sorted(r["id"] for r in read_by_b[2:])
        statuses = _statuses(engine)
        assert {statuses[str(r["id"])][1] for r in taken} == {"run-a"}
        assert {statuses[str(r["id"])][1] for r in mine} == {"run-b"}
        assert all(statuses[str(r["id"])][3] == r["email"] for r in mine)  # the create's intent: its reference
    finally:
        engine.dispose()


def test_outcomes_are_written_only_where_the_run_still_owns_the_row(db_url):
    customers_database(db_url, 4)
    engine = make_engine(db_url)
    try:
        rows = claims.claim_rows(engine, SPEC, _due(engine, "run-a"), "run-a")
        stolen = rows[0]
        with engine.begin() as conn:  # another run took this one over meanwhile (run A looked dead)
            conn.execute(SPEC.table.update().where(SPEC.table.c.id == stolen["id"]).values(zoho_claimed_by="run-c"))
        outcomes = [
            claims.succeeded(r, zoho_id=f"Z{i}", payload_hash="h" * 16, action="create", payload='{"a": 1}')
            for i, r in enumerate(rows)
        ]

        claims.record(engine, SPEC, outcomes, run_id="run-a")

        statuses = _statuses(engine)
        assert statuses[str(stolen["id"])][:3] == ("syncing", "run-c", None)
        for i, r in enumerate(rows[1:], start=1):
            assert statuses[str(r["id"])][0] == "synced" and statuses[str(r["id"])][2] == f"Z{i}"
        # synced at the version they had: not due any more; the other run's claim is stale (no such live run)
        assert [r["id"] for r in _due(engine, "run-d")] == [stolen["id"]]
    finally:
        engine.dispose()
