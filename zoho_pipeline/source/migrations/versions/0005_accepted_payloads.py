"""zoho_accepted_payloads: the payload ZOHO last accepted per row, for the dry run's diff and the drift check

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A table of ours (the provider's rows get no new column): one row per synced business row, keyed by entity and
source id, holding the compact canonical JSON whose digest is the row's `zoho_payload_hash`. Only the primary
key is indexed: every read is by key. A new, empty table: creating it locks nothing of the provider's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zoho_accepted_payloads",
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(64), primary_key=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("zoho_accepted_payloads")
