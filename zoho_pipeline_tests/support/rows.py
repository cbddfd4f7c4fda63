"""Source rows for tests and benchmarks: hand-made rows for the operator-tool tests (queries, CLI, alerts, health,
reconcile), and many valid customers fast for the benchmarks.

A real provider database shape: the business tables created first, then the pipeline's own migrations, exactly
as on production. Rows are inserted with SQLAlchemy Core so both SQLite and Postgres run the same tests.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.source import business, database, migrate
from zoho_pipeline.source import tables as T

_seq = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC)


def ts(engine, value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def make_source(url: str) -> sa.Engine:
    """An empty provider database at `url` with the pipeline installed (business tables + migrations)."""
    engine = database.make_engine(url)
    business.create_business_tables(engine)
    migrate.upgrade(url)
    return engine


def _insert(engine, table, **values) -> str:
    values.setdefault("id", str(uuid.uuid4()))
    stamp = ts(engine, values.pop("at", None) or now() - timedelta(hours=1))
    values.setdefault("created_at", stamp)
    values.setdefault("updated_at", stamp)
    for key in ("zoho_last_synced_at", "zoho_claimed_at", "zoho_next_attempt_at", "zoho_source_version"):
        if isinstance(values.get(key), datetime):
            values[key] = ts(engine, values[key])
    if values.get("zoho_sync_status") in ("synced", "failed", "retrying"):
        # the version the engine's last attempt covered (claims.record writes it)
        values.setdefault("zoho_source_version", values["updated_at"])
    if values.get("zoho_sync_status") == "synced":
        values.setdefault("zoho_last_synced_at", values["updated_at"])
    with engine.begin() as conn:
        conn.execute(table.insert().values(**values))
    return values["id"]


def add_package(engine, name="Fibre 100/50 Mbps", price="799.00", **kw) -> str:
    return _insert(engine, T.service_packages, name=name, monthly_price=Decimal(price), is_active=True, **kw)


def add_customer(engine, first="Thandi", last="Nkosi", email=None, **kw) -> str:
    n = next(_seq)
    email = email or f"{first.lower()}.{last.lower()}{n}@example.co.za"
    return _insert(
        engine,
        T.customers,
        first_name=first,
        last_name=last,
        email=email,
        account_type="personal",
        country="ZA",
        status="active",
        **kw,
    )


def add_service(engine, customer_id, package_id, status="active", price="799.00", **kw) -> str:
    kw.setdefault("activation_date", date(2025, 1, 1))
    return _insert(
        engine,
        T.customer_services,
        customer_id=customer_id,
        package_id=package_id,
        status=status,
        monthly_price=Decimal(price),
        **kw,
    )


def add_invoice(
    engine, customer_id, number=None, invoice_type="installation", total="1150.00", status="sent", **kw
) -> str:
    number = number or f"INV-2025-{next(_seq):06d}"
    total = Decimal(total)
    sub = (total / Decimal("1.15")).quantize(Decimal("0.01"))
    kw.setdefault("invoice_date", date(2025, 6, 1))
    kw.setdefault("due_date", date(2025, 6, 15))
    return _insert(
        engine,
        T.customer_invoices,
        customer_id=customer_id,
        invoice_number=number,
        invoice_type=invoice_type,
        line_items=[{"description": "Installation", "quantity": 1, "unit_price": str(sub), "amount": str(sub)}],
        subtotal=sub,
        vat_amount=total - sub,
        total_amount=total,
        status=status,
        **kw,
    )


def add_payment(engine, customer_id, invoice_id=None, amount="1150.00", txn=None, status="completed", **kw) -> str:
    txn = txn or f"NC-{next(_seq):08d}"
    kw.setdefault("payment_method", "netcash")
    kw.setdefault("completed_at", ts(engine, now() - timedelta(hours=2)))
    return _insert(
        engine,
        T.payment_transactions,
        transaction_id=txn,
        customer_id=customer_id,
        invoice_id=invoice_id,
        amount=Decimal(amount),
        currency="ZAR",
        status=status,
        **kw,
    )


def add_log(
    engine,
    entity,
    entity_id,
    outcome="synced",
    action="create",
    at=None,
    error=None,
    error_code=None,
    run_id="run-1",
    zoho_id=None,
    attempt=1,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            T.zoho_sync_logs.insert().values(
                entity_type=entity,
                entity_id=str(entity_id),
                action=action,
                outcome=outcome,
                zoho_id=zoho_id,
                error_code=error_code,
                error=error,
                attempt=attempt,
                api_calls=1,
                duration_ms=120,
                run_id=run_id,
                created_at=ts(engine, at or now() - timedelta(minutes=5)),
            )
        )


def add_run(engine, run_id, status="running", started=None, heartbeat=None, finished=None, summary=None) -> None:
    started = started or now() - timedelta(minutes=10)
    with engine.begin() as conn:
        conn.execute(
            T.zoho_sync_runs.insert().values(
                run_id=run_id,
                started_at=ts(engine, started),
                heartbeat_at=ts(engine, heartbeat or started),
                finished_at=ts(engine, finished) if finished else None,
                host="test",
                pid=1,
                status=status,
                summary=summary,
            )
        )


def set_usage(engine, organization_id, calls, day=None) -> None:
    """The organization's API calls of `day` (today): whatever a call of the test recorded is replaced."""
    u, day = T.zoho_api_usage, day or now().date()
    with engine.begin() as conn:
        conn.execute(u.delete().where(u.c.organization_id == organization_id, u.c.day == day))
        conn.execute(u.insert().values(organization_id=organization_id, day=day, calls=calls))


