"""The row state machine in SQL: find due rows, claim one, record its outcome, release it. Portable SQLite/Postgres.

A claim is an optimistic compare-and-set on (`zoho_claimed_by`, `zoho_claimed_at`): the UPDATE only matches
when nobody claimed the row since we read it, so two runs never work the same row, on either database. A
`syncing` row whose run stopped heart-beating is free again; the `zoho_create_in_doubt` flag it carries makes
the next attempt look the entity up in ZOHO before any second create.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, case, false, func, null, or_, select, true

from zoho_pipeline.source.tables import dirty_predicate, zoho_sync_logs, zoho_sync_runs
from zoho_pipeline.sync.entities.base import EntitySpec

SYNCING, SYNCED, FAILED, RETRYING, PENDING = "syncing", "synced", "failed", "retrying", "pending"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- runs -----------------------------------------------------------------------------------------------------


def start_run(engine, run_id: str) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(zoho_sync_runs.insert().values(
            run_id=run_id, started_at=now, heartbeat_at=now, host=socket.gethostname()[:255], pid=os.getpid(),
            status="running"))


def heartbeat(engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(zoho_sync_runs.update().where(zoho_sync_runs.c.run_id == run_id).values(heartbeat_at=utcnow()))


def finish_run(engine, run_id: str, status: str, summary: dict) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(zoho_sync_runs.update().where(zoho_sync_runs.c.run_id == run_id).values(
            heartbeat_at=now, finished_at=now, status=status, summary=json.dumps(summary, default=str)))


def live_runs(now: datetime, stale_after_s: float):
    runs = zoho_sync_runs.c
    return select(runs.run_id).where(runs.finished_at.is_(None),
                                     runs.heartbeat_at > now - timedelta(seconds=stale_after_s))


# --- finding work ---------------------------------------------------------------------------------------------


def _month_filter(spec: EntitySpec, months: tuple[date, date] | None):
    if not months or not spec.month_column:
        return true()
    column = spec.table.c[spec.month_column]
    start, end = months
    if spec.month_column == "completed_at":  # a timestamp: compare with midnight UTC
        start = datetime.combine(start, time.min, tzinfo=timezone.utc)
        end = datetime.combine(end, time.min, tzinfo=timezone.utc)
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
            and_(c.zoho_sync_status != SYNCING,
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


def find_due(conn, spec: EntitySpec, *, mode: str, now: datetime, run_id: str, stale_after_s: float,
             months=None, ids=None, eligible_only=True, after_id=None, limit: int = 200) -> list[dict]:
    c = spec.table.c
    query = spec.select().where(
        due_filter(spec, mode=mode, now=now, run_id=run_id, stale_after_s=stale_after_s),
        scope_filter(spec, months=months, ids=ids, eligible_only=eligible_only),
    )
    if after_id is not None:
        query = query.where(c.id > after_id)
    query = query.order_by(c.id).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def count_due(conn, spec: EntitySpec, *, mode="due", now=None, run_id=None, stale_after_s=120.0, months=None,
              ids=None) -> int:
    now = now or utcnow()
    query = select(func.count()).select_from(spec.table).where(
        due_filter(spec, mode=mode, now=now, run_id=run_id, stale_after_s=stale_after_s),
        scope_filter(spec, months=months, ids=ids),
    )
    return int(conn.execute(query).scalar() or 0)


def next_retry_at(conn, spec: EntitySpec, *, months=None, ids=None) -> datetime | None:
    c = spec.table.c
    query = select(func.min(c.zoho_next_attempt_at)).where(
        c.zoho_sync_status.in_((FAILED, RETRYING)), c.zoho_next_attempt_at.is_not(None),
        scope_filter(spec, months=months, ids=ids),
    )
    value = conn.execute(query).scalar()
    if value is not None and value.tzinfo is None:  # SQLite hands timestamps back naive: they are UTC
        value = value.replace(tzinfo=timezone.utc)
    return value


# --- one row's life -------------------------------------------------------------------------------------------


def claim(engine, spec: EntitySpec, row: dict, run_id: str) -> bool:
    """Mark the row `syncing` for this run, unless someone claimed it since we read it. A row about to be created
    also records its intent: in doubt from now on, with the reference the look-up will need (customers: email)."""
    c = spec.table.c
    creating = row[spec.zoho_id_column] is None
    # keep the reference of an earlier create in doubt: that is the one its entity carries in ZOHO
    fresh_intent = creating and spec.lookup_key and not row["zoho_create_in_doubt"]
    extra = {"zoho_lookup_key": spec.lookup_key(row)} if fresh_intent else {}
    with engine.begin() as conn:
        result = conn.execute(
            spec.table.update()
            .where(c.id == row["id"],
                   c.zoho_claimed_by.is_not_distinct_from(row["zoho_claimed_by"]),
                   c.zoho_claimed_at.is_not_distinct_from(row["zoho_claimed_at"]))
            .values(zoho_sync_status=SYNCING, zoho_claimed_by=run_id, zoho_claimed_at=utcnow(),
                    # intent, committed before the call: if this run dies now, the next one looks up first
                    zoho_create_in_doubt=True if creating else bool(row["zoho_create_in_doubt"]), **extra)
        )
        return result.rowcount == 1


def _source_version(spec: EntitySpec, row: dict):
    """The version this attempt covered: the row's updated_at if it did not move while we worked, else NULL so
    the row stays due and its newer data is sent next."""
    c = spec.table.c
    return case((c.updated_at == row["updated_at"], c.updated_at), else_=null())


def _log(conn, spec, row, *, run_id, action, outcome, zoho_id=None, error_code=None, error=None, attempt=None,
         api_calls=0, duration_ms=0) -> None:
    conn.execute(zoho_sync_logs.insert().values(
        entity_type=spec.name, entity_id=str(row["id"]), action=action, outcome=outcome, zoho_id=zoho_id,
        error_code=error_code, error=error, attempt=attempt, api_calls=api_calls, duration_ms=duration_ms,
        run_id=run_id, created_at=utcnow()))


def _owned(spec, row, run_id):
    c = spec.table.c
    return and_(c.id == row["id"], c.zoho_claimed_by == run_id)


def record_success(engine, spec: EntitySpec, row: dict, *, run_id: str, zoho_id: str, payload_hash: str,
                   action: str, outcome: str, api_calls: int, duration_ms: int) -> None:
    with engine.begin() as conn:
        conn.execute(spec.table.update().where(_owned(spec, row, run_id)).values(
            **{spec.zoho_id_column: zoho_id},
            zoho_sync_status=SYNCED, zoho_last_synced_at=utcnow(), zoho_last_sync_error=None, zoho_error_code=None,
            zoho_payload_hash=payload_hash, zoho_source_version=_source_version(spec, row), zoho_attempts=0,
            zoho_next_attempt_at=None, zoho_create_in_doubt=False, zoho_dead_lettered=False))
        _log(conn, spec, row, run_id=run_id, action=action, outcome=outcome, zoho_id=zoho_id,
             attempt=(row["zoho_attempts"] or 0) + 1, api_calls=api_calls, duration_ms=duration_ms)
        if row["zoho_sync_status"] in (FAILED, RETRYING):
            _wake_children(conn, spec, row)


def _wake_children(conn, spec: EntitySpec, row: dict) -> None:
    """A parent that failed before has now synced: children waiting on it are due at once, not in an hour."""
    from zoho_pipeline.sync.entities import SPECS  # the registry imports this module's users, not the reverse

    for child_name, column in spec.children:
        child = SPECS[child_name].table
        conn.execute(child.update().where(
            child.c[column] == row["id"], child.c.zoho_error_code == "parent_failed",
            child.c.zoho_sync_status == FAILED,
        ).values(zoho_next_attempt_at=utcnow()))


def record_failure(engine, spec: EntitySpec, row: dict, *, run_id: str, action: str, error_code: str, error: str,
                   retry_at: datetime | None, count_attempt: bool, max_attempts: int, in_doubt: bool,
                   zoho_id: str | None, api_calls: int, duration_ms: int) -> str:
    """Fail the row. `retry_at` None: permanent (retried only when its data changes or on request).
    Returns the outcome written: failed, retrying or dead_lettered."""
    attempts = (row["zoho_attempts"] or 0) + (1 if count_attempt else 0)
    dead = retry_at is not None and count_attempt and attempts >= max_attempts
    if dead:
        retry_at = None
    status = RETRYING if retry_at is not None and count_attempt else FAILED
    outcome = "dead_lettered" if dead else status
    values = dict(zoho_sync_status=status, zoho_last_sync_error=error[:4000], zoho_error_code=error_code[:32],
                  zoho_attempts=attempts, zoho_next_attempt_at=retry_at, zoho_create_in_doubt=in_doubt,
                  zoho_dead_lettered=dead, zoho_source_version=_source_version(spec, row))
    if zoho_id:
        values[spec.zoho_id_column] = zoho_id
    with engine.begin() as conn:
        conn.execute(spec.table.update().where(_owned(spec, row, run_id)).values(**values))
        _log(conn, spec, row, run_id=run_id, action=action, outcome=outcome, zoho_id=zoho_id, error_code=error_code,
             error=error[:4000], attempt=attempts, api_calls=api_calls, duration_ms=duration_ms)
    return outcome


def release(engine, spec: EntitySpec, row: dict, *, run_id: str) -> None:
    """Give a claimed row back untouched (the run is stopping and nothing was sent): it stays due."""
    previous = row["zoho_sync_status"]
    with engine.begin() as conn:
        conn.execute(spec.table.update().where(_owned(spec, row, run_id)).values(
            zoho_sync_status=PENDING if previous in (None, SYNCING) else previous,
            zoho_create_in_doubt=bool(row["zoho_create_in_doubt"])))


def log_unchanged(engine, spec, row, *, run_id, zoho_id, payload_hash) -> None:
    record_success(engine, spec, row, run_id=run_id, zoho_id=zoho_id, payload_hash=payload_hash, action="skip",
                   outcome="unchanged", api_calls=0, duration_ms=0)
