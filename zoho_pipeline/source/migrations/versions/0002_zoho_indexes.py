"""indexes on the business tables' zoho_* columns, and the partial "due" index per table

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01

Per business table: one index per ZOHO id column, one on zoho_sync_status, and the partial index
`ix_<table>_zoho_due` on (id) WHERE <the dirty predicate of tables.dirty_predicate>, so the find-work query reads
only the dirty part of the table. On Postgres they are built CONCURRENTLY (outside a transaction): the provider's
writes are never blocked while a large table is indexed. Built with IF NOT EXISTS after dropping any INVALID
leftover of an interrupted build, so re-running after a failure completes the job.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LOOKUP_COLUMNS = {
    "service_packages": ["zoho_plan_code", "zoho_product_id", "zoho_sync_status"],
    "customers": ["zoho_billing_customer_id", "zoho_sync_status"],
    "customer_services": ["zoho_subscription_id", "zoho_sync_status"],
    "customer_invoices": ["zoho_billing_invoice_id", "zoho_sync_status"],
    "payment_transactions": ["zoho_payment_id", "zoho_sync_status"],
}


def due_predicate(table_name: str):
    """Frozen copy of `tables.dirty_predicate` (a test keeps the two rendering identically)."""
    t = sa.table(
        table_name,
        sa.column("zoho_sync_status", sa.String(16)),
        sa.column("zoho_source_version", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    c = t.c
    return sa.or_(
        c.zoho_sync_status.is_(None),
        c.zoho_sync_status != "synced",
        c.zoho_source_version.is_(None),
        c.updated_at > c.zoho_source_version,
    )


def index_specs():
    """(name, table, columns, where-expression or None) for every index this revision owns."""
    specs = []
    for table, columns in LOOKUP_COLUMNS.items():
        for col in columns:
            specs.append((f"ix_{table}_{col}", table, [col], None))
        specs.append((f"ix_{table}_zoho_due", table, ["id"], due_predicate(table)))
    return specs


def _render_where(expr, dialect) -> str:
    return str(expr.compile(dialect=dialect, compile_kwargs={"literal_binds": True, "include_table": False}))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table, columns, where in index_specs():
                invalid = bind.execute(
                    sa.text(
                        "select 1 from pg_index i join pg_class c on c.oid = i.indexrelid "
                        "where c.relname = :name and c.relnamespace = current_schema()::regnamespace "
                        "and not i.indisvalid"
                    ),
                    {"name": name},
                ).first()
                if invalid:
                    bind.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
                cols = ", ".join(f'"{c}"' for c in columns)
                sql = f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" ({cols})'
                if where is not None:
                    sql += f" WHERE {_render_where(where, bind.dialect)}"
                bind.exec_driver_sql(sql)
    else:
        for name, table, columns, where in index_specs():
            kw = {} if where is None else {f"{bind.dialect.name}_where": where}
            op.create_index(name, table, columns, **kw)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, _table, _columns, _where in reversed(index_specs()):
                bind.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
    else:
        for name, table, _columns, _where in reversed(index_specs()):
            op.drop_index(name, table_name=table)
