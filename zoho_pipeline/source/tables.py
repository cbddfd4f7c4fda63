"""The provider's tables (fixed by source-schema.md) and the pipeline's own additions.

SQLAlchemy Core, portable between Postgres (uuid, jsonb, numeric, timestamptz) and SQLite (text, JSON text,
ISO strings). The business columns are the provider's; every `zoho_*` column and every `zoho_*` table is ours
and is added by the alembic migrations, never by `create_all` on a production database.
"""

from __future__ import annotations

import json

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    or_,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()

# A uuid is native on Postgres and 36-character text on SQLite; Python always sees a str.
UUID = String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
Money = Numeric(12, 2)
Timestamp = DateTime(timezone=True)


class Garbled(str):
    """A jsonb/JSON value that could not be parsed: kept as its raw text so the row fails alone."""


class LenientJSON(TypeDecorator):
    """JSON that never makes a whole query fail: an unparsable value comes back as `Garbled`."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value, dialect):
        if dialect.name == "postgresql" or value is None:
            return value
        return value if isinstance(value, Garbled) else json.dumps(value)

    def process_result_value(self, value, dialect):
        if value is None or not isinstance(value, str) or dialect.name == "postgresql":
            return value
        try:
            return json.loads(value)
        except ValueError:
            return Garbled(value)


def _sync_columns(zoho_id_column: str | None) -> list[Column]:
    """The columns the pipeline adds to a business table. All nullable: adding them rewrites nothing."""
    cols = [] if zoho_id_column is None else [Column(zoho_id_column, String(64))]
    return cols + [
        Column("zoho_sync_status", String(16)),  # pending, syncing, synced, failed, retrying
        Column("zoho_last_synced_at", Timestamp),
        Column("zoho_last_sync_error", Text),
        # engine state: what was last sent, which source version it covered, retries, the current claim
        Column("zoho_payload_hash", String(64)),
        Column("zoho_source_version", Timestamp),
        Column("zoho_attempts", Integer),
        Column("zoho_next_attempt_at", Timestamp),
        Column("zoho_claimed_by", String(64)),
        Column("zoho_claimed_at", Timestamp),
        Column("zoho_create_in_doubt", Boolean),
        Column("zoho_error_code", String(32)),
        Column("zoho_dead_lettered", Boolean),
    ]


def _timestamps() -> list[Column]:
    return [Column("created_at", Timestamp, nullable=False), Column("updated_at", Timestamp, nullable=False)]


service_packages = Table(
    "service_packages",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("monthly_price", Money, nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    *_timestamps(),
    Column("zoho_plan_code", String(100)),
    Column("zoho_product_id", String(64)),
    *_sync_columns(None),
)

customers = Table(
    "customers",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("first_name", Text, nullable=False),
    Column("last_name", Text, nullable=False),
    Column("phone", Text),
    Column("account_type", Text, nullable=False),
    Column("company_name", Text),
    Column("vat_number", Text),
    Column("address_line1", Text),
    Column("address_line2", Text),
    Column("suburb", Text),
    Column("city", Text),
    Column("province", Text),
    Column("postal_code", Text),
    Column("country", Text, nullable=False, default="ZA"),
    Column("status", Text, nullable=False, default="active"),
    *_timestamps(),
    *_sync_columns("zoho_billing_customer_id"),
    Column("zoho_lookup_key", Text),  # the email the create in doubt carried (migration 0003)
)

customer_services = Table(
    "customer_services",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("customer_id", UUID, nullable=False),  # → customers
    Column("package_id", UUID, nullable=False),  # → service_packages
    Column("status", Text, nullable=False),
    Column("monthly_price", Money, nullable=False),
    Column("activation_date", Date),
    Column("cancellation_date", Date),
    Column("installation_address", Text),
    *_timestamps(),
    *_sync_columns("zoho_subscription_id"),
)

customer_invoices = Table(
    "customer_invoices",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("customer_id", UUID, nullable=False),  # → customers
    Column("service_id", UUID),  # → customer_services
    Column("invoice_number", Text, nullable=False, unique=True),
    Column("invoice_type", Text, nullable=False),
    Column("invoice_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("line_items", LenientJSON),
    Column("subtotal", Money, nullable=False),
    Column("vat_amount", Money, nullable=False),
    Column("total_amount", Money, nullable=False),
    Column("status", Text, nullable=False),
    *_timestamps(),
    *_sync_columns("zoho_billing_invoice_id"),
)

payment_transactions = Table(
    "payment_transactions",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("transaction_id", Text, nullable=False, unique=True),
    Column("customer_id", UUID, nullable=False),  # → customers
    Column("invoice_id", UUID),  # → customer_invoices
    Column("amount", Money, nullable=False),
    Column("currency", Text, nullable=False, default="ZAR"),
    Column("payment_method", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("completed_at", Timestamp),
    *_timestamps(),
    *_sync_columns("zoho_payment_id"),
)

BUSINESS_TABLES = (service_packages, customers, customer_services, customer_invoices, payment_transactions)


def dirty_predicate(table: Table):
    """Rows that may need work. The same expression is the predicate of each table's partial index
    `ix_<table>_zoho_due`, so the find-work query reads only the (small) dirty part of the table."""
    c = table.c
    return or_(
        c.zoho_sync_status.is_(None),
        c.zoho_sync_status != "synced",
        c.zoho_source_version.is_(None),
        c.updated_at > c.zoho_source_version,
    )


# --- the pipeline's own tables ---------------------------------------------------------------------------------

zoho_sync_logs = Table(
    "zoho_sync_logs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # create, update, adopt, skip, validate, lookup
    Column("outcome", String(16), nullable=False),  # synced, unchanged, failed, retrying, dead_lettered, dry_run
    Column("zoho_id", String(64)),
    Column("error_code", String(32)),
    Column("error", Text),
    Column("attempt", Integer),
    Column("api_calls", Integer),
    Column("duration_ms", Integer),
    Column("run_id", String(64)),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_zoho_sync_logs_created_at", "created_at"),
    Index("ix_zoho_sync_logs_entity", "entity_type", "entity_id"),
    Index("ix_zoho_sync_logs_outcome", "outcome", "created_at"),
)

# One row per engine run: the heartbeat tells other runs whether a `syncing` claim is still alive.
zoho_sync_runs = Table(
    "zoho_sync_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", Timestamp, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("status", String(16), nullable=False),  # running, succeeded, partial, failed, stopped
    Column("summary", Text),  # JSON of the run report
)

# OAuth access-token cache shared by every process; keyed by a hash of client id + refresh token.
zoho_oauth_tokens = Table(
    "zoho_oauth_tokens",
    metadata,
    Column("token_key", String(64), primary_key=True),
    Column("access_token", Text),
    Column("expires_at", Timestamp),
    Column("api_domain", Text),
    Column("lock_owner", String(64)),
    Column("lock_until", Timestamp),
    Column("updated_at", Timestamp, nullable=False),
)

# API calls spent per organization and UTC day, so every process honours one daily budget.
zoho_api_usage = Table(
    "zoho_api_usage",
    metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("calls", Integer, nullable=False),
)

# Small key/value facts learnt from ZOHO: tax id, product ids for one-off charges, alert state.
zoho_pipeline_state = Table(
    "zoho_pipeline_state",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text),
    Column("updated_at", Timestamp, nullable=False),
)

# The payload ZOHO last accepted per row (compact canonical JSON, the text `zoho_payload_hash` digests), written
# in the outcome's transaction: the dry run's field-level diff and the drift check compare against it. Keyed by
# the primary key only (no other index: nothing queries it otherwise); our table, not a column on the provider's.
zoho_accepted_payloads = Table(
    "zoho_accepted_payloads",
    metadata,
    Column("entity_type", String(32), primary_key=True),
    Column("entity_id", String(64), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("accepted_at", Timestamp, nullable=False),
)

# The API call inspector: the last N calls to ZOHO (a ring: the oldest are pruned), bodies redacted. The id is
# made by the writer, time-ordered (milliseconds << 22 | a counter), so a failure can name its call without a
# RETURNING and `--since` is a primary-key range; no other index: the table is small by construction.
zoho_api_calls = Table(
    "zoho_api_calls",
    metadata,
    # on SQLite an INTEGER PRIMARY KEY is the rowid itself (64-bit): one b-tree, not a table and an index
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", Timestamp, nullable=False),
    Column("run_id", String(64)),
    Column("entity_type", String(32)),
    Column("entity_id", String(64)),
    Column("method", String(8), nullable=False),
    Column("path_template", String(255), nullable=False),  # /customers/{id}
    Column("path", String(255), nullable=False),  # as sent: ZOHO ids, never a query string or a token
    Column("status", Integer),  # None: no response
    Column("zoho_code", Integer),
    Column("duration_ms", Integer),
    Column("query", Text),  # JSON
    Column("request_body", Text),  # JSON, redacted
    Column("response_body", Text),  # JSON (or text), redacted
    Column("error", String(64)),  # no response: what happened (ReadTimeout)
)

# One pace per ZOHO organization across processes (sync.stores.DbPaceStore): the 429 pause every process honours,
# and the slots each process leases from the per-minute window. Times are seconds since the epoch by the database's
# clock (Postgres) so hosts whose clocks differ still share one window.
zoho_api_pace = Table(
    "zoho_api_pace",
    metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("paused_until", Float(precision=53), nullable=False, default=0.0),
)
zoho_api_leases = Table(
    "zoho_api_leases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organization_id", String(64), nullable=False),
    Column("granted_at", Float(precision=53), nullable=False),
    Column("expires_at", Float(precision=53), nullable=False),  # sends use the lease before; counted a window more
    Column("calls", Integer, nullable=False),
    Index("ix_zoho_api_leases_org_expires", "organization_id", "expires_at"),
)

# The provider's recurring invoices and ZOHO's invoice for the same subscription and term (migration 0008). The
# provider's row also gets `zoho_billing_invoice_id` once linked; this table keeps why a row is not (yet) linked,
# ZOHO's total (a payment never applies more) and since when the link has been looked for (the wait for it).
zoho_recurring_links = Table(
    "zoho_recurring_links",
    metadata,
    Column("invoice_id", UUID, primary_key=True),  # → customer_invoices (a recurring one)
    Column("state", String(16), nullable=False),  # linked, waiting, unmatched, ambiguous, history
    Column("reason", Text),  # why it is not linked; or the amount difference of a linked one
    Column("zoho_invoice_id", String(64)),
    Column("zoho_subscription_id", String(64)),
    Column("zoho_total", Money),
    Column("zoho_status", String(16)),
    Column("first_seen_at", Timestamp, nullable=False),  # first looked for: the wait is counted from here
    Column("checked_at", Timestamp, nullable=False),
    Column("linked_at", Timestamp),
    Index("ix_zoho_recurring_links_state", "state"),
)

PIPELINE_TABLES = (
    zoho_sync_logs,
    zoho_sync_runs,
    zoho_oauth_tokens,
    zoho_api_usage,
    zoho_pipeline_state,
    zoho_accepted_payloads,
    zoho_api_calls,
    zoho_api_pace,
    zoho_api_leases,
    zoho_recurring_links,
)

TABLES_BY_NAME = {t.name: t for t in metadata.sorted_tables}
