"""zoho_api_calls: the API call inspector, the last N calls to ZOHO with their redacted bodies

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A ring of recent calls (pruned to ZOHO_INSPECTOR_CALLS rows by the engine). The writer makes the time-ordered
id, so only the primary key is indexed: every read is a key range or a scan of at most N rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zoho_api_calls",
        # SQLite: INTEGER PRIMARY KEY is the (64-bit) rowid, so the table is one b-tree
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("entity_type", sa.String(32)),
        sa.Column("entity_id", sa.String(64)),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path_template", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("zoho_code", sa.Integer()),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("query", sa.Text()),
        sa.Column("request_body", sa.Text()),
        sa.Column("response_body", sa.Text()),
        sa.Column("error", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("zoho_api_calls")
