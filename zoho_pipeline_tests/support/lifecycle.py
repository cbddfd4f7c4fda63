"""A small account for the lifecycle tests: the source (SQLite or Postgres) with the pipeline installed, the
emulator over real HTTP, and helpers to change a source row as the provider's own system would and to count the
calls a sync made, by route."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.emulator import make_client

FAST = SyncSettings(max_workers=2, backoff_base_s=0.05, in_run_retry_window_s=2.0, run_stale_after_s=5.0)
NO_RETRY = dataclasses.replace(FAST, in_run_retry_rounds=0)  # a failed attempt stays failed until the next run


class World:
    def __init__(self, db_url: str, emulator, settings: SyncSettings = FAST):
        self.engine = R.make_source(db_url)
        self.emulator = emulator
        self.store = emulator.store
        self.client = make_client(self.engine, emulator.url)
        self.settings = settings

    def close(self) -> None:
        self.client.close()
        self.engine.dispose()

    def sync(self, settings: SyncSettings | None = None, **kw):
        """One run; returns (report, the calls it made by route "METHOD /template")."""
        before = Counter(self.emulator.stats()["by_route"])
        report = run_sync(self.engine, self.client, settings or self.settings, **kw)
        after = Counter(self.emulator.stats()["by_route"])
        calls = Counter({route: n for route, n in (after - before).items() if "oauth" not in route})
        return report, calls

    def sync_with_answers_lost(self, settings: SyncSettings | None = None):
        """One run in which ZOHO acts on every call and every answer is lost (no retry by default): what a
        dropped connection leaves, rows in doubt."""
        self.emulator.set_faults(drop_rate=1.0)
        try:
            return self.sync(settings or NO_RETRY)
        finally:
            self.emulator.set_faults(drop_rate=0.0)

    def change(self, table, row_id, **values) -> None:
        """An edit by the provider's system: the values, and `updated_at` moved on."""
        values["updated_at"] = R.ts(self.engine, R.now())
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == row_id).values(**values))

    def row(self, table, row_id) -> dict:
        return R.row(self.engine, table, row_id)

    def die_mid_attempt(self, table, row_id) -> None:
        """The row as a run that was SIGKILLed after its claim leaves it: `syncing`, in doubt, its run silent."""
        R.add_run(
            self.engine, "killed-run", started=R.now() - timedelta(hours=1), heartbeat=R.now() - timedelta(hours=1)
        )
        with self.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.id == row_id)
                .values(
                    zoho_sync_status="syncing",
                    zoho_claimed_by="killed-run",
                    zoho_claimed_at=R.ts(self.engine, R.now() - timedelta(minutes=30)),
                    zoho_create_in_doubt=True,
                )
            )


def writes(calls: Counter) -> Counter:
    return Counter({route: n for route, n in calls.items() if route.split()[0] in ("POST", "PUT", "DELETE")})


def count_rows(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()
