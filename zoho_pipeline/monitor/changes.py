"""What changed in the source, for the sensor and the schedule: change watermarks per entity and the months holding
due invoices and payments. Built on the engine's EntitySpecs and its due rule (sync.due_rows.due_filter, through
monitor.queries), so there is one definition of each entity and of "due"."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from zoho_pipeline.monitor import queries as q
from zoho_pipeline.source.database import aware, db_time, iso, utcnow
from zoho_pipeline.sync.entities import recurring


def watermarks(engine) -> dict[str, dict]:
    """Per entity: newest updated_at (ISO) and count of eligible rows, and rows due now. The sensor's cursor."""
    out = {}
    now = utcnow()
    with engine.connect() as conn:
        for name in q.entities():
            info = q.spec(name)
            newest, rows = conn.execute(
                sa.select(sa.func.max(info.table.c.updated_at), sa.func.count()).where(info.where_eligible())
            ).one()
            out[name] = {"max_updated_at": iso(newest), "rows": int(rows or 0)}
    for name in out:
        out[name]["due"] = q.due_count(engine, name, now)
    return out


def changed_months(engine, entity: str, since_iso: str | None, *, stale_after_s: float | None = None) -> set[date]:
    """First days of the months of the due rows (the engine's rule, monitor.queries.due_count) of a partitioned entity
    changed after `since_iso` (all of them when None). A row's month is the engine's (EntitySpec.month_date: a
    bounced payment, its completed_at cleared, is in the month it was created)."""
    info = q.spec(entity)
    c = info.table.c
    month_col = info.month_date
    cond = [q.due_where(info, utcnow(), stale_after_s), month_col.is_not(None)]
    if since_iso:
        cond.append(c.updated_at > db_time(engine, datetime.fromisoformat(since_iso)))
    with engine.connect() as conn:
        values = conn.execute(sa.select(month_col).where(*cond).distinct()).scalars().all()
    months = set()
    for v in values:
        v = aware(v) if not isinstance(v, date) or isinstance(v, datetime) else v
        months.add(date(v.year, v.month, 1))
    return months


def due_month_keys(
    engine, entities=("invoices", "payments"), since: dict | None = None, *, stale_after_s: float | None = None
) -> list[str]:
    """Partition keys of the months holding due rows of the partitioned entities (changed after since[entity], an
    ISO time, when given)."""
    months = set()
    for entity in entities:
        if q.spec(entity).month_column:
            months |= changed_months(engine, entity, (since or {}).get(entity), stale_after_s=stale_after_s)
    if "invoices" in entities and since is None:  # recurring invoices to link are the invoices asset's work too
        months |= recurring.months_to_link(engine)
    return sorted(month_key(m) for m in months)


def month_key(value: date | datetime) -> str:
    """The partition key of the month holding `value` (a date or a datetime)."""
    return f"{value.year:04d}-{value.month:02d}-01"
