"""What the sensor and the reconciliation check read from the source beyond `zoho_pipeline.sync.queries`: change
watermarks per entity, the months of changed invoices and payments, and samples of synced rows. Built on the
entity registry of sync.queries (table, ZOHO id column, eligible rows, labels), so there is one definition of
each entity."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync import queries as q

# The date that places a row of a partitioned entity in its month.
MONTH_COLUMN = {"invoices": "invoice_date", "payments": "completed_at"}


def _pending_where(info):
    """Dirty, eligible, not dead-lettered (the due predicate without the next-attempt time)."""
    c = info.table.c
    return sa.and_(T.dirty_predicate(info.table), info.where_eligible(),
                   sa.or_(c.zoho_dead_lettered.is_(None), c.zoho_dead_lettered.is_(False)))


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


def changed_months(engine, entity: str, since_iso: str | None) -> set[date]:
    """First days of the months of the pending rows of a partitioned entity changed after `since_iso` (all of them
    when None). A row without its month date (a payment not completed) belongs to no month."""
    info = q.entity_info(entity)
    c = info.table.c
    month_col = c[MONTH_COLUMN[entity]]
    cond = [_pending_where(info), month_col.is_not(None)]
    if since_iso:
        cond.append(c.updated_at > q.db_time(engine, datetime.fromisoformat(since_iso)))
    with engine.connect() as conn:
        values = conn.execute(sa.select(month_col).where(*cond).distinct()).scalars().all()
    months = set()
    for v in values:
        v = q.aware(v) if not isinstance(v, date) or isinstance(v, datetime) else v
        months.add(date(v.year, v.month, 1))
    return months


def due_month_keys(engine, entities=("invoices", "payments"), since: dict | None = None) -> list[str]:
    """Partition keys of the months holding pending rows of the partitioned entities (changed after
    since[entity], an ISO time, when given)."""
    from zoho_pipeline.defs.partitions import month_key

    months = set()
    for entity in entities:
        if entity in MONTH_COLUMN:
            months |= changed_months(engine, entity, (since or {}).get(entity))
    return sorted(month_key(m) for m in months)


COMPARED_COLUMNS = {"customers": ("email",), "invoices": ("total_amount", "status"), "payments": ("amount",)}


def synced_sample(engine, entity: str, n: int) -> list[dict]:
    """Up to n synced rows, most recently synced first, with the fields the reconciliation compares."""
    info = q.entity_info(entity)
    c = info.table.c
    extra = [c[name] for name in COMPARED_COLUMNS.get(entity, ())]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.id, q.label_expr(entity, info.table).label("label"), info.zoho_id.label("zoho_id"), *extra)
            .where(c.zoho_sync_status == "synced", info.zoho_id.is_not(None), info.zoho_id != "")
            .order_by(c.zoho_last_synced_at.desc()).limit(n)).mappings().all()
    return [dict(r) for r in rows]


def synced_count(engine, entity: str) -> int:
    return q.status_counts(engine, entity)[entity]["synced"]
