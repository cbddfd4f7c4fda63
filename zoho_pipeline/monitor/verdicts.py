"""Each fact about the rows judged once, per entity: stuck claims, failed rows, dead letters, synced rows without
their ZOHO id, the age of the backlog. The Dagster checks, `health` and `alert` present these verdicts; none of
them judges on its own.

A verdict is `ok`, `warn` or `fail`, with a one-line message, its figures and (a sample of) the rows concerned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.monitor.thresholds import Thresholds
from zoho_pipeline.source.database import utcnow
from zoho_pipeline.sync.settings import SyncSettings

OK, WARN, SKIP, FAIL = "ok", "warn", "skip", "fail"
ROWS_SHOWN = 20


@dataclass
class Verdict:
    fact: str  # stuck_rows, failed_rows, dead_lettered, synced_without_id, backlog_age
    entity: str
    status: str
    message: str  # what a person reads when it is not ok
    count: int = 0  # rows concerned
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)


def worst(statuses) -> str:
    statuses = set(statuses)
    return next((s for s in (FAIL, WARN, OK) if s in statuses), SKIP)


def stuck_rows(engine: sa.Engine, entity: str, th: Thresholds, now: datetime | None = None) -> Verdict:
    kw = dict(heartbeat_stale_s=th.heartbeat_stale_s, now=now or utcnow())
    rows = Q.stuck_rows(engine, entity, th.stuck_after_s, limit=ROWS_SHOWN, **kw)
    n = len(rows) if len(rows) < ROWS_SHOWN else Q.stuck_count(engine, entity, th.stuck_after_s, **kw)
    return Verdict(
        "stuck_rows",
        entity,
        FAIL if n else OK,
        f"{n} {entity} row(s) stuck in syncing",
        n,
        {"stuck": n, "older_than_s": th.stuck_after_s},
        rows,
    )


def failed_rows(engine: sa.Engine, entity: str, th: Thresholds, counts: dict | None = None) -> Verdict:
    """Failed rows that are not dead-lettered: warn from the first, fail above `max_failed`."""
    counts = counts or Q.status_counts(engine, entity)[entity]
    n = counts["failed"]
    rows = Q.failed_rows(engine, entity, limit=ROWS_SHOWN) if n else []
    return Verdict(
        "failed_rows",
        entity,
        FAIL if n > th.max_failed else WARN if n else OK,
        f"{n} {entity} row(s) failed (threshold {th.max_failed})",
        n,
        {"failed": n, "retrying": counts["retrying"], "max_failed": th.max_failed},
        [r for r in rows if not r["dead_lettered"]],
    )


def dead_lettered(engine: sa.Engine, entity: str, th: Thresholds, counts: dict | None = None) -> Verdict:
    """Rows that failed too often to be retried automatically: fail above `max_dead_lettered`, else warn."""
    counts = counts or Q.status_counts(engine, entity)[entity]
    n = counts["dead_lettered"]
    rows = Q.failed_rows(engine, entity, limit=ROWS_SHOWN, dead_only=True) if n else []
    return Verdict(
        "dead_lettered",
        entity,
        FAIL if n > th.max_dead_lettered else WARN if n else OK,
        f"{n} {entity} row(s) dead-lettered (threshold {th.max_dead_lettered})",
        n,
        {"dead_lettered": n, "max_dead_lettered": th.max_dead_lettered},
        rows,
    )


def synced_without_id(engine: sa.Engine, entity: str, th: Thresholds | None = None) -> Verdict:
    n = Q.synced_without_id_count(engine, entity)
    rows = Q.synced_without_id(engine, entity, limit=ROWS_SHOWN) if n else []
    return Verdict(
        "synced_without_id",
        entity,
        FAIL if n else OK,
        f"{n} {entity} row(s) marked synced without a ZOHO id",
        n,
        {"missing_zoho_id": n},
        rows,
    )


def backlog_age(engine: sa.Engine, entity: str, th: Thresholds, now: datetime | None = None) -> Verdict:
    now = now or utcnow()
    silent = min(th.heartbeat_stale_s, SyncSettings.from_env().silent_after_s)  # in doubt counts as due
    age = Q.oldest_due_age_s(engine, entity, now, stale_after_s=silent)
    due = Q.due_count(engine, entity, now, stale_after_s=silent)
    late = age is not None and age > th.max_backlog_age_s
    return Verdict(
        "backlog_age",
        entity,
        FAIL if late else OK,
        f"{due} {entity} row(s) due, the oldest for {(age or 0) / 60:.0f} min",
        due,
        {"backlog": due, "oldest_due_age_s": round(age or 0.0, 1), "bound_s": th.max_backlog_age_s},
    )


def judge(engine: sa.Engine, th: Thresholds, entities=None, now: datetime | None = None) -> dict[str, list[Verdict]]:
    """{fact: [the verdict of each entity]} for every fact, in sync order."""
    now = now or utcnow()
    names = Q.entities(entities)
    counts = Q.status_counts(engine, names)
    return {
        "stuck_rows": [stuck_rows(engine, e, th, now) for e in names],
        "failed_rows": [failed_rows(engine, e, th, counts[e]) for e in names],
        "dead_lettered": [dead_lettered(engine, e, th, counts[e]) for e in names],
        "synced_without_id": [synced_without_id(engine, e) for e in names],
        "backlog_age": [backlog_age(engine, e, th, now) for e in names],
    }
