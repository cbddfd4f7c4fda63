"""Read-side queries over the rows' sync state, shared by the verdicts, the operator CLI (`status`, `logs`,
`retry`, `health`, `alert`, `reconcile`) and the Dagster asset checks. The attempt log and the runs: history.py.

SQLAlchemy Core only, portable between SQLite and Postgres. Every query is shaped for the indexes the migrations
create: `zoho_sync_status` and the ZOHO id column per business table, the partial "due" index on the dirty
predicate, and `zoho_sync_logs` (created_at), (entity_type, entity_id), (outcome, created_at). Labels are looked up by
primary key for the rows of one page only, so a log page costs the same on a table of 10 rows or 10 million.

Vocabulary
- entity: one of `plans`, `customers`, `subscriptions`, `invoices`, `payments` (sync.settings.ENTITY_ORDER).
- eligible rows: the rows an entity pushes (e.g. only manual invoices, only completed payments); counts cover
  only those.
- status: `zoho_sync_status`; NULL counts as `pending`. `dead_lettered` rows (failed, no automatic retry) are
  counted apart from `failed`, so the statuses of one entity add up to its `total`.
- due: rows the engine would pick up now; the engine's own rule, sync.due_rows.due_filter (never synced, changed
  since the last sync, failed/retrying with the next attempt due, claimed by a dead run).
- label: the row as a person knows it (each entity module's `label_sql`): customers "First Last <email>",
  subscriptions "<package> for <email>", invoices their invoice number, payments their transaction id, plans the
  package name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline.source.database import aware, db_time, id_params, iso, utcnow
from zoho_pipeline.sync import due_rows
from zoho_pipeline.sync.entities import entities, entity_aliases, spec
from zoho_pipeline.sync.entities.base import EntitySpec
from zoho_pipeline.sync.settings import SyncSettings

STATUSES = ("pending", "syncing", "synced", "failed", "retrying")
COUNT_KEYS = (*STATUSES, "dead_lettered", "total")

# --- counts ------------------------------------------------------------------------------------------------------


def _dead(c):
    return c.zoho_dead_lettered.is_(True)


def status_counts(engine: sa.Engine, selected: str | Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """{entity: {pending, syncing, synced, failed, retrying, dead_lettered, total}} over eligible rows.

    NULL or unknown status counts as pending; dead-lettered rows count only under `dead_lettered`."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for name in entities(selected):
            info = spec(name)
            c = info.table.c
            counts = dict.fromkeys(COUNT_KEYS, 0)
            dead = sa.case((_dead(c), 1), else_=0)
            q = (
                sa.select(c.zoho_sync_status, dead.label("dead"), sa.func.count().label("n"))
                .where(info.where_eligible())
                .group_by(c.zoho_sync_status, dead)
            )
            for status, is_dead, n in conn.execute(q):
                if is_dead:
                    key = "dead_lettered"
                else:
                    key = status if status in STATUSES else "pending"
                counts[key] += n
                counts["total"] += n
            out[name] = counts
    return out


