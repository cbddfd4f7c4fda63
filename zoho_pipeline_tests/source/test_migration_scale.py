"""Issue 6, migrations at scale: `db upgrade` on a populated Postgres database (100 000 customers and 100 000 more
rows in the other business tables) is additive only, rewrites no business table, never blocks the provider's writes
for long, is safe to run twice, and `downgrade` removes exactly what the pipeline added, leaving the business data
byte for byte as it was.

"No rewrite" is proved, not timed: a table rewrite gives the table a new file (`pg_class.relfilenode`), so every
business table's relfilenode must be the same before and after. The wall time is printed (`-s`), not asserted.
While the upgrade runs, another connection keeps inserting customers with a short `lock_timeout`; none may fail.
Whole module: ~15 s.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from zoho_pipeline.source import business, migrate
from zoho_pipeline.source.database import make_engine

CUSTOMERS = 100_000
SERVICES = 40_000
INVOICES = 40_000
PAYMENTS = 20_000
BUSINESS = business.BUSINESS_TABLE_NAMES
WRITER_LOCK_TIMEOUT = "2s"  # a provider write may wait this long for a migration's lock, no longer


def _populate(engine) -> None:
    """Bulk rows in SQL (generate_series + gen_random_uuid): seconds, not minutes."""
    statements = [
        """INSERT INTO service_packages (id, name, description, monthly_price, is_active, created_at, updated_at)
           SELECT gen_random_uuid(), 'Fibre ' || g || '0/' || g || '0 Mbps', 'Uncapped', 399 + g * 100, g <> 7,
                  now() - interval '900 days', now() - interval '30 days'
           FROM generate_series(1, 10) g""",
        """INSERT INTO customers (id, email, first_name, last_name, phone, account_type, company_name, vat_number,
                                  address_line1, address_line2, suburb, city, province, postal_code, country, status,
                                  created_at, updated_at)
           SELECT gen_random_uuid(), 'customer' || g || '@example.co.za',
                  (ARRAY['Sipho','Zoë','Pieter','Lindiwe','Thabo','Anneliës'])[1 + g % 6],
                  (ARRAY['Nxumalo','O''Neill','Müller','Dlamini','Mokoena','du Plessis'])[1 + g % 6],
                  CASE WHEN g % 10 = 0 THEN NULL ELSE '+2782' || lpad((g % 10000000)::text, 7, '0') END,
                  CASE WHEN g % 5 = 0 THEN 'business' ELSE 'personal' END,
                  CASE WHEN g % 5 = 0 THEN 'Company ' || g || ' (Pty) Ltd' END,
                  CASE WHEN g % 10 = 0 THEN '4' || lpad(g::text, 9, '0') END,
                  g || ' Jan Smuts Avenue', NULL, 'Rosebank', 'Johannesburg', 'Gauteng', '2196', 'ZA',
                  (ARRAY['active','active','active','suspended','closed'])[1 + g % 5],
                  now() - (g || ' minutes')::interval, now() - (g || ' seconds')::interval
           FROM generate_series(1, :customers) g""",
        """INSERT INTO customer_services (id, customer_id, package_id, status, monthly_price, activation_date,
                                          cancellation_date, installation_address, created_at, updated_at)
           SELECT gen_random_uuid(), c.id, p.ids[1 + c.rn % 10], 'active', 699.00, current_date - (c.rn % 700)::int,
                  NULL, 'Rosebank', now() - interval '100 days', now() - interval '1 day'
           FROM (SELECT id, row_number() OVER (ORDER BY id) rn FROM customers) c,
                (SELECT array_agg(id ORDER BY name) ids FROM service_packages) p
           WHERE c.rn <= :services""",
        """INSERT INTO customer_invoices (id, customer_id, service_id, invoice_number, invoice_type, invoice_date,
                                          due_date, line_items, subtotal, vat_amount, total_amount, status,
                                          created_at, updated_at)
           SELECT gen_random_uuid(), s.customer_id, s.id, 'INV-2025-' || lpad(s.rn::text, 6, '0'),
                  CASE WHEN s.rn % 4 = 0 THEN 'equipment' ELSE 'recurring' END, current_date - (s.rn % 180)::int,
                  current_date - (s.rn % 180)::int + 7,
                  jsonb_build_array(jsonb_build_object('description', 'Fibre — month ' || s.rn, 'quantity', 1,
                                                       'unit_price', 699.0, 'amount', 699.0)),
                  699.00, 104.85, 803.85, 'paid', now() - interval '10 days', now() - interval '1 day'
           FROM (SELECT id, customer_id, row_number() OVER (ORDER BY id) rn FROM customer_services) s
           WHERE s.rn <= :invoices""",
        """INSERT INTO payment_transactions (id, transaction_id, customer_id, invoice_id, amount, currency,
                                             payment_method, status, completed_at, created_at, updated_at)
           SELECT gen_random_uuid(), 'NC-' || lpad(i.rn::text, 10, '0'), i.customer_id, i.id, i.total_amount, 'ZAR',
                  'netcash', 'completed', now() - interval '5 days', now() - interval '5 days',
                  now() - interval '5 days'
           FROM (SELECT id, customer_id, total_amount, row_number() OVER (ORDER BY id) rn
                 FROM customer_invoices) i
           WHERE i.rn <= :payments""",
        # what the provider owns beyond the five tables' columns: a downgrade must leave all of it alone
        "CREATE INDEX ix_customers_city_provider ON customers (city)",
        "CREATE TABLE provider_notes (id serial primary key, customer_id uuid references customers(id), note text)",
        "INSERT INTO provider_notes (customer_id, note) SELECT id, 'VIP' FROM customers LIMIT 100",
        "ANALYZE",
    ]
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(
                sa.text(sql), dict(customers=CUSTOMERS, services=SERVICES, invoices=INVOICES, payments=PAYMENTS)
            )


def _columns(conn) -> dict[str, list[tuple]]:
    """table -> [(name, type, nullable, default)] in ordinal order."""
    out = {}
    for name in BUSINESS:
        out[name] = [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = :t ORDER BY ordinal_position"
                ),
                {"t": name},
            )
        ]
    return out


def _relfilenodes(conn) -> dict[str, int]:
    return {
        name: conn.execute(
            sa.text("SELECT relfilenode FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": name}
        ).scalar_one()
        for name in BUSINESS
    }


def _checksums(conn) -> dict[str, tuple[int, str]]:
    """(rows, md5 over every business column of every row, ordered by id) per table; concurrent test rows excluded."""
    out = {}
    for table in business.BUSINESS_TABLES:
        cols = ", ".join(f'"{c.name}"::text' for c in table.columns)
        where = "WHERE email NOT LIKE 'concurrent-%'" if table.name == "customers" else ""
        out[table.name] = tuple(
            conn.execute(
                sa.text(
                    f"SELECT count(*), md5(string_agg(concat_ws('|', {cols}), E'\\n' ORDER BY id)) FROM {table.name} {where}"
                )
            ).one()
        )
    return out


def _indexes(conn) -> set[tuple[str, str]]:
    return {
        (r[0], r[1])
        for r in conn.execute(
            sa.text("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()")
        )
    }


def _tables(conn) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


class Writer(threading.Thread):
    """The provider's application: inserts a customer every few ms with a short lock_timeout, timing each."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.engine = make_engine(url, pool_size=1, max_overflow=0)
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self):
        n = 0
        with self.engine.connect() as conn:
            conn.execute(sa.text(f"SET lock_timeout = '{WRITER_LOCK_TIMEOUT}'"))
            conn.commit()
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    conn.execute(
                        sa.text(
                            "INSERT INTO customers (id, email, first_name, last_name, account_type, created_at, "
                            "updated_at) VALUES (gen_random_uuid(), :e, 'Con', 'Current', 'personal', now(), now())"
                        ),
                        {"e": f"concurrent-{n}@example.co.za"},
                    )
                    conn.commit()
                    self.latencies.append(time.monotonic() - started)
                except Exception as exc:  # noqa: BLE001 - recorded and asserted on
                    conn.rollback()
                    self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                time.sleep(0.005)
        self.engine.dispose()


