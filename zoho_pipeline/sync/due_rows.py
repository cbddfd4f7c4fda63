"""Finding work: the rows of an entity that need an attempt now (`due_filter`), in the run's scope (months, ids,
eligible rows), read in id order a batch at a time (`find_due`), counted (`count_due`), and the earliest retry.

The due rule reads only the dirty part of a table (the partial index's predicate): never synced, changed since
its last sync, failed or retrying with its next attempt due, or `syncing` under a run that stopped beating. The
monitor's backlog counts with this same rule.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import and_, false, func, or_, select, true

from zoho_pipeline.source.database import aware, utcnow
from zoho_pipeline.source.tables import dirty_predicate
from zoho_pipeline.sync.claims import FAILED, PENDING, RETRYING, SYNCING
from zoho_pipeline.sync.entities.base import EntitySpec
from zoho_pipeline.sync.runs import live_runs


def _month_filter(spec: EntitySpec, months: tuple[date, date] | None):
    if not months or not spec.month_column:
        return true()
    column = spec.month_date
    start, end = months
    if spec.month_column == "completed_at":  # a timestamp: compare with midnight UTC
        start = datetime.combine(start, time.min, tzinfo=UTC)
        end = datetime.combine(end, time.min, tzinfo=UTC)
    return and_(column >= start, column < end)


def due_filter(spec: EntitySpec, *, mode: str, now: datetime, run_id: str | None, stale_after_s: float):
    """Rows that need an attempt now. `mode`: due (the incremental rule), failed (every failed or retrying row),
    all (every row: re-check against ZOHO)."""
    c = spec.table.c
    if mode == "all":
        return true()
    if mode == "failed":
        return c.zoho_sync_status.in_((FAILED, RETRYING))
    stale_claim = and_(c.zoho_sync_status == SYNCING, c.zoho_claimed_by.not_in(live_runs(now, stale_after_s)))
    if run_id:
        stale_claim = and_(stale_claim, c.zoho_claimed_by != run_id)
    return and_(
        dirty_predicate(spec.table),  # the partial index's predicate: only the dirty part of the table is read
        or_(
            c.zoho_sync_status.is_(None),
            c.zoho_sync_status == PENDING,
            and_(
                c.zoho_sync_status != SYNCING,
                or_(c.zoho_source_version.is_(None), c.updated_at > c.zoho_source_version),
            ),
            and_(c.zoho_sync_status.in_((FAILED, RETRYING)), c.zoho_next_attempt_at <= now),
            stale_claim,
        ),
    )


def scope_filter(spec: EntitySpec, *, months=None, ids=None, eligible_only: bool = True):
    c = spec.table.c
    clauses = [_month_filter(spec, months)]
    if eligible_only:
        clauses.append(spec.eligible(spec.table))
    if ids is not None:
        clauses.append(c.id.in_(list(ids)) if ids else false())
    return and_(*clauses)


def find_due(
    conn,
    spec: EntitySpec,
    *,
    mode: str,
    now: datetime,
    run_id: str,
    stale_after_s: float,
    months=None,
    ids=None,
    eligible_only=True,
    after_id=None,
    limit: int = 200,
) -> list[dict]:
    c = spec.table.c
    query = spec.select().where(
        due_filter(spec, mode=mode, now=now, run_id=run_id, stale_after_s=stale_after_s),
        scope_filter(spec, months=months, ids=ids, eligible_only=eligible_only),
    )
    if after_id is not None:
        query = query.where(c.id > after_id)
    query = query.order_by(c.id).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def count_due(
    conn, spec: EntitySpec, *, mode="due", now=None, run_id=None, stale_after_s=120.0, months=None, ids=None
) -> int:
    now = now or utcnow()
    query = (
        select(func.count())
        .select_from(spec.table)
        .where(
            due_filter(spec, mode=mode, now=now, run_id=run_id, stale_after_s=stale_after_s),
            scope_filter(spec, months=months, ids=ids),
        )
    )
    return int(conn.execute(query).scalar() or 0)


def next_retry_at(conn, spec: EntitySpec, *, months=None, ids=None) -> datetime | None:
    c = spec.table.c
    query = select(func.min(c.zoho_next_attempt_at)).where(
        c.zoho_sync_status.in_((FAILED, RETRYING)),
        c.zoho_next_attempt_at.is_not(None),
        scope_filter(spec, months=months, ids=ids),
    )
    return aware(conn.execute(query).scalar())  # SQLite hands timestamps back naive: they are UTC
