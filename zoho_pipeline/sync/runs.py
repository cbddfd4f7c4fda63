"""A run's life in `zoho_sync_runs`: started, beating while it works (`Heartbeat`, a thread), finished with its
summary. `live_runs`, the runs whose heartbeat is recent, is what keeps a `syncing` claim alive (claims and due
rows read it). Beats are the database's time, so hosts whose clocks differ agree on which run is alive.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from datetime import datetime

from sqlalchemy import select

from zoho_pipeline.source.database import db_before, db_now, utcnow
from zoho_pipeline.source.tables import zoho_sync_runs

log = logging.getLogger("zoho_pipeline.sync")


def start_run(engine, run_id: str) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            zoho_sync_runs.insert().values(
                run_id=run_id,
                started_at=now,
                heartbeat_at=db_now(now),  # beats are the database's time (Postgres): hosts' clocks may differ
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                status="running",
            )
        )


def heartbeat(engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(zoho_sync_runs.update().where(zoho_sync_runs.c.run_id == run_id).values(heartbeat_at=db_now()))


def finish_run(engine, run_id: str, status: str, summary: dict) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            zoho_sync_runs.update()
            .where(zoho_sync_runs.c.run_id == run_id)
            .values(heartbeat_at=db_now(now), finished_at=now, status=status, summary=json.dumps(summary, default=str))
        )


def live_runs(now: datetime, stale_after_s: float):
    runs = zoho_sync_runs.c
    return select(runs.run_id).where(runs.finished_at.is_(None), runs.heartbeat_at > db_before(stale_after_s, now))


class Heartbeat:
    """Tells other runs that this run's `syncing` claims are alive."""

    def __init__(self, engine, run_id: str, interval_s: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(engine, run_id, interval_s), daemon=True, name=f"heartbeat-{run_id[:8]}"
        )
        self._thread.start()

    def _beat(self, engine, run_id, interval_s):
        while not self._stop.wait(interval_s):
            try:
                heartbeat(engine, run_id)
            except Exception:  # a missed beat only makes our claims look stale sooner
                log.exception("heartbeat failed run_id=%s", run_id)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
