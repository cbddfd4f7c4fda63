"""zoho_recurring_links: the provider's recurring invoices linked to the invoices ZOHO raised (issue 15)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

ZOHO raises the monthly invoices itself from the subscriptions; the provider keeps its own copy of each monthly
bill as a `recurring` invoice. The link (ZOHO's invoice for the same subscription and term) is written on the
provider's row (`zoho_billing_invoice_id`) and here, with why a row is not linked yet, ZOHO's total (a payment
never applies more) and since when the link has been looked for (`ZOHO_RECURRING_LINK_WAIT_H` counts from it).
A table of our own: the provider's tables only get what 0001 added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
UUID = sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")


def upgrade() -> None:
    op.create_table(
        "zoho_recurring_links",
        sa.Column("invoice_id", UUID, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("zoho_invoice_id", sa.String(64)),
        sa.Column("zoho_subscription_id", sa.String(64)),
        sa.Column("zoho_total", sa.Numeric(12, 2)),
        sa.Column("zoho_status", sa.String(16)),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("linked_at", TS),
    )
    op.create_index("ix_zoho_recurring_links_state", "zoho_recurring_links", ["state"])


def downgrade() -> None:
    op.drop_index("ix_zoho_recurring_links_state", table_name="zoho_recurring_links")
    op.drop_table("zoho_recurring_links")
