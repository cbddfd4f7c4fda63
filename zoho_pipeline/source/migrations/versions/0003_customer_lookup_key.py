"""customers.zoho_lookup_key: the email a create was sent with, so a create in doubt is found again

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

A customer is found again in ZOHO by email plus the provider-id custom field. When the email changes between an
ambiguous create and the retry, the look-up must search by the email that create carried: the engine records it
here with its intent, before the call. Nullable, no default: adding it rewrites nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("zoho_lookup_key", sa.Text(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or bind.dialect.dbapi.sqlite_version_info >= (3, 35, 0):
        op.drop_column("customers", "zoho_lookup_key")  # in place: no copy of the provider's table
    else:
        with op.batch_alter_table("customers", recreate="always") as batch:
            batch.drop_column("zoho_lookup_key")