def totals(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The per-entity counts of `status_counts` added up."""
    out = dict.fromkeys(COUNT_KEYS, 0)
    for per in counts.values():
        for k in COUNT_KEYS:
            out[k] += per.get(k, 0)
    return out


def _stale_after_s(stale_after_s: float | None) -> float:
    """Default: rows under a run that stopped beating count as due (in doubt), as in the engine's own backlog."""
    return SyncSettings.from_env().silent_after_s if stale_after_s is None else stale_after_s


def due_where(info: EntitySpec, now: datetime, stale_after_s: float | None = None):
    """The engine's own due rule (sync.claims) over the eligible rows: one definition of "due"."""
    return sa.and_(
        due_rows.due_filter(info, mode="due", now=aware(now), run_id=None, stale_after_s=_stale_after_s(stale_after_s)),
        due_rows.scope_filter(info),
    )


def due_count(
    engine: sa.Engine, entity: str, now: datetime | None = None, *, stale_after_s: float | None = None
) -> int:
    """Rows the engine would pick up now (sync.due_rows.due_filter): never synced, changed since their last sync,
    failed or retrying with their next attempt due, or claimed by a run that died. A permanently failed or
    dead-lettered row waits until its data changes or an operator requeues it (`zoho-pipeline retry`).
    `stale_after_s`: a run's heartbeat age past which its claims count as due (default SyncSettings.silent_after_s:
    in doubt, though the engine takes them over only at run_stale_after_s)."""
    with engine.connect() as conn:
        return due_rows.count_due(
            conn, spec(entity), now=aware(now or utcnow()), stale_after_s=_stale_after_s(stale_after_s)
        )


def oldest_due_age_s(
    engine: sa.Engine, entity: str, now: datetime | None = None, *, stale_after_s: float | None = None
) -> float | None:
    """Seconds since the oldest due row last changed in the source (how far ZOHO lags); None when nothing is due."""
    now = now or utcnow()
    info = spec(entity)
    t = info.table
    with engine.connect() as conn:
        oldest = conn.execute(
            sa.select(sa.func.min(t.c.updated_at)).where(due_where(info, now, stale_after_s))
        ).scalar()
    if oldest is None:
        return None
    return max(0.0, (now - aware(oldest)).total_seconds())


def backlog(
    engine: sa.Engine, selected=None, now: datetime | None = None, *, stale_after_s: float | None = None
) -> dict[str, dict]:
    """{entity: {due, oldest_due_age_s}}."""
    now = now or utcnow()
    stale = _stale_after_s(stale_after_s)
    return {
        e: {
            "due": due_count(engine, e, now, stale_after_s=stale),
            "oldest_due_age_s": oldest_due_age_s(engine, e, now, stale_after_s=stale),
        }
        for e in entities(selected)
    }


# --- rows needing attention --------------------------------------------------------------------------------------


def _last_attempt(info: EntitySpec):
    lg = T.zoho_sync_logs
    return (
        sa.select(sa.func.max(lg.c.created_at))
        .where(lg.c.entity_type.in_(entity_aliases(info.name)))
        .where(lg.c.entity_id == sa.cast(info.table.c.id, sa.String))
        .scalar_subquery()
    )


def stuck_rows(
    engine: sa.Engine,
    entity: str,
    older_than_s: float = 900.0,
    limit: int = 100,
    *,
    heartbeat_stale_s: float = 120.0,
    now: datetime | None = None,
) -> list[dict]:
    """Rows left in `syncing`: claimed longer ago than `older_than_s`, or claimed by a run that finished, is
    unknown, or whose heartbeat in zoho_sync_runs is older than `heartbeat_stale_s` (the run died)."""
    now = now or utcnow()
    info = spec(entity)
    t, r = info.table, T.zoho_sync_runs
    claim_cutoff = db_time(engine, now - timedelta(seconds=older_than_s))
    beat_cutoff = db_time(engine, now - timedelta(seconds=heartbeat_stale_s))
    j = t.outerjoin(r, r.c.run_id == t.c.zoho_claimed_by)
    reason = sa.case(
        (t.c.zoho_claimed_at.is_(None), "no claim time"),
        (t.c.zoho_claimed_at < claim_cutoff, "claim older than timeout"),
        (r.c.run_id.is_(None), "claiming run unknown"),
        (r.c.finished_at.is_not(None), "claiming run finished"),
        else_="claiming run heartbeat stale",
    )
    q = (
        sa.select(
            t.c.id,
            info.label_sql().label("label"),
            t.c.zoho_claimed_by,
            t.c.zoho_claimed_at,
            t.c.zoho_attempts,
            r.c.heartbeat_at,
            r.c.status.label("run_status"),
            reason.label("reason"),
        )
        .select_from(j)
        .where(t.c.zoho_sync_status == "syncing")
        .where(
            sa.or_(
                t.c.zoho_claimed_at.is_(None),
                t.c.zoho_claimed_at < claim_cutoff,
                r.c.run_id.is_(None),
                r.c.finished_at.is_not(None),
                r.c.heartbeat_at < beat_cutoff,
            )
        )
        .order_by(
            t.c.zoho_claimed_at.asc().nulls_first()
            if engine.dialect.name == "postgresql"
            else t.c.zoho_claimed_at.asc()
        )
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [
        {
            "entity": info.name,
            "id": str(x.id),
            "label": x.label,
            "claimed_by": x.zoho_claimed_by,
            "claimed_at": iso(x.zoho_claimed_at),
            "attempts": x.zoho_attempts or 0,
            "run_heartbeat_at": iso(x.heartbeat_at),
            "run_status": x.run_status,
            "reason": x.reason,
            "age_s": round((now - aware(x.zoho_claimed_at)).total_seconds(), 1) if x.zoho_claimed_at else None,
        }
        for x in rows
    ]


def failed_rows(
    engine: sa.Engine, entity: str, limit: int = 50, *, include_retrying: bool = False, dead_only: bool = False
) -> list[dict]:
    """Failed rows, dead-lettered first then newest: label, error code, error, attempts, last attempt."""
    info = spec(entity)
    t = info.table
    c = t.c
    statuses = ("failed", "retrying") if include_retrying else ("failed",)
    cond = _dead(c) if dead_only else sa.or_(c.zoho_sync_status.in_(statuses), _dead(c))
    last = _last_attempt(info).label("last_attempt_at")
    q = (
        sa.select(
            c.id,
            info.label_sql().label("label"),
            c.zoho_sync_status,
            c.zoho_error_code,
            c.zoho_last_sync_error,
            c.zoho_attempts,
            c.zoho_dead_lettered,
            c.zoho_next_attempt_at,
            c.zoho_claimed_at,
            c.updated_at,
            info.zoho_id.label("zoho_id"),
            last,
        )
        .where(cond)
        .where(info.where_eligible())
        .order_by(sa.case((_dead(c), 0), else_=1), c.updated_at.desc(), c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [
        {
            "entity": info.name,
            "id": str(x.id),
            "label": x.label,
            "status": x.zoho_sync_status,
            "error_code": x.zoho_error_code,
            "error": x.zoho_last_sync_error,
            "attempts": x.zoho_attempts or 0,
            "dead_lettered": bool(x.zoho_dead_lettered),
            "next_attempt_at": iso(x.zoho_next_attempt_at),
            "last_attempt_at": iso(x.last_attempt_at or x.zoho_claimed_at),
            "zoho_id": x.zoho_id,
        }
        for x in rows
    ]


def synced_without_id(engine: sa.Engine, entity: str, limit: int = 50) -> list[dict]:
    """Rows marked synced that carry no ZOHO id: they would be created again or never be updated."""
    info = spec(entity)
    t = info.table
    q = (
        sa.select(t.c.id, info.label_sql().label("label"), t.c.zoho_last_synced_at)
        .where(t.c.zoho_sync_status == "synced")
        .where(sa.or_(info.zoho_id.is_(None), info.zoho_id == ""))
        .order_by(t.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            {"entity": info.name, "id": str(x.id), "label": x.label, "last_synced_at": iso(x.zoho_last_synced_at)}
            for x in conn.execute(q)
        ]


def synced_without_id_count(engine: sa.Engine, entity: str) -> int:
    info = spec(entity)
    t = info.table
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t)
                .where(t.c.zoho_sync_status == "synced")
                .where(sa.or_(info.zoho_id.is_(None), info.zoho_id == ""))
            ).scalar_one()
        )


def stuck_count(engine: sa.Engine, entity: str, older_than_s: float = 900.0, **kw) -> int:
    return len(stuck_rows(engine, entity, older_than_s, limit=10_000, **kw))


# --- labels and ids ---------------------------------------------------------------------------------------------


def labels_for(engine: sa.Engine, entity: str, ids: Iterable[str]) -> dict[str, str]:
    """{source id: label} for the given ids of one entity (primary-key look-ups, batched)."""
    ids = sorted({str(i) for i in ids if i})
    if not ids:
        return {}
    info = spec(entity)
    t = info.table
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(
                sa.select(t.c.id, info.label_sql().label("label")).where(t.c.id.in_(id_params(engine, chunk)))
            )
            out.update({str(r.id): r.label for r in rows})
    return out


def failed_ids(engine: sa.Engine, entity: str, limit: int | None = None) -> list[str]:
    """Ids of failed, retrying or dead-lettered eligible rows (what `retry --failed` requeues)."""
    info = spec(entity)
    c = info.table.c
    q = (
        sa.select(c.id)
        .where(sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), _dead(c)))
        .where(info.where_eligible())
        .order_by(c.id)
    )
    if limit:
        q = q.limit(limit)
    with engine.connect() as conn:
        return [str(x) for x in conn.execute(q).scalars()]


