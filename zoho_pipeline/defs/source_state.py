"""Read-only questions the Dagster layer asks the source database: change watermarks for the sensor, and the
row-level facts the asset checks report (stuck claims, failures, missing ZOHO ids, backlog age).

Written here because `zoho_pipeline.sync.queries` did not carry these when the Dagster layer was built; every
function is a plain SQLAlchemy Core read on the tables of `zoho_pipeline.source.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from zoho_pipeline.source import tables as t


@dataclass(frozen=True)
class EntityTable:
    entity: str
    table: sa.Table
    zoho_id: str  # the column holding ZOHO's id once synced
    label: str  # the column a person recognises the row by
    month_column: str | None = None  # the date that places a row in a monthly partition


ENTITY_TABLES = {
    "plans": EntityTable("plans", t.service_packages, "zoho_plan_code", "name"),
    "customers": EntityTable("customers", t.customers, "zoho_billing_customer_id", "email"),
    "subscriptions": EntityTable("subscriptions", t.customer_services, "zoho_subscription_id", "id"),
    "invoices": EntityTable("invoices", t.customer_invoices, "zoho_billing_invoice_id", "invoice_number",
                            "invoice_date"),
    "payments": EntityTable("payments", t.payment_transactions, "zoho_payment_id", "transaction_id",
                            "completed_at"),
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def db_time(engine, value: datetime) -> datetime:
    """A UTC datetime as the database compares it (naive on SQLite, where times are stored as UTC text)."""
    value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def aware(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


def _not_dead(c):
    return sa.or_(c.zoho_dead_lettered.is_(None), c.zoho_dead_lettered == sa.false())


def due_predicate(table: sa.Table):
    """Rows with work to do: dirty (never synced, changed since, failed, retrying) and not dead-lettered."""
    return sa.and_(t.dirty_predicate(table), _not_dead(table.c))


# --- the sensor's watermarks --------------------------------------------------------------------------------


def watermarks(engine) -> dict[str, dict]:
    """Per entity: newest updated_at (ISO), row count, due count. The sensor's cursor."""
    out = {}
    with engine.connect() as conn:
        for name, et in ENTITY_TABLES.items():
            c = et.table.c
            due = sa.func.sum(sa.case((due_predicate(et.table), 1), else_=0))
            row = conn.execute(sa.select(sa.func.max(c.updated_at), sa.func.count(), due)).one()
            newest = aware(row[0])
            out[name] = {"max_updated_at": newest.isoformat() if newest else None,
                         "rows": int(row[1] or 0), "due": int(row[2] or 0)}
    return out


def changed_months(engine, entity: str, since_iso: str | None) -> set[date]:
    """First days of the months of the due rows of a partitioned entity changed after `since_iso` (all due rows
    when None). Rows without a month date (a payment not completed) are not placed in any month."""
    et = ENTITY_TABLES[entity]
    c = et.table.c
    month_col = c[et.month_column]
    cond = [due_predicate(et.table), month_col.is_not(None)]
    if since_iso:
        cond.append(c.updated_at > db_time(engine, datetime.fromisoformat(since_iso)))
    with engine.connect() as conn:
        values = conn.execute(sa.select(month_col).where(*cond).distinct()).scalars().all()
    return {date(v.year, v.month, 1) for v in (aware(x) for x in values) if v is not None}


# --- facts for the checks -----------------------------------------------------------------------------------


def _rows(engine, et: EntityTable, where, order_by=None, limit: int = 20) -> list[dict]:
    c = et.table.c
    cols = [c.id, c[et.label], c.zoho_sync_status, c[et.zoho_id], c.zoho_error_code, c.zoho_last_sync_error,
            c.zoho_attempts, c.zoho_claimed_by, c.zoho_claimed_at, c.zoho_dead_lettered, c.updated_at]
    q = sa.select(*cols).where(where)
    if order_by is not None:
        q = q.order_by(*order_by)
    with engine.connect() as conn:
        rows = conn.execute(q.limit(limit)).mappings().all()
    return [{"entity_id": str(r["id"]), "label": str(r[et.label] or ""), "status": r["zoho_sync_status"],
             "zoho_id": r[et.zoho_id], "error_code": r["zoho_error_code"],
             "error": (r["zoho_last_sync_error"] or "")[:300], "attempts": r["zoho_attempts"] or 0,
             "claimed_by": r["zoho_claimed_by"], "claimed_at": aware(r["zoho_claimed_at"]),
             "dead_lettered": bool(r["zoho_dead_lettered"]), "updated_at": aware(r["updated_at"])}
            for r in rows]


def _count(engine, table, where) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())


def stuck_rows(engine, entity: str, older_than_s: float, limit: int = 20) -> tuple[int, list[dict]]:
    """Rows left in `syncing` longer than `older_than_s` (a claim no live run will finish)."""
    et = ENTITY_TABLES[entity]
    c = et.table.c
    cutoff = db_time(engine, utcnow() - timedelta(seconds=older_than_s))
    where = sa.and_(c.zoho_sync_status == "syncing", sa.or_(c.zoho_claimed_at.is_(None), c.zoho_claimed_at < cutoff))
    return _count(engine, et.table, where), _rows(engine, et, where, [c.zoho_claimed_at], limit)


def failed_rows(engine, entity: str, limit: int = 20) -> tuple[int, int, list[dict]]:
    """(failed or retrying count, dead-lettered count, the worst rows: dead letters first, then most attempts)."""
    et = ENTITY_TABLES[entity]
    c = et.table.c
    dead = c.zoho_dead_lettered == sa.true()
    failing = sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), dead)
    n_dead = _count(engine, et.table, dead)
    n_failing = _count(engine, et.table, failing)
    worst = _rows(engine, et, failing,
                  [sa.case((dead, 0), else_=1), sa.func.coalesce(c.zoho_attempts, 0).desc()], limit)
    return n_failing, n_dead, worst


def synced_without_zoho_id(engine, entity: str, limit: int = 20) -> tuple[int, list[dict]]:
    et = ENTITY_TABLES[entity]
    c = et.table.c
    where = sa.and_(c.zoho_sync_status == "synced", sa.or_(c[et.zoho_id].is_(None), c[et.zoho_id] == ""))
    return _count(engine, et.table, where), _rows(engine, et, where, [c.updated_at], limit)


def backlog(engine, entity: str) -> tuple[int, datetime | None]:
    """(due rows, updated_at of the oldest due row)."""
    et = ENTITY_TABLES[entity]
    c = et.table.c
    with engine.connect() as conn:
        n, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(c.updated_at))
                                 .where(due_predicate(et.table))).one()
    return int(n or 0), aware(oldest)


def synced_sample(engine, entity: str, n: int) -> list[dict]:
    """Up to n synced rows (newest first) with the fields the reconciliation compares."""
    et = ENTITY_TABLES[entity]
    c = et.table.c
    extra = {"customers": [c.email] if entity == "customers" else [],
             "invoices": [c.total_amount, c.status] if entity == "invoices" else [],
             "payments": [c.amount] if entity == "payments" else []}.get(entity, [])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.id, c[et.label].label("label"), c[et.zoho_id].label("zoho_id"), *extra)
            .where(c.zoho_sync_status == "synced", c[et.zoho_id].is_not(None))
            .order_by(c.zoho_last_synced_at.desc()).limit(n)).mappings().all()
    return [dict(r) for r in rows]


def synced_count(engine, entity: str) -> int:
    et = ENTITY_TABLES[entity]
    c = et.table.c
    return _count(engine, et.table, sa.and_(c.zoho_sync_status == "synced", c[et.zoho_id].is_not(None)))
