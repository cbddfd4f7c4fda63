"""Read-side queries over the sync state, shared by the operator CLI (`status`, `logs`, `retry`, `health`,
`alert`, `reconcile`) and by the Dagster asset checks.

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
- due: rows the engine would pick up now; the engine's own rule, sync.claims.due_filter (never synced, changed
  since the last sync, failed/retrying with the next attempt due, claimed by a dead run).
- label: the row as a person knows it: customers "First Last <email>", subscriptions "<package> for <email>",
  invoices their invoice number, payments their gateway transaction id, plans the package name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync import claims
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.base import EntitySpec
from zoho_pipeline.sync.settings import ENTITY_ORDER, SyncSettings

STATUSES = ("pending", "syncing", "synced", "failed", "retrying")
COUNT_KEYS = (*STATUSES, "dead_lettered", "total")
# Log outcomes (tables.zoho_sync_logs.outcome) grouped for success rates.
SUCCESS_OUTCOMES = ("synced", "unchanged", "adopted", "created", "updated")
FAILURE_OUTCOMES = ("failed", "dead_lettered")
RETRY_OUTCOMES = ("retrying", "retried")
NON_ATTEMPT_OUTCOMES = ("dry_run", "skipped")

# The names a log row or a user may give an entity (the engine writes the entity name; tolerate the others).
_ALIASES = {
    "plans": ("plans", "plan", "service_packages", "products"),
    "customers": ("customers", "customer"),
    "subscriptions": ("subscriptions", "subscription", "customer_services", "services", "service"),
    "invoices": ("invoices", "invoice", "customer_invoices"),
    "payments": ("payments", "payment", "payment_transactions", "transactions"),
}
_BY_ALIAS = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}


def entity_name(value: str) -> str:
    """The canonical entity name for an entity name, a singular, or a table name; ValueError otherwise."""
    key = (value or "").strip().lower()
    if key not in _BY_ALIAS:
        raise ValueError(f"unknown entity {value!r}: expected one of {', '.join(ENTITY_ORDER)}")
    return _BY_ALIAS[key]


def entity_aliases(entity: str) -> tuple[str, ...]:
    return _ALIASES[entity_name(entity)]


# --- entity registry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityInfo:
    """An entity as the read side sees it: the engine's own EntitySpec (sync.entities.SPECS), one definition."""
    name: str
    spec: EntitySpec

    @property
    def table(self) -> sa.Table:
        return self.spec.table

    @property
    def zoho_id_column(self) -> str:
        return self.spec.zoho_id_column

    @property
    def zoho_id(self) -> sa.Column:
        return self.table.c[self.zoho_id_column]

    def where_eligible(self):
        return self.spec.eligible(self.table)


def entity_info(entity: str) -> EntityInfo:
    name = entity_name(entity)
    return EntityInfo(name, SPECS[name])


def entities(selected: str | Iterable[str] | None = None) -> list[str]:
    """Canonical entity names in sync order; all of them for None."""
    if selected is None:
        return list(ENTITY_ORDER)
    if isinstance(selected, str):
        selected = [selected]
    wanted = {entity_name(e) for e in selected}
    return [e for e in ENTITY_ORDER if e in wanted]


# --- labels ------------------------------------------------------------------------------------------------------


def _txt(value) -> sa.ColumnElement:
    return sa.func.coalesce(sa.cast(value, sa.Text), sa.literal("?", sa.Text))


def label_expr(entity: str, table: sa.Table | None = None) -> sa.ColumnElement:
    """SQL expression naming a row of `entity` as a person knows it (correlated look-ups by primary key)."""
    name = entity_name(entity)
    t = table if table is not None else entity_info(name).table
    c = t.c
    lit = lambda s: sa.literal(s, sa.Text)  # noqa: E731
    if name == "plans":
        return _txt(c.name)
    if name == "customers":
        return _txt(c.first_name) + lit(" ") + _txt(c.last_name) + lit(" <") + _txt(c.email) + lit(">")
    if name == "subscriptions":
        p, cu = T.service_packages.alias("label_pkg"), T.customers.alias("label_cust")  # never auto-correlated
        pkg = sa.select(p.c.name).where(p.c.id == c.package_id).correlate(t)
        email = sa.select(cu.c.email).where(cu.c.id == c.customer_id).correlate(t)
        return _txt(pkg.scalar_subquery()) + lit(" for ") + _txt(email.scalar_subquery())
    if name == "invoices":
        return _txt(c.invoice_number)
    return _txt(c.transaction_id)


