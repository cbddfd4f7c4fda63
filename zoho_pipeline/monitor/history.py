"""What the pipeline did: the attempt log (`zoho_sync_logs`), success rates, the engine's runs and the API calls
spent today. Read-only, SQLAlchemy Core, portable between SQLite and Postgres."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from zoho_pipeline.monitor.queries import labels_for
from zoho_pipeline.source import tables as T
from zoho_pipeline.source.database import aware, db_time, iso, utcnow
from zoho_pipeline.sync.entities import entity_aliases, entity_name

# Log outcomes (tables.zoho_sync_logs.outcome) grouped for success rates.
SUCCESS_OUTCOMES = ("synced", "unchanged", "adopted", "created", "updated")
FAILURE_OUTCOMES = ("failed", "dead_lettered")
RETRY_OUTCOMES = ("retrying", "retried")
NON_ATTEMPT_OUTCOMES = ("dry_run", "skipped")


def _entity_or_none(name) -> str | None:
    try:
        return entity_name(str(name))
    except ValueError:
        return None


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
        return (now or utcnow()) - timedelta(seconds=float(s[:-1]) * units[s[-1].lower()])
    try:
        return aware(datetime.fromisoformat(s.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"cannot read time {value!r}: use ISO (2025-06-01T08:00) or a duration like 2h, 30m, 7d")


def recent_logs(
    engine: sa.Engine,
    entity: str | None = None,
    outcome: str | Sequence[str] | None = None,
    since: str | datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    *,
    entity_id: str | None = None,
    run_id: str | None = None,
) -> list[dict]:
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
        name = _entity_or_none(r.entity_type)
        if name:
            by_entity.setdefault(name, set()).add(r.entity_id)
    labels = {name: labels_for(engine, name, ids) for name, ids in by_entity.items()}
    out = []
    for r in rows:
        name = _entity_or_none(r.entity_type) or r.entity_type
        label = labels.get(name, {}).get(str(r.entity_id)) or f"(row {r.entity_id} no longer in the source)"
        out.append(
            {
                "id": r.id,
                "time": iso(r.created_at),
                "entity": name,
                "entity_id": r.entity_id,
                "label": label,
                "action": r.action,
                "outcome": r.outcome,
                "zoho_id": r.zoho_id,
                "error_code": r.error_code,
                "error": r.error,
                "attempt": r.attempt,
                "api_calls": r.api_calls,
                "duration_ms": r.duration_ms,
                "run_id": r.run_id,
            }
        )
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
    return {
        "since": iso(since_dt),
        "attempts": attempts,
        "succeeded": succeeded,
        "failed": failed,
        "retrying": retrying,
        "rate": round(succeeded / attempts, 4) if attempts else None,
    }


# --- runs and API usage ---------------------------------------------------------------------------------------


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
        out.append(
            {
                "run_id": x.run_id,
                "status": x.status,
                "started_at": iso(x.started_at),
                "heartbeat_at": iso(x.heartbeat_at),
                "finished_at": iso(x.finished_at),
                "host": x.host,
                "pid": x.pid,
                "summary": summary,
            }
        )
    return out


def runs_since(engine: sa.Engine, since: datetime) -> dict[str, int]:
    """{status: count} of runs started since `since`."""
    r = T.zoho_sync_runs
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(r.c.status, sa.func.count())
                .where(r.c.started_at >= db_time(engine, since))
                .group_by(r.c.status)
            ).all()
        )


def live_runs(engine: sa.Engine, heartbeat_stale_s: float = 120.0, now: datetime | None = None) -> list[dict]:
    """Runs not finished; each with `alive` (heartbeat fresher than `heartbeat_stale_s`)."""
    now = now or utcnow()
    r = T.zoho_sync_runs
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r)
            .where(r.c.finished_at.is_(None))
            .where(r.c.status == "running")
            .order_by(r.c.started_at.desc())
            .limit(100)
        ).all()
    return [
        {
            "run_id": x.run_id,
            "started_at": iso(x.started_at),
            "heartbeat_at": iso(x.heartbeat_at),
            "host": x.host,
            "pid": x.pid,
            "heartbeat_age_s": round((now - aware(x.heartbeat_at)).total_seconds(), 1),
            "alive": (now - aware(x.heartbeat_at)).total_seconds() <= heartbeat_stale_s,
        }
        for x in rows
    ]


def api_calls_today(engine: sa.Engine, organization_id: str, today: date | None = None) -> int:
    """API calls recorded for the organization on the current UTC day (zoho_api_usage)."""
    u = T.zoho_api_usage
    day = today or utcnow().date()
    with engine.connect() as conn:
        value = conn.execute(
            sa.select(u.c.calls).where(u.c.organization_id == str(organization_id)).where(u.c.day == day)
        ).scalar()
    return int(value or 0)