def row(engine, table, row_id) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(table.c.id == row_id)).mappings().one())


def scenario(engine) -> dict:
    """A small world with one of everything: synced, pending, failed, dead-lettered, stuck, retrying."""
    ids: dict[str, str] = {}
    ids["pkg"] = add_package(engine, zoho_sync_status="synced", zoho_plan_code="fibre-100", zoho_product_id="P1")
    ids["thandi"] = add_customer(
        engine,
        "Thandi",
        "Nkosi",
        email="thandi@example.co.za",
        zoho_sync_status="synced",
        zoho_billing_customer_id="Z-C-1",
    )
    ids["sipho"] = add_customer(engine, "Sipho", "Dlamini", email="sipho@example.co.za")  # pending (NULL)
    ids["lerato"] = add_customer(
        engine,
        "Lerato",
        "Mokoena",
        email="lerato@example.co.za",
        zoho_sync_status="failed",
        zoho_error_code="4",
        zoho_last_sync_error="Invalid value passed for email",
        zoho_attempts=1,
    )
    ids["pieter"] = add_customer(
        engine,
        "Pieter",
        "van Wyk",
        email="pieter@example.co.za",
        zoho_sync_status="failed",
        zoho_dead_lettered=True,
        zoho_error_code="retryable:503",
        zoho_last_sync_error="Service Unavailable (HTTP 503)",
        zoho_attempts=5,
    )
    ids["aisha"] = add_customer(
        engine,
        "Aisha",
        "Patel",
        email="aisha@example.co.za",
        zoho_sync_status="syncing",
        zoho_claimed_by="dead-run",
        zoho_claimed_at=now() - timedelta(minutes=30),
        zoho_attempts=1,
    )
    ids["naledi"] = add_customer(
        engine,
        "Naledi",
        "Khumalo",
        email="naledi@example.co.za",
        zoho_sync_status="retrying",
        zoho_attempts=2,
        zoho_error_code="retryable:502",
        zoho_last_sync_error="Bad Gateway",
        zoho_next_attempt_at=now() + timedelta(hours=1),
    )
    ids["ghost"] = add_customer(engine, "Ghost", "Synced", email="ghost@example.co.za", zoho_sync_status="synced")
    ids["svc"] = add_service(engine, ids["thandi"], ids["pkg"])
    ids["svc_pending"] = add_service(engine, ids["sipho"], ids["pkg"], status="pending")  # not eligible
    ids["inv"] = add_invoice(
        engine,
        ids["thandi"],
        number="INV-2025-000123",
        zoho_sync_status="failed",
        zoho_error_code="1001",
        zoho_last_sync_error="Customer does not exist",
    )
    ids["inv_recurring"] = add_invoice(engine, ids["thandi"], number="INV-2025-000124", invoice_type="recurring")
    ids["pay"] = add_payment(engine, ids["thandi"], ids["inv"], txn="NC-TXN-0001")
    add_run(
        engine,
        "dead-run",
        status="running",
        started=now() - timedelta(hours=1),
        heartbeat=now() - timedelta(minutes=40),
    )
    add_log(engine, "customers", ids["thandi"], "synced", zoho_id="Z-C-1")
    add_log(engine, "customers", ids["lerato"], "failed", error="Invalid value passed for email", error_code="4")
    add_log(
        engine,
        "customers",
        ids["pieter"],
        "dead_lettered",
        error="Service Unavailable (HTTP 503)",
        error_code="retryable:503",
        attempt=5,
    )
    add_log(engine, "invoices", ids["inv"], "failed", error="Customer does not exist", error_code="1001")
    add_log(engine, "customers", ids["naledi"], "retrying", error="Bad Gateway", at=now() - timedelta(days=3))
    return ids


# --- many customers, fast (the benchmarks) ---------------------------------------------------------------------


def customer_rows(n: int, start: int = 0):
    """`n` valid, distinct customers (no services, invoices or payments): one create each."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(start, start + n):
        stamp = base + timedelta(seconds=i)
        yield dict(
            id=str(uuid.UUID(int=(0x5EED << 96) + i, version=4)),
            email=f"customer{i}@bench.example.co.za",
            first_name="Thandi",
            last_name=f"Nkosi {i}",
            phone=f"+2782{i % 10_000_000:07d}",
            account_type="personal",
            company_name=None,
            vat_number=None,
            address_line1=f"{i % 250 + 1} Jan Smuts Avenue",
            address_line2=None,
            suburb="Sandton",
            city="Johannesburg",
            province="Gauteng",
            postal_code="2196",
            country="ZA",
            status="active",
            created_at=stamp,
            updated_at=stamp,
        )


def customers_database(url: str, n: int, chunk: int = 5000) -> None:
    """Business tables + migrations, then `n` new customers (batched executemany)."""
    engine = database.make_engine(url)
    try:
        business.create_business_tables(engine)
        with engine.begin() as conn:
            batch = []
            for row in customer_rows(n):
                batch.append(row)
                if len(batch) >= chunk:
                    conn.execute(business.customers.insert(), batch)
                    batch = []
            if batch:
                conn.execute(business.customers.insert(), batch)
    finally:
        engine.dispose()
    migrate.upgrade(url)
