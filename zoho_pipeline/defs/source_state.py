"""What the sensor and the schedule read from the source beyond `zoho_pipeline.sync.queries`: change watermarks
per entity and the months holding due invoices and payments. Built on the entity registry of sync.queries (the
engine's EntitySpecs) and on the engine's due rule (sync.claims.due_filter), so there is one definition of each
entity and of "due"."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from zoho_pipeline.sync import queries as q


def watermarks(engine) -> dict[str, dict]:
    """Per entity: newest updated_at (ISO) and count of eligible rows, and rows due now. The sensor's cursor."""
    out = {}
    now = q.now_utc()
    with engine.connect() as conn:
        for name in q.entities():
            info = q.entity_info(name)
            newest, rows = conn.execute(sa.select(sa.func.max(info.table.c.updated_at), sa.func.count())
                                        .where(info.where_eligible())).one()
            out[name] = {"max_updated_at": q.iso(newest), "rows": int(rows or 0)}
    for name in out:
        out[name]["due"] = q.due_count(engine, name, now)
    return out


def changed_months(engine, entity: str, since_iso: str | None, *, stale_after_s: float | None = None) -> set[date]:
    """First days of the months of the due rows (the engine's rule, sync.queries.due_count) of a partitioned entity
    changed after `since_iso` (all of them when None). A row without its month date (a payment not completed)
    belongs to no month."""
    info = q.entity_info(entity)
    c = info.table.c
    month_col = c[info.spec.month_column]
    cond = [q.due_where(info, q.now_utc(), stale_after_s), month_col.is_not(None)]
    if since_iso:
        cond.append(c.updated_at > q.db_time(engine, datetime.fromisoformat(since_iso)))
    with engine.connect() as conn:
        values = conn.execute(sa.select(month_col).where(*cond).distinct()).scalars().all()
    months = set()
    for v in values:
        v = q.aware(v) if not isinstance(v, date) or isinstance(v, datetime) else v
        months.add(date(v.year, v.month, 1))
    return months


def due_month_keys(engine, entities=("invoices", "payments"), since: dict | None = None, *,
                   stale_after_s: float | None = None) -> list[str]:
    """Partition keys of the months holding due rows of the partitioned entities (changed after since[entity], an
    ISO time, when given)."""
    from zoho_pipeline.defs.partitions import month_key

    months = set()
    for entity in entities:
        if q.entity_info(entity).spec.month_column:
            months |= changed_months(engine, entity, (since or {}).get(entity), stale_after_s=stale_after_s)
    return sorted(month_key(m) for m in months)
