"""What is left in scope when a run ends, so its exit code and summary never look quieter than the truth: rows
still `retrying` (their next attempt later), rows `syncing` under a run that stopped beating (in doubt: it may
have reached ZOHO, nobody may claim it until the run is stale), and runs in `zoho_sync_runs` that died (closed
as failed once past the staleness limit, so `health` stops warning about a run that will never finish).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import and_, func, select

from zoho_pipeline.source.database import aware, db_before, utcnow
from zoho_pipeline.source.tables import zoho_sync_runs
from zoho_pipeline.sync import transient
from zoho_pipeline.sync.claims import RETRYING, SYNCING
from zoho_pipeline.sync.due_rows import count_due, scope_filter
from zoho_pipeline.sync.entities.base import EntitySpec
from zoho_pipeline.sync.runs import live_runs


def retrying_later(conn, spec: EntitySpec, *, now: datetime, months=None, ids=None) -> tuple[int, datetime | None]:
    """(rows in scope still retrying, the earliest next attempt)."""
    c = spec.table.c
    count, first = conn.execute(
        select(func.count(), func.min(c.zoho_next_attempt_at)).where(
            c.zoho_sync_status == RETRYING, scope_filter(spec, months=months, ids=ids)
        )
    ).one()
    return int(count or 0), aware(first)


def in_doubt(
    conn, spec: EntitySpec, *, now: datetime, silent_after_s: float, run_id: str | None, months=None, ids=None
) -> int:
    """Rows in scope claimed by another run whose heartbeat is older than `silent_after_s`."""
    c = spec.table.c
    clauses = [c.zoho_sync_status == SYNCING, c.zoho_claimed_by.not_in(live_runs(now, silent_after_s))]
    if run_id:
        clauses.append(c.zoho_claimed_by != run_id)
    query = (
        select(func.count()).select_from(spec.table).where(and_(*clauses), scope_filter(spec, months=months, ids=ids))
    )
    return int(conn.execute(query).scalar() or 0)


def left_in_scope(engine, spec: EntitySpec, rep, *, run_id: str, silent_after_s: float, months, ids) -> None:
    """What is left in scope after an entity's sweeps, into its report `rep`: due rows (incl. those under a run
    that stopped beating: in doubt), rows still retrying later and the earliest next attempt. They decide the
    exit code, so it is never quieter than the truth."""
    silent, now = silent_after_s, utcnow()

    def count(conn):
        backlog = count_due(conn, spec, run_id=None, stale_after_s=silent, months=months, ids=ids)
        doubt = in_doubt(conn, spec, now=now, silent_after_s=silent, run_id=run_id, months=months, ids=ids)
        return backlog, doubt, retrying_later(conn, spec, now=now, months=months, ids=ids)

    rep.backlog, rep.in_doubt, (rep.still_retrying, first) = transient.read(
        engine, count, f"counting what is left of {spec.name}"
    )
    rep.next_attempt_at = first.isoformat(timespec="seconds") if first else None


def close_dead_runs(engine, stale_after_s: float, now: datetime | None = None) -> int:
    """Mark failed every `running` run whose heartbeat is older than `stale_after_s`; returns how many."""
    now = now or utcnow()
    r = zoho_sync_runs.c
    summary = json.dumps({"closed_by": "a later run", "reason": f"no heartbeat for over {stale_after_s:.0f} s"})
    with engine.begin() as conn:
        result = conn.execute(
            zoho_sync_runs.update()
            .where(r.status == "running", r.finished_at.is_(None), r.heartbeat_at < db_before(stale_after_s, now))
            .values(status="failed", finished_at=now, summary=summary)
        )
        return result.rowcount or 0