def test_upgrade_on_a_populated_postgres_is_additive_rewrites_nothing_and_reverses_exactly(pg_url):
    engine = make_engine(pg_url)
    try:
        business.create_business_tables(engine)
        t0 = time.monotonic()
        _populate(engine)
        print(f"\npopulated {CUSTOMERS + SERVICES + INVOICES + PAYMENTS + 10} rows in {time.monotonic() - t0:.1f}s")
        with engine.connect() as conn:
            columns_before = _columns(conn)
            files_before = _relfilenodes(conn)
            sums_before = _checksums(conn)
            indexes_before = _indexes(conn)
            tables_before = _tables(conn)
        assert sums_before["customers"][0] == CUSTOMERS

        # upgrade while the provider keeps writing
        writer = Writer(pg_url)
        writer.start()
        time.sleep(0.3)
        started = time.monotonic()
        reached = migrate.upgrade(pg_url)
        upgrade_s = time.monotonic() - started
        time.sleep(0.3)
        writer.stop.set()
        writer.join(timeout=30)
        print(
            f"db upgrade on {CUSTOMERS} customers: {upgrade_s:.2f}s; concurrent inserts: {len(writer.latencies)}, "
            f"slowest {max(writer.latencies) * 1000:.0f} ms, errors {len(writer.errors)}"
        )
        assert reached == migrate.head()
        assert not writer.errors, writer.errors[:3]
        assert len(writer.latencies) >= 10
        assert max(writer.latencies) < 2.0, "a provider insert waited on the migration for seconds"

        with engine.connect() as conn:
            columns_after = _columns(conn)
            assert _relfilenodes(conn) == files_before, "a business table was rewritten"
            assert _checksums(conn) == sums_before, "the upgrade changed business data"
            indexes_after = _indexes(conn)
            invalid = conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
                )
            ).all()
        assert not invalid, invalid
        for name in BUSINESS:
            before = columns_before[name]
            after = columns_after[name]
            assert after[: len(before)] == before, f"{name}: a business column changed"
            added = after[len(before) :]
            assert added and all(col[0].startswith("zoho_") for col in added), (name, added)
            for col_name, _type, nullable, default in added:
                assert nullable == "YES" and default is None, f"{name}.{col_name} is NOT NULL or has a default"
        new_indexes = indexes_after - indexes_before
        on_business = {i for t, i in new_indexes if t in BUSINESS}
        assert on_business and all(i.startswith("ix_") and "zoho" in i for i in on_business), on_business
        assert all(t.startswith("zoho_") for t, _ in new_indexes if t not in BUSINESS), new_indexes
        assert ("customers", "ix_customers_zoho_due") in new_indexes

        # safe to run twice: nothing changes, nothing is rewritten
        assert migrate.upgrade(pg_url) == migrate.head()
        with engine.connect() as conn:
            assert _columns(conn) == columns_after
            assert _relfilenodes(conn) == files_before
            assert _indexes(conn) == indexes_after

        # downgrade: exactly the original columns, indexes and tables; business data and files untouched
        started = time.monotonic()
        assert migrate.downgrade(pg_url) is None
        print(f"db downgrade: {time.monotonic() - started:.2f}s")
        with engine.connect() as conn:
            assert _columns(conn) == columns_before
            assert _indexes(conn) == indexes_before
            assert _tables(conn) == tables_before
            assert _relfilenodes(conn) == files_before
            assert _checksums(conn) == sums_before, "the downgrade changed business data"
            assert conn.execute(sa.text("SELECT count(*) FROM provider_notes")).scalar_one() == 100
            concurrent = conn.execute(
                sa.text("SELECT count(*) FROM customers WHERE email LIKE 'concurrent-%'")
            ).scalar_one()
        assert concurrent == len(writer.latencies), "a provider insert made during the upgrade was lost"

        # and back up again: the round trip is repeatable
        assert migrate.upgrade(pg_url) == migrate.head()
        with engine.connect() as conn:
            assert _columns(conn) == columns_after
            assert _relfilenodes(conn) == files_before
    finally:
        engine.dispose()


