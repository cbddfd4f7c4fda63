"""The row state machine in SQL: claim a chunk, record its outcomes or release it. Portable SQLite/Postgres.
Which rows are due is due_rows.py's; the runs whose heartbeat keeps a claim alive, runs.py's.

A claim is an optimistic compare-and-set on (`zoho_claimed_by`, `zoho_claimed_at`): the UPDATE only matches
when nobody claimed the row since we read it, so two runs never work the same row, on either database. A
`syncing` row whose run stopped heart-beating is free again; the `zoho_create_in_doubt` flag it carries makes
the next attempt look the entity up in ZOHO before any second create.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, null, select

from zoho_pipeline.source.database import storable, utcnow
from zoho_pipeline.source.tables import zoho_sync_logs
from zoho_pipeline.sync import payloads
from zoho_pipeline.sync.chunk_sql import execute_joined
from zoho_pipeline.sync.entities.base import EntitySpec

SYNCING, SYNCED, FAILED, RETRYING, PENDING = "syncing", "synced", "failed", "retrying", "pending"
UNCHANGED, DEAD_LETTERED, RELEASED = "unchanged", "dead_lettered", "released"  # outcomes besides the statuses
WAITING_CODE = "waiting"  # the error code of a row that waits (a future-dated change, a recurring invoice's link)


# --- a chunk of rows' life ------------------------------------------------------------------------------------
# Claims and outcomes are written a chunk at a time, in one transaction each, by the thread that runs the
# sweep: the workers only build payloads and call ZOHO. A chunk's claim is its intent, committed before any of
# its calls; a run that dies before recording leaves its rows `syncing` and in doubt, so the next run looks
# each one up before creating it (at most the rows claimed ahead pay that look-up).

_statements: dict[tuple[str, str], object] = {}


def _statement(spec: EntitySpec, build):
    """Statements are built once per entity with bind parameters, so a chunk runs as one executemany."""
    key = (spec.name, build.__name__)
    if key not in _statements:
        _statements[key] = build(spec)
    return _statements[key]


def _claim_statement(spec: EntitySpec):
    c = spec.table.c
    values = dict(
        zoho_sync_status=SYNCING,
        zoho_claimed_by=bindparam("b_run_id", type_=c.zoho_claimed_by.type),
        zoho_claimed_at=bindparam("b_now", type_=c.zoho_claimed_at.type),
        zoho_create_in_doubt=bindparam("b_in_doubt", type_=c.zoho_create_in_doubt.type),
    )
    if spec.lookup_key:
        values["zoho_lookup_key"] = bindparam("b_lookup_key", type_=c.zoho_lookup_key.type)
    return (
        spec.table.update()
        .where(
            c.id == bindparam("b_id", type_=c.id.type),
            # compare-and-set: nobody claimed the row since we read it
            c.zoho_claimed_by.is_not_distinct_from(bindparam("b_was_by", type_=c.zoho_claimed_by.type)),
            c.zoho_claimed_at.is_not_distinct_from(bindparam("b_was_at", type_=c.zoho_claimed_at.type)),
        )
        .values(**values)
    )


def claim_rows(engine, spec: EntitySpec, rows: list[dict], run_id: str, now: datetime | None = None) -> list[dict]:
    """Mark `rows` `syncing` for this run, except those someone claimed since we read them; returns the rows
    claimed. Each claim records its intent: in doubt from now on (a create is looked up, a lifecycle action reads
    ZOHO's state before acting again), and for a create the reference the look-up will need (customers: email)."""
    if not rows:
        return []
    now = now or utcnow()  # given by a retry: its own claim committed before the error is then found ours
    params = []
    for row in rows:
        creating = row[spec.zoho_id_column] is None
        param = dict(
            b_id=row["id"],
            b_was_by=row["zoho_claimed_by"],
            b_was_at=row["zoho_claimed_at"],
            b_run_id=run_id,
            b_now=now,
            b_in_doubt=True,  # the intent: until the outcome is recorded, this attempt may have acted
        )
        if spec.lookup_key:
            # keep the reference of an earlier create in doubt: that is the one its entity carries in ZOHO
            fresh_intent = creating and not row["zoho_create_in_doubt"]
            param["b_lookup_key"] = spec.lookup_key(row) if fresh_intent else row.get("zoho_lookup_key")
        params.append(param)
    c = spec.table.c
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # one statement, its RETURNING names the rows claimed
            mine = set(execute_joined(conn, _statement(spec, _claim_statement), params, returning=c.id).scalars())
            return [row for row in rows if row["id"] in mine]
        result = conn.execute(_statement(spec, _claim_statement), params)
        if conn.dialect.supports_sane_multi_rowcount and result.rowcount == len(rows):
            return rows  # every compare-and-set matched: the usual case, no need to ask which
        mine = set(
            conn.execute(
                select(c.id).where(
                    c.id.in_([row["id"] for row in rows]), c.zoho_claimed_by == run_id, c.zoho_claimed_at == now
                )
            ).scalars()
        )
    return [row for row in rows if row["id"] in mine]


@dataclass
class Outcome:
    """What one attempt at one row came to; `record` writes a chunk of them."""

    row: dict
    outcome: str  # synced, unchanged, failed, retrying, dead_lettered; released: nothing was sent
    action: str = "skip"  # create, update, adopt, skip
    zoho_id: str | None = None
    payload_hash: str | None = None
    error_code: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    attempts: int = 0
    in_doubt: bool = False
    api_calls: int = 0
    duration_ms: int = 0
    # canonical JSON ZOHO accepted (sent by this attempt), or a failed attempt's whose lifecycle step acted (ZOHO
    # holds it in part: attempt's ctx.acted); None when nothing was sent
    payload: str | None = None
    calls: list | None = None  # the attempt's API calls (sync.inspector.RowCalls of the client's exchanges)

    @property
    def synced(self) -> bool:
        return self.outcome in (SYNCED, UNCHANGED)


def succeeded(
    row: dict,
    *,
    zoho_id: str,
    payload_hash: str,
    action: str,
    api_calls: int = 0,
    duration_ms: int = 0,
    payload: str | None = None,
) -> Outcome:
    """ZOHO holds the row's payload: sent by this attempt (`payload`: its canonical JSON, stored as the last
    accepted), or already there (action `skip`: unchanged, the stored payload stands)."""
    return Outcome(
        row,
        UNCHANGED if action == "skip" else SYNCED,
        action,
        zoho_id,
        payload_hash,
        attempts=(row["zoho_attempts"] or 0) + 1,
        api_calls=api_calls,
        duration_ms=duration_ms,
        payload=payload,
    )


def failed(
    row: dict,
    *,
    action: str,
    error_code: str,
    error: str,
    retry_at: datetime | None,
    count_attempt: bool,
    max_attempts: int,
    in_doubt: bool,
    zoho_id: str | None,
    api_calls: int,
    duration_ms: int,
    payload: str | None = None,
) -> Outcome:
    """A failed attempt. `retry_at` None: permanent (retried only when its data changes or on request); after
    `max_attempts` counted attempts a retryable failure is dead-lettered. `payload`: kept as the last accepted
    (a lifecycle step acted before the failure)."""
    attempts = (row["zoho_attempts"] or 0) + (1 if count_attempt else 0)
    dead = retry_at is not None and count_attempt and attempts >= max_attempts
    if dead:
        retry_at = None
    status = RETRYING if retry_at is not None and count_attempt else FAILED
    return Outcome(
        row,
        DEAD_LETTERED if dead else status,
        action,
        zoho_id,
        None,
        storable(error_code[:32]),
        storable(error[:4000]),  # ZOHO's message: a NUL in it would make the chunk's write fail on Postgres
        retry_at,
        attempts,
        in_doubt,
        api_calls,
        duration_ms,
        payload,
    )


def waiting(
    row: dict, *, action: str, reason: str, until: datetime, in_doubt: bool, api_calls: int, duration_ms: int
) -> Outcome:
    """Nothing to send before `until`: `retrying` then, the attempt not counted (never dead-lettered for waiting)."""
    return Outcome(
        row,
        RETRYING,
        action,
        None,
        None,
        WAITING_CODE,
        reason[:4000],
        until,
        row["zoho_attempts"] or 0,
        in_doubt,
        api_calls,
        duration_ms,
    )


def released(row: dict) -> Outcome:
    """Give a claimed row back untouched (the run is stopping and nothing was sent): it stays due."""
    return Outcome(row, RELEASED)


def _source_version(spec: EntitySpec):
    """The version this attempt covered: the row's updated_at if it did not move while we worked, else NULL so
    the row stays due and its newer data is sent next."""
    c = spec.table.c
    return case((c.updated_at == bindparam("b_updated_at", type_=c.updated_at.type), c.updated_at), else_=null())


def _owned(spec: EntitySpec):
    c = spec.table.c
    return and_(
        c.id == bindparam("b_id", type_=c.id.type),
        c.zoho_claimed_by == bindparam("b_run_id", type_=c.zoho_claimed_by.type),
    )


def _success_statement(spec: EntitySpec):
    c = spec.table.c
    return (
        spec.table.update()
        .where(_owned(spec))
        .values(
            **{
                spec.zoho_id_column: bindparam("b_zoho_id", type_=c[spec.zoho_id_column].type),
                "zoho_sync_status": SYNCED,
                "zoho_last_synced_at": bindparam("b_now", type_=spec.table.c.zoho_last_synced_at.type),
                "zoho_last_sync_error": None,
                "zoho_error_code": None,
                "zoho_payload_hash": bindparam("b_hash", type_=c.zoho_payload_hash.type),
                "zoho_source_version": _source_version(spec),
                "zoho_attempts": 0,
                "zoho_next_attempt_at": None,
                "zoho_create_in_doubt": False,
                "zoho_dead_lettered": False,
            }
        )
    )


def _failure_statement(spec: EntitySpec):
    c = spec.table.c
    return (
        spec.table.update()
        .where(_owned(spec))
        .values(
            **{
                "zoho_sync_status": bindparam("b_status"),
                "zoho_last_sync_error": bindparam("b_error"),
                "zoho_error_code": bindparam("b_code"),
                "zoho_attempts": bindparam("b_attempts"),
                "zoho_next_attempt_at": bindparam("b_retry_at", type_=c.zoho_next_attempt_at.type),
                "zoho_create_in_doubt": bindparam("b_in_doubt"),
                "zoho_dead_lettered": bindparam("b_dead"),
                "zoho_source_version": _source_version(spec),
                # an id ZOHO gave this attempt is kept even though the row failed after it
                spec.zoho_id_column: func.coalesce(bindparam("b_zoho_id"), c[spec.zoho_id_column]),
            }
        )
    )


def _release_statement(spec: EntitySpec):
    return (
        spec.table.update()
        .where(_owned(spec))
        .values(zoho_sync_status=bindparam("b_status"), zoho_create_in_doubt=bindparam("b_in_doubt"))
    )


def record(engine, spec: EntitySpec, outcomes: list[Outcome], *, run_id: str, inspector=None) -> None:
    """Write a chunk of outcomes in one transaction: each row's state where this run still owns it, one
    `zoho_sync_logs` row per attempt, the payload ZOHO accepted for each row sent, and (with `inspector`, a
    sync.inspector.CallRecorder) the API calls the attempts made."""
    if not outcomes:
        return
    now = utcnow()
    successes, failures, releases, logs, accepted = [], [], [], [], []
    for o in outcomes:
        row = o.row
        base = dict(b_id=row["id"], b_run_id=run_id)
        if o.payload is not None:  # sent, or acted in part before a failure (Outcome.payload)
            accepted.append((row["id"], o.payload))
        if o.outcome == RELEASED:
            previous = row["zoho_sync_status"]
            releases.append(
                dict(
                    base,
                    b_status=PENDING if previous in (None, SYNCING) else previous,
                    b_in_doubt=o.in_doubt or bool(row["zoho_create_in_doubt"]),
                )
            )
            continue
        if o.synced:
            successes.append(
                dict(base, b_zoho_id=o.zoho_id, b_now=now, b_hash=o.payload_hash, b_updated_at=row["updated_at"])
            )
        else:
            failures.append(
                dict(
                    base,
                    b_status=FAILED if o.outcome == DEAD_LETTERED else o.outcome,
                    b_error=o.error,
                    b_code=o.error_code,
                    b_attempts=o.attempts,
                    b_retry_at=o.retry_at,
                    b_in_doubt=o.in_doubt,
                    b_dead=o.outcome == DEAD_LETTERED,
                    b_zoho_id=o.zoho_id,
                    b_updated_at=row["updated_at"],
                )
            )
        logs.append(
            dict(
                entity_type=spec.name,
                entity_id=str(row["id"]),
                action=o.action,
                outcome=o.outcome,
                zoho_id=o.zoho_id,
                error_code=o.error_code,
                error=o.error,
                attempt=o.attempts,
                api_calls=o.api_calls,
                duration_ms=o.duration_ms,
                run_id=run_id,
                created_at=now,
            )
        )
    with engine.begin() as conn:
        for params, build in (
            (successes, _success_statement),
            (failures, _failure_statement),
            (releases, _release_statement),
        ):
            if params and build is _success_statement and conn.dialect.name == "postgresql":
                execute_joined(conn, _statement(spec, build), params)  # the usual outcome: one statement
            elif params:
                conn.execute(_statement(spec, build), params)
        if logs:
            conn.execute(zoho_sync_logs.insert(), logs)
        updated = [(o.row["id"], o.payload) for o in outcomes if o.synced and o.payload and o.action == "update"]
        if spec.after_record and updated:  # before the write: what ZOHO held until now is still in the store
            before = payloads.load(conn, spec.name, [row_id for row_id, _ in updated])
            spec.after_record(conn, before, {row_id: json.loads(text) for row_id, text in updated})
        payloads.write(conn, spec.name, accepted, now)
        if inspector is not None:
            inspector.write(conn, [o.calls for o in outcomes if o.calls])
        recovered = [o.row["id"] for o in outcomes if o.synced and o.row["zoho_sync_status"] in (FAILED, RETRYING)]
        if recovered:
            _wake_children(conn, spec, recovered)


def _wake_children(conn, spec: EntitySpec, parent_ids: list) -> None:
    """A parent that failed before has now synced: children waiting on it are due at once, not in an hour."""
    from zoho_pipeline.sync.entities import SPECS  # the registry imports this module's users, not the reverse

    for child_name, column in spec.children:
        child = SPECS[child_name].table
        conn.execute(
            child.update()
            .where(
                child.c[column].in_(parent_ids),
                child.c.zoho_error_code == "parent_failed",
                child.c.zoho_sync_status == FAILED,
            )
            .values(zoho_next_attempt_at=utcnow())
        )
