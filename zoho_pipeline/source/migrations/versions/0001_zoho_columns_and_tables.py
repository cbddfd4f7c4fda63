"""zoho_* sync columns on the five business tables, and the pipeline's own tables

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Only adds: every column is nullable without a default, so Postgres changes the catalogue and rewrites nothing
(each ALTER holds its lock for milliseconds). The business tables' look-up indexes come in 0002, built
CONCURRENTLY on Postgres. The definitions are frozen here on purpose: a later change to `tables.py` needs a new
revision (test_source_migrations checks that head matches `tables.py`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _sync_columns(zoho_id_column: str | None) -> list[sa.Column]:
    cols = [] if zoho_id_column is None else [sa.Column(zoho_id_column, sa.String(64))]
    return cols + [
        sa.Column("zoho_sync_status", sa.String(16)),
        sa.Column("zoho_last_synced_at", TS),
        sa.Column("zoho_last_sync_error", sa.Text()),
        sa.Column("zoho_payload_hash", sa.String(64)),
        sa.Column("zoho_source_version", TS),
        sa.Column("zoho_attempts", sa.Integer()),
        sa.Column("zoho_next_attempt_at", TS),
        sa.Column("zoho_claimed_by", sa.String(64)),
        sa.Column("zoho_claimed_at", TS),
        sa.Column("zoho_create_in_doubt", sa.Boolean()),
        sa.Column("zoho_error_code", sa.String(32)),
        sa.Column("zoho_dead_lettered", sa.Boolean()),
    ]


def _added_columns() -> dict[str, list[sa.Column]]:
    return {
        "service_packages": [
            sa.Column("zoho_plan_code", sa.String(100)),
            sa.Column("zoho_product_id", sa.String(64)),
            *_sync_columns(None),
        ],
        "customers": _sync_columns("zoho_billing_customer_id"),
        "customer_services": _sync_columns("zoho_subscription_id"),
        "customer_invoices": _sync_columns("zoho_billing_invoice_id"),
        "payment_transactions": _sync_columns("zoho_payment_id"),
    }


PIPELINE_TABLES = ("zoho_sync_logs", "zoho_sync_runs", "zoho_oauth_tokens", "zoho_api_usage", "zoho_pipeline_state")


def upgrade() -> None:
    for table, columns in _added_columns().items():
        for column in columns:
            op.add_column(table, column)

    op.create_table(
        "zoho_sync_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("zoho_id", sa.String(64)),
        sa.Column("error_code", sa.String(32)),
        sa.Column("error", sa.Text()),
        sa.Column("attempt", sa.Integer()),
        sa.Column("api_calls", sa.Integer()),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("run_id", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_zoho_sync_logs_created_at", "zoho_sync_logs", ["created_at"])
    op.create_index("ix_zoho_sync_logs_entity", "zoho_sync_logs", ["entity_type", "entity_id"])
    op.create_index("ix_zoho_sync_logs_outcome", "zoho_sync_logs", ["outcome", "created_at"])

    op.create_table(
        "zoho_sync_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text()),
    )
    op.create_table(
        "zoho_oauth_tokens",
        sa.Column("token_key", sa.String(64), primary_key=True),
        sa.Column("access_token", sa.Text()),
        sa.Column("expires_at", TS),
        sa.Column("api_domain", sa.Text()),
        sa.Column("lock_owner", sa.String(64)),
        sa.Column("lock_until", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "zoho_api_usage",
        sa.Column("organization_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("calls", sa.Integer(), nullable=False),
    )
    op.create_table(
        "zoho_pipeline_state",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text()),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for name in reversed(PIPELINE_TABLES):
        op.drop_table(name)  # its indexes go with it
    bind = op.get_bind()
    native_drop = bind.dialect.name != "sqlite" or bind.dialect.dbapi.sqlite_version_info >= (3, 35, 0)
    for table, columns in reversed(list(_added_columns().items())):
        names = [c.name for c in columns]
        if native_drop:
            # SQLite >= 3.35 drops a column in place. Batch mode would copy the provider's table, drop the
            # original and rename the copy: that fires foreign keys and loses triggers or anything not reflected.
            for name in reversed(names):
                op.drop_column(table, name)
        else:
            with op.batch_alter_table(table, recreate="always") as batch:
                for name in reversed(names):
                    batch.drop_column(name)
