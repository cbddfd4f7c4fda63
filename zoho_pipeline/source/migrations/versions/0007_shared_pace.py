"""zoho_api_pace + zoho_api_leases: one pace per ZOHO organization shared by every process

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Tables of ours, new and empty (nothing of the provider's is touched or locked): the 429 pause every process
honours, and the per-minute slots each process leases (sync.stores.DbPaceStore, zoho.limiter.RateLimiter).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zoho_api_pace",
        sa.Column("organization_id", sa.String(64), primary_key=True),
        sa.Column("paused_until", sa.Float(precision=53), nullable=False),
    )
    op.create_table(
        "zoho_api_leases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.Float(precision=53), nullable=False),
        sa.Column("expires_at", sa.Float(precision=53), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
    )
    op.create_index("ix_zoho_api_leases_org_expires", "zoho_api_leases", ["organization_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_zoho_api_leases_org_expires", table_name="zoho_api_leases")
    op.drop_table("zoho_api_leases")
    op.drop_table("zoho_api_pace")