def labels_for(engine: sa.Engine, entity: str, ids: Iterable[str]) -> dict[str, str]:
    """{source id: label} for the given ids of one entity (primary-key look-ups, batched)."""
    ids = sorted({str(i) for i in ids if i})
    if not ids:
        return {}
    info = entity_info(entity)
    t = info.table
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = conn.execute(sa.select(t.c.id, label_expr(info.name, t).label("label"))
                                .where(t.c.id.in_(_id_params(engine, chunk))))
            out.update({str(r.id): r.label for r in rows})
    return out


def _id_params(engine, ids: Sequence[str]) -> list[str]:
    if engine.dialect.name != "postgresql":
        return list(ids)
    # Postgres uuid columns reject non-uuid text: leave malformed ids out rather than fail the whole page.
    import uuid

    good = []
    for i in ids:
        try:
            uuid.UUID(str(i))
            good.append(str(i))
        except ValueError:
            pass
    return good


# --- time --------------------------------------------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def aware(value) -> datetime | None:
    """A datetime read from either database, as an aware UTC datetime (SQLite keeps naive UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def db_time(engine: sa.Engine, value: datetime) -> datetime:
    """A bind value comparable with stored timestamps: UTC, naive on SQLite."""
    value = aware(value)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def iso(value) -> str | None:
    v = aware(value)
    return v.isoformat(timespec="seconds") if v else None


# --- counts ------------------------------------------------------------------------------------------------------


def _dead(c):
    return c.zoho_dead_lettered.is_(True)


def status_counts(engine: sa.Engine, selected: str | Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """{entity: {pending, syncing, synced, failed, retrying, dead_lettered, total}} over eligible rows.

    NULL or unknown status counts as pending; dead-lettered rows count only under `dead_lettered`."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for name in entities(selected):
            info = entity_info(name)
            c = info.table.c
            counts = dict.fromkeys(COUNT_KEYS, 0)
            dead = sa.case((_dead(c), 1), else_=0)
            q = (sa.select(c.zoho_sync_status, dead.label("dead"), sa.func.count().label("n"))
                 .where(info.where_eligible()).group_by(c.zoho_sync_status, dead))
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
    return SyncSettings.from_env().run_stale_after_s if stale_after_s is None else stale_after_s


def due_where(info: EntityInfo, now: datetime, stale_after_s: float | None = None):
    """The engine's own due rule (sync.claims) over the eligible rows: one definition of "due"."""
    return sa.and_(
        claims.due_filter(info.spec, mode="due", now=aware(now), run_id=None,
                          stale_after_s=_stale_after_s(stale_after_s)),
        claims.scope_filter(info.spec),
    )


def due_count(engine: sa.Engine, entity: str, now: datetime | None = None, *,
              stale_after_s: float | None = None) -> int:
    """Rows the engine would pick up now (sync.claims.due_filter): never synced, changed since their last sync,
    failed or retrying with their next attempt due, or claimed by a run that died. A permanently failed or
    dead-lettered row waits until its data changes or an operator requeues it (`zoho-pipeline retry`).
    `stale_after_s`: a run's heartbeat age that makes it dead (default SyncSettings.run_stale_after_s)."""
    with engine.connect() as conn:
        return claims.count_due(conn, entity_info(entity).spec, now=aware(now or now_utc()),
                                stale_after_s=_stale_after_s(stale_after_s))


def oldest_due_age_s(engine: sa.Engine, entity: str, now: datetime | None = None, *,
                     stale_after_s: float | None = None) -> float | None:
    """Seconds since the oldest due row last changed in the source (how far ZOHO lags); None when nothing is due."""
    now = now or now_utc()
    info = entity_info(entity)
    t = info.table
    with engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(t.c.updated_at))
                              .where(due_where(info, now, stale_after_s))).scalar()
    if oldest is None:
        return None
    return max(0.0, (now - aware(oldest)).total_seconds())


