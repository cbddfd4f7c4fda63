"""The provider's five business tables as they exist *before* the pipeline is installed.

Built from `tables.py` by copying only the non-`zoho_` columns and adding what a real provider database has and the
shared definitions leave out (foreign keys, server defaults). Demo and test setups call `create_business_tables`
and then run the pipeline's migrations, exactly as an operator does on a production database. Never used on a
production database: there the tables already exist.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Column, ForeignKey, MetaData, Table

from zoho_pipeline.source import tables as t

business_metadata = MetaData()

# Server defaults from source-schema.md (tables.py only has the Python-side defaults).
_SERVER_DEFAULTS = {
    ("service_packages", "is_active"): sa.true(),
    ("customers", "country"): sa.text("'ZA'"),
    ("customers", "status"): sa.text("'active'"),
    ("payment_transactions", "currency"): sa.text("'ZAR'"),
}

_FOREIGN_KEYS = {
    ("customer_services", "customer_id"): "customers.id",
    ("customer_services", "package_id"): "service_packages.id",
    ("customer_invoices", "customer_id"): "customers.id",
    ("customer_invoices", "service_id"): "customer_services.id",
    ("payment_transactions", "customer_id"): "customers.id",
    ("payment_transactions", "invoice_id"): "customer_invoices.id",
}


def is_business_column(name: str) -> bool:
    return not name.startswith("zoho_")


def _copy_business_table(source: Table) -> Table:
    columns = []
    for col in source.columns:
        if not is_business_column(col.name):
            continue
        key = (source.name, col.name)
        args = []
        if key in _FOREIGN_KEYS:
            target = _FOREIGN_KEYS[key]
            args.append(ForeignKey(target, name=f"fk_{source.name}_{col.name}"))
        columns.append(
            Column(
                col.name,
                col.type,
                *args,
                primary_key=col.primary_key,
                nullable=col.nullable,
                unique=bool(col.unique),
                default=col.default.arg if col.default is not None and col.default.is_scalar else None,
                server_default=_SERVER_DEFAULTS.get(key),
            )
        )
    return Table(source.name, business_metadata, *columns)


service_packages = _copy_business_table(t.service_packages)
customers = _copy_business_table(t.customers)
customer_services = _copy_business_table(t.customer_services)
customer_invoices = _copy_business_table(t.customer_invoices)
payment_transactions = _copy_business_table(t.payment_transactions)

BUSINESS_TABLES = (service_packages, customers, customer_services, customer_invoices, payment_transactions)
BUSINESS_TABLE_NAMES = tuple(tbl.name for tbl in BUSINESS_TABLES)
BUSINESS_COLUMNS = {tbl.name: tuple(c.name for c in tbl.columns) for tbl in BUSINESS_TABLES}


def create_business_tables(engine: sa.engine.Engine) -> list[str]:
    """Create the five provider tables that are missing (business columns only). Returns the names created."""
    existing = set(sa.inspect(engine).get_table_names())
    missing = [name for name in BUSINESS_TABLE_NAMES if name not in existing]
    business_metadata.create_all(engine, tables=[business_metadata.tables[n] for n in missing], checkfirst=True)
    return missing


def drop_business_tables(engine: sa.engine.Engine) -> None:
    """Drop the five provider tables (demo `--reset` only), children first."""
    with engine.begin() as conn:
        for tbl in reversed(BUSINESS_TABLES):
            tbl.drop(conn, checkfirst=True)