def test_upgrade_waits_at_most_its_lock_timeout_behind_a_long_business_transaction(pg_url):
    """A provider transaction holding a lock on customers makes the upgrade fail cleanly after lock_timeout (the
    provider's queued writes are not stuck behind it), and a rerun once the transaction ends completes the job."""
    engine = make_engine(pg_url)
    try:
        business.create_business_tables(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO customers (id, email, first_name, last_name, account_type, created_at, updated_at) "
                    "SELECT gen_random_uuid(), 'c' || g || '@x.co.za', 'A', 'B', 'personal', now(), now() "
                    "FROM generate_series(1, 1000) g"
                )
            )
        holder = engine.connect()
        holder.execute(sa.text("LOCK TABLE customers IN ROW EXCLUSIVE MODE"))  # an open business transaction
        try:
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                migrate.upgrade(pg_url, lock_timeout="1s")
            waited = time.monotonic() - started
            assert "lock timeout" in str(caught.value).lower() or "LockNotAvailable" in repr(caught.value)
            assert waited < 10, f"the upgrade waited {waited:.1f}s for its lock"
        finally:
            holder.rollback()
            holder.close()
        assert migrate.upgrade(pg_url) == migrate.head()
        with engine.connect() as conn:
            cols = {
                r[0]
                for r in conn.execute(
                    sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'")
                )
            }
        assert "zoho_billing_customer_id" in cols
    finally:
        engine.dispose()