def backlog(engine: sa.Engine, selected=None, now: datetime | None = None, *,
            stale_after_s: float | None = None) -> dict[str, dict]:
    """{entity: {due, oldest_due_age_s}}."""
    now = now or now_utc()
    stale = _stale_after_s(stale_after_s)
    return {e: {"due": due_count(engine, e, now, stale_after_s=stale),
                "oldest_due_age_s": oldest_due_age_s(engine, e, now, stale_after_s=stale)}
            for e in entities(selected)}


# --- rows needing attention --------------------------------------------------------------------------------------


def _last_attempt(info: EntityInfo):
    lg = T.zoho_sync_logs
    return (sa.select(sa.func.max(lg.c.created_at))
            .where(lg.c.entity_type.in_(_ALIASES[info.name]))
            .where(lg.c.entity_id == sa.cast(info.table.c.id, sa.String))
            .scalar_subquery())


def stuck_rows(engine: sa.Engine, entity: str, older_than_s: float = 900.0, limit: int = 100, *,
               heartbeat_stale_s: float = 120.0, now: datetime | None = None) -> list[dict]:
    """Rows left in `syncing`: claimed longer ago than `older_than_s`, or claimed by a run that finished, is
    unknown, or whose heartbeat in zoho_sync_runs is older than `heartbeat_stale_s` (the run died)."""
    now = now or now_utc()
    info = entity_info(entity)
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
    q = (sa.select(t.c.id, label_expr(info.name, t).label("label"), t.c.zoho_claimed_by, t.c.zoho_claimed_at,
                   t.c.zoho_attempts, r.c.heartbeat_at, r.c.status.label("run_status"), reason.label("reason"))
         .select_from(j)
         .where(t.c.zoho_sync_status == "syncing")
         .where(sa.or_(t.c.zoho_claimed_at.is_(None), t.c.zoho_claimed_at < claim_cutoff, r.c.run_id.is_(None),
                       r.c.finished_at.is_not(None), r.c.heartbeat_at < beat_cutoff))
         .order_by(t.c.zoho_claimed_at.asc().nulls_first() if engine.dialect.name == "postgresql"
                   else t.c.zoho_claimed_at.asc())
         .limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [{"entity": info.name, "id": str(x.id), "label": x.label, "claimed_by": x.zoho_claimed_by,
             "claimed_at": iso(x.zoho_claimed_at), "attempts": x.zoho_attempts or 0,
             "run_heartbeat_at": iso(x.heartbeat_at), "run_status": x.run_status, "reason": x.reason,
             "age_s": round((now - aware(x.zoho_claimed_at)).total_seconds(), 1) if x.zoho_claimed_at else None}
            for x in rows]


def failed_rows(engine: sa.Engine, entity: str, limit: int = 50, *, include_retrying: bool = False,
                dead_only: bool = False) -> list[dict]:
    """Failed rows, dead-lettered first then newest: label, error code, error, attempts, last attempt."""
    info = entity_info(entity)
    t = info.table
    c = t.c
    statuses = ("failed", "retrying") if include_retrying else ("failed",)
    cond = _dead(c) if dead_only else sa.or_(c.zoho_sync_status.in_(statuses), _dead(c))
    last = _last_attempt(info).label("last_attempt_at")
    q = (sa.select(c.id, label_expr(info.name, t).label("label"), c.zoho_sync_status, c.zoho_error_code,
                   c.zoho_last_sync_error, c.zoho_attempts, c.zoho_dead_lettered, c.zoho_next_attempt_at,
                   c.zoho_claimed_at, c.updated_at, info.zoho_id.label("zoho_id"), last)
         .where(cond).where(info.where_eligible())
         .order_by(sa.case((_dead(c), 0), else_=1), c.updated_at.desc(), c.id)
         .limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [{"entity": info.name, "id": str(x.id), "label": x.label, "status": x.zoho_sync_status,
             "error_code": x.zoho_error_code, "error": x.zoho_last_sync_error, "attempts": x.zoho_attempts or 0,
             "dead_lettered": bool(x.zoho_dead_lettered), "next_attempt_at": iso(x.zoho_next_attempt_at),
             "last_attempt_at": iso(x.last_attempt_at or x.zoho_claimed_at), "zoho_id": x.zoho_id}
            for x in rows]


def synced_without_id(engine: sa.Engine, entity: str, limit: int = 50) -> list[dict]:
    """Rows marked synced that carry no ZOHO id: they would be created again or never be updated."""
    info = entity_info(entity)
    t = info.table
    q = (sa.select(t.c.id, label_expr(info.name, t).label("label"), t.c.zoho_last_synced_at)
         .where(t.c.zoho_sync_status == "synced")
         .where(sa.or_(info.zoho_id.is_(None), info.zoho_id == ""))
         .order_by(t.c.id).limit(limit))
    with engine.connect() as conn:
        return [{"entity": info.name, "id": str(x.id), "label": x.label, "last_synced_at": iso(x.zoho_last_synced_at)}
                for x in conn.execute(q)]


def synced_without_id_count(engine: sa.Engine, entity: str) -> int:
    info = entity_info(entity)
    t = info.table
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t)
                                .where(t.c.zoho_sync_status == "synced")
                                .where(sa.or_(info.zoho_id.is_(None), info.zoho_id == ""))).scalar_one())