def existing_ids(engine: sa.Engine, entity: str, ids: Iterable[str]) -> set[str]:
    info = spec(entity)
    t = info.table
    id_list = id_params(engine, [str(i) for i in ids])
    if not id_list:
        return set()
    with engine.connect() as conn:
        return {str(x) for x in conn.execute(sa.select(t.c.id).where(t.c.id.in_(id_list))).scalars()}


# --- finding rows by what a person knows ------------------------------------------------------------------------


def resolve_ids(engine: sa.Engine, entity: str, keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map what an operator typed (a source id, or an email / invoice number / transaction id / plan code / ZOHO
    id) to source ids. Returns ({typed key: source id}, [keys not found]). Unique keys only: no guessing."""
    info = spec(entity)
    t = info.table
    keys = [str(k).strip() for k in keys if str(k).strip()]
    found: dict[str, str] = {}
    by_id = existing_ids(engine, info.name, keys)
    for k in keys:
        if k in by_id:
            found[k] = k
    rest = [k for k in keys if k not in found]
    with engine.connect() as conn:
        for col in info.natural_keys:
            if not rest:
                break
            column = t.c[col]
            # an email is found whatever its case
            match = sa.func.lower(column).in_([k.lower() for k in rest]) if col == "email" else column.in_(rest)
            rows = conn.execute(sa.select(t.c.id, column.label("key")).where(match)).all()
            counts: dict[str, list[str]] = {}
            for r in rows:
                counts.setdefault(str(r.key).lower() if col == "email" else str(r.key), []).append(str(r.id))
            for k in list(rest):
                hits = counts.get(k.lower() if col == "email" else k, [])
                if len(hits) == 1:
                    found[k] = hits[0]
                    rest.remove(k)
    return found, rest
