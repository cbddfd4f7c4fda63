"""`zoho-pipeline db prune`: payloads of deleted rows, API calls beyond the ring, old attempts; only our tables."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from zoho_pipeline.cli import db as db_cmd
from zoho_pipeline.monitor.calls import recent_calls
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline_tests.support import rows as R


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_prune_keeps_what_is_still_needed(db_url, zoho_config, emulator, capsys):
    engine = R.make_source(db_url)
    package = R.add_package(engine)  # its plan's set-up calls: the ring holds more than the kept 3
    kept, gone = R.add_customer(engine, "Kept", "Row"), R.add_customer(engine, "Gone", "Row")
    with zoho_client(zoho_config, engine) as client:
        run_sync(engine, client, SyncSettings(max_workers=2))
    calls = recent_calls(engine, limit=100)
    assert len(calls) >= 4 and _count(engine, T.zoho_accepted_payloads) == 3
    with engine.begin() as conn:  # the billing system deletes a customer
        conn.execute(T.customers.delete().where(T.customers.c.id == gone))
    R.add_log(engine, "customers", kept, at=R.now() - timedelta(days=200))
    logs = _count(engine, T.zoho_sync_logs)

    assert db_cmd.main(["prune", "--database-url", db_url, "--keep-calls", "3", "--logs-older-than", "180d"]) == 0
    out = capsys.readouterr().out
    assert "accepted payloads of deleted rows         1" in out, out
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(T.zoho_accepted_payloads.c.entity_id)).scalars())
    assert left == {kept, package}
    assert [c["id"] for c in recent_calls(engine, limit=100)] == [c["id"] for c in calls[:3]]  # the newest
    assert _count(engine, T.zoho_sync_logs) == logs - 1
    assert R.row(engine, T.customers, kept)["zoho_sync_status"] == "synced"  # business rows untouched

    assert db_cmd.main(["prune", "--database-url", db_url, "--keep-calls", "0"]) == 0
    assert _count(engine, T.zoho_api_calls) == 0 and _count(engine, T.zoho_sync_logs) == logs - 1
    engine.dispose()
