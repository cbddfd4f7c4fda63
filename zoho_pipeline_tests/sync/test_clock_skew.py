"""Issue 12, low item: a host whose clock is 300 s behind keeps its live claims. Run heartbeats are written and
judged by the database's clock (Postgres: `now()`), so another host never takes such a run for dead. Postgres only:
SQLite is a file of one host, whose clock it is."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from zoho_pipeline.source import database
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync import claims, due_rows, runs
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline_tests.support import rows


def test_a_run_on_a_host_300_s_behind_keeps_its_claims(pg_url, monkeypatch):
    engine = rows.make_source(pg_url)
    customer = rows.add_customer(engine, "Thandi", "Nkosi")
    real_now = database.utcnow
    monkeypatch.setattr(claims, "utcnow", lambda: real_now() - timedelta(seconds=300))  # the slow host
    runs.start_run(engine, "slow-host-run")
    runs.heartbeat(engine, "slow-host-run")
    spec = SPECS["customers"]
    with engine.connect() as conn:
        row = dict(conn.execute(spec.select().where(T.customers.c.id == customer)).mappings().one())
    assert claims.claim_rows(engine, spec, [row], "slow-host-run")
    monkeypatch.setattr(claims, "utcnow", real_now)  # another host, its clock right

    with engine.connect() as conn:
        due = due_rows.find_due(
            conn, spec, mode="due", now=real_now(), run_id="other-run", stale_after_s=120.0, limit=10
        )
        beat = conn.execute(
            sa.select(T.zoho_sync_runs.c.heartbeat_at).where(T.zoho_sync_runs.c.run_id == "slow-host-run")
        ).scalar_one()
    assert due == []  # the slow host's claim is live: not taken over
    assert abs((database.aware(beat) - real_now()).total_seconds()) < 30  # the beat is the database's time
    engine.dispose()