def stuck_count(engine: sa.Engine, entity: str, older_than_s: float = 900.0, **kw) -> int:
    return len(stuck_rows(engine, entity, older_than_s, limit=10_000, **kw))


# --- the attempt log ---------------------------------------------------------------------------------------------


def parse_since(value: str | datetime | None, now: datetime | None = None) -> datetime | None:
    """`2h`, `30m`, `7d`, `45s`, `1w`, or an ISO date/time (naive means UTC) → aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return aware(value)
    s = value.strip()
    if not s:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if s[-1:].lower() in units and s[:-1].replace(".", "", 1).isdigit():
        return (now or now_utc()) - timedelta(seconds=float(s[:-1]) * units[s[-1].lower()])
    try:
        return aware(datetime.fromisoformat(s.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"cannot read time {value!r}: use ISO (2025-06-01T08:00) or a duration like 2h, 30m, 7d")


def recent_logs(engine: sa.Engine, entity: str | None = None, outcome: str | Sequence[str] | None = None,
                since: str | datetime | None = None, limit: int = 50, offset: int = 0, *,
                entity_id: str | None = None, run_id: str | None = None) -> list[dict]:
    """Attempt log lines, newest first, each naming its row as a person knows it (`label`)."""
    lg = T.zoho_sync_logs
    q = sa.select(lg)
    if entity:
        q = q.where(lg.c.entity_type.in_(entity_aliases(entity)))
    if outcome:
        outcomes = [outcome] if isinstance(outcome, str) else list(outcome)
        if "failed" in outcomes and "dead_lettered" not in outcomes:
            outcomes.append("dead_lettered")  # a dead letter is a failure too
        q = q.where(lg.c.outcome.in_(outcomes))
    since_dt = parse_since(since)
    if since_dt is not None:
        q = q.where(lg.c.created_at >= db_time(engine, since_dt))
    if entity_id:
        q = q.where(lg.c.entity_id == str(entity_id))
    if run_id:
        q = q.where(lg.c.run_id == run_id)
    q = q.order_by(lg.c.created_at.desc(), lg.c.id.desc()).limit(max(0, int(limit))).offset(max(0, int(offset)))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    by_entity: dict[str, set] = {}
    for r in rows:
        name = _BY_ALIAS.get(str(r.entity_type).lower())
        if name:
            by_entity.setdefault(name, set()).add(r.entity_id)
    labels = {name: labels_for(engine, name, ids) for name, ids in by_entity.items()}
    out = []
    for r in rows:
        name = _BY_ALIAS.get(str(r.entity_type).lower(), r.entity_type)
        label = labels.get(name, {}).get(str(r.entity_id)) or f"(row {r.entity_id} no longer in the source)"
        out.append({"id": r.id, "time": iso(r.created_at), "entity": name, "entity_id": r.entity_id,
                    "label": label, "action": r.action, "outcome": r.outcome, "zoho_id": r.zoho_id,
                    "error_code": r.error_code, "error": r.error, "attempt": r.attempt, "api_calls": r.api_calls,
                    "duration_ms": r.duration_ms, "run_id": r.run_id})
    return out


def success_rate(engine: sa.Engine, since: str | datetime | None = "24h") -> dict:
    """Attempts since `since` from zoho_sync_logs: {attempts, succeeded, failed, retrying, rate (0..1 or None)}.

    Succeeded: synced/unchanged/adopted outcomes; failed: failed and dead letters; retrying: retryable failures.
    Dry-run lines are not attempts. `rate` = succeeded / attempts; None when there were none."""
    lg = T.zoho_sync_logs
    q = sa.select(lg.c.outcome, sa.func.count()).group_by(lg.c.outcome)
    since_dt = parse_since(since)
    if since_dt is not None:
        q = q.where(lg.c.created_at >= db_time(engine, since_dt))
    with engine.connect() as conn:
        counts = dict(conn.execute(q).all())
    succeeded = sum(n for o, n in counts.items() if o in SUCCESS_OUTCOMES)
    failed = sum(n for o, n in counts.items() if o in FAILURE_OUTCOMES)
    retrying = sum(n for o, n in counts.items() if o in RETRY_OUTCOMES)
    attempts = sum(n for o, n in counts.items() if o not in NON_ATTEMPT_OUTCOMES)
    return {"since": iso(since_dt), "attempts": attempts, "succeeded": succeeded, "failed": failed,
            "retrying": retrying, "rate": round(succeeded / attempts, 4) if attempts else None}


# --- runs and API usage ------------------------------------------------------------------------------------------


def recent_runs(engine: sa.Engine, limit: int = 10) -> list[dict]:
    """The newest engine runs from zoho_sync_runs, with their summary parsed."""
    r = T.zoho_sync_runs
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r).order_by(r.c.started_at.desc()).limit(limit)).all()
    out = []
    for x in rows:
        try:
            summary = json.loads(x.summary) if x.summary else None
        except ValueError:
            summary = None
        out.append({"run_id": x.run_id, "status": x.status, "started_at": iso(x.started_at),
                    "heartbeat_at": iso(x.heartbeat_at), "finished_at": iso(x.finished_at), "host": x.host,
                    "pid": x.pid, "summary": summary})
    return out


def runs_since(engine: sa.Engine, since: datetime) -> dict[str, int]:
    """{status: count} of runs started since `since`."""
    r = T.zoho_sync_runs
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(r.c.status, sa.func.count()).where(r.c.started_at >= db_time(engine, since))
                                 .group_by(r.c.status)).all())


def live_runs(engine: sa.Engine, heartbeat_stale_s: float = 120.0, now: datetime | None = None) -> list[dict]:
    """Runs not finished; each with `alive` (heartbeat fresher than `heartbeat_stale_s`)."""
    now = now or now_utc()
    r = T.zoho_sync_runs
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r).where(r.c.finished_at.is_(None)).where(r.c.status == "running")
                            .order_by(r.c.started_at.desc()).limit(100)).all()
    return [{"run_id": x.run_id, "started_at": iso(x.started_at), "heartbeat_at": iso(x.heartbeat_at),
             "host": x.host, "pid": x.pid,
             "heartbeat_age_s": round((now - aware(x.heartbeat_at)).total_seconds(), 1),
             "alive": (now - aware(x.heartbeat_at)).total_seconds() <= heartbeat_stale_s} for x in rows]


def api_calls_today(engine: sa.Engine, organization_id: str, today: date | None = None) -> int:
    """API calls recorded for the organization on the current UTC day (zoho_api_usage)."""
    u = T.zoho_api_usage
    day = today or now_utc().date()
    with engine.connect() as conn:
        value = conn.execute(sa.select(u.c.calls).where(u.c.organization_id == str(organization_id))
                             .where(u.c.day == day)).scalar()
    return int(value or 0)


# --- operator actions --------------------------------------------------------------------------------------------


def requeue(engine: sa.Engine, entity: str, ids: Iterable[str] | None = None, all_failed: bool = False, *,
            force: bool = False) -> int:
    """Put rows back in the queue: status pending, attempts 0, not dead-lettered, no scheduled next attempt.

    `ids`: these rows (whatever their status, except `syncing`: a live run owns them; the engine frees a dead
    run's claims itself). `all_failed`: every failed, retrying or dead-lettered eligible row. `force`: also forget
    the last payload hash, so an unchanged row is sent again (after a reconcile found ZOHO edited by hand).
    Returns the number of rows requeued."""
    info = entity_info(entity)
    t = info.table
    c = t.c
    if ids is None and not all_failed:
        raise ValueError("requeue needs ids or all_failed=True")
    values = dict(zoho_sync_status="pending", zoho_attempts=0, zoho_dead_lettered=False, zoho_next_attempt_at=None)
    if force:
        values["zoho_payload_hash"] = None
    not_syncing = sa.or_(c.zoho_sync_status.is_(None), c.zoho_sync_status != "syncing")
    total = 0
    with engine.begin() as conn:
        if ids is not None:
            id_list = _id_params(engine, [str(i) for i in ids])
            for start in range(0, len(id_list), 500):
                chunk = id_list[start:start + 500]
                cond = sa.and_(c.id.in_(chunk), not_syncing)
                if all_failed:
                    cond = sa.and_(cond, sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), _dead(c)))
                total += conn.execute(t.update().where(cond).values(**values)).rowcount
        else:
            cond = sa.and_(sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), _dead(c)), info.where_eligible())
            total += conn.execute(t.update().where(cond).values(**values)).rowcount
    return total


def failed_ids(engine: sa.Engine, entity: str, limit: int | None = None) -> list[str]:
    """Ids of failed, retrying or dead-lettered eligible rows (what `retry --failed` requeues)."""
    info = entity_info(entity)
    c = info.table.c
    q = (sa.select(c.id).where(sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), _dead(c)))
         .where(info.where_eligible()).order_by(c.id))
    if limit:
        q = q.limit(limit)
    with engine.connect() as conn:
        return [str(x) for x in conn.execute(q).scalars()]


def existing_ids(engine: sa.Engine, entity: str, ids: Iterable[str]) -> set[str]:
    info = entity_info(entity)
    t = info.table
    id_list = _id_params(engine, [str(i) for i in ids])
    if not id_list:
        return set()
    with engine.connect() as conn:
        return {str(x) for x in conn.execute(sa.select(t.c.id).where(t.c.id.in_(id_list))).scalars()}


# --- small key/value state (alert state lives here) -------------------------------------------------------------


def get_state(engine: sa.Engine, key: str) -> str | None:
    s = T.zoho_pipeline_state
    with engine.connect() as conn:
        return conn.execute(sa.select(s.c.value).where(s.c.key == key)).scalar()


def set_state(engine: sa.Engine, key: str, value: str | None) -> None:
    s = T.zoho_pipeline_state
    now = db_time(engine, now_utc())
    with engine.begin() as conn:
        if conn.execute(s.update().where(s.c.key == key).values(value=value, updated_at=now)).rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(s.insert().values(key=key, value=value, updated_at=now))
            except sa.exc.IntegrityError:
                conn.execute(s.update().where(s.c.key == key).values(value=value, updated_at=now))


# --- finding rows by what a person knows ------------------------------------------------------------------------

_NATURAL_KEYS = {
    "plans": ("zoho_plan_code", "name"),
    "customers": ("email",),
    "subscriptions": ("zoho_subscription_id",),
    "invoices": ("invoice_number", "zoho_billing_invoice_id"),
    "payments": ("transaction_id", "zoho_payment_id"),
}


def resolve_ids(engine: sa.Engine, entity: str, keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map what an operator typed (a source id, or an email / invoice number / transaction id / plan code / ZOHO
    id) to source ids. Returns ({typed key: source id}, [keys not found]). Unique keys only: no guessing."""
    info = entity_info(entity)
    t = info.table
    keys = [str(k).strip() for k in keys if str(k).strip()]
    found: dict[str, str] = {}
    by_id = existing_ids(engine, info.name, keys)
    for k in keys:
        if k in by_id:
            found[k] = k
    rest = [k for k in keys if k not in found]
    with engine.connect() as conn:
        for col in _NATURAL_KEYS[info.name]:
            if not rest:
                break
            column = t.c[col]
            match = (sa.func.lower(column).in_([k.lower() for k in rest]) if col == "email"
                     else column.in_(rest))
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
