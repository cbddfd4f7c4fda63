"""The pipeline's migrations on a provider database: they only add, they undo exactly, business data never moves."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from zoho_pipeline.cli import db as db_cmd
from zoho_pipeline.source import business, database, demo, migrate, tables

TODAY = dt.date(2025, 6, 15)


def _schema(url: str) -> dict:
    """Tables -> (columns, index names) as the database reports them."""
    engine = database.make_engine(url)
    try:
        insp = sa.inspect(engine)
        return {
            name: (
                frozenset(c["name"] for c in insp.get_columns(name)),
                frozenset(i["name"] for i in insp.get_indexes(name)),
            )
            for name in insp.get_table_names()
        }
    finally:
        engine.dispose()


def _checksum(url: str) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every business column of every row, per business table."""
    engine = database.make_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for tbl in business.BUSINESS_TABLES:
                digest = hashlib.sha256()
                rows = conn.execute(sa.select(*tbl.columns).order_by(tbl.c.id)).all()
                for row in rows:
                    digest.update(repr(tuple(row)).encode())
                out[tbl.name] = (len(rows), digest.hexdigest())
    finally:
        engine.dispose()
    return out


def _provider_db(url: str, customers: int = 40) -> None:
    """A provider database before the pipeline: business tables with demo rows, no zoho_* anything."""
    engine = database.make_engine(url)
    try:
        business.create_business_tables(engine)
        demo.insert_rows(engine, demo.generate(customers, seed=5, today=TODAY))
    finally:
        engine.dispose()


def test_upgrade_adds_every_zoho_column_and_table_and_is_idempotent(db_url):
    _provider_db(db_url)
    before = _schema(db_url)
    assert set(before) == set(business.BUSINESS_TABLE_NAMES)
    for name, (cols, _) in before.items():
        assert not [c for c in cols if c.startswith("zoho_")], name

    assert migrate.current(db_url) is None
    assert not migrate.is_at_head(db_url)
    assert migrate.upgrade(db_url) == migrate.head()
    after = _schema(db_url)
    assert migrate.upgrade(db_url) == migrate.head()  # twice: nothing to do, nothing changes
    assert _schema(db_url) == after
    assert migrate.is_at_head(db_url)

    # head matches tables.py exactly: every column of every table the pipeline knows
    for tbl in tables.metadata.sorted_tables:
        assert after[tbl.name][0] == {c.name for c in tbl.columns}, tbl.name
    assert set(after) == {t.name for t in tables.metadata.sorted_tables} | {migrate.VERSION_TABLE}
    for tbl in tables.BUSINESS_TABLES:
        indexes = after[tbl.name][1]
        assert f"ix_{tbl.name}_zoho_due" in indexes
        assert f"ix_{tbl.name}_zoho_sync_status" in indexes
        for col in tbl.columns:
            if col.name.startswith("zoho_") and col.name.endswith(("_id", "_plan_code")):
                assert f"ix_{tbl.name}_{col.name}" in indexes
    for tbl in tables.PIPELINE_TABLES:
        assert after[tbl.name][1] >= {i.name for i in tbl.indexes}


def test_head_column_types_match_tables_py(db_url):
    _provider_db(db_url, customers=0)
    migrate.upgrade(db_url)
    engine = database.make_engine(db_url)
    try:
        insp = sa.inspect(engine)
        for tbl in tables.metadata.sorted_tables:
            reflected = {c["name"]: c for c in insp.get_columns(tbl.name)}
            for col in tbl.columns:
                if not col.name.startswith("zoho_"):
                    continue
                got = reflected[col.name]
                assert got["nullable"], f"{tbl.name}.{col.name} must be nullable"
                assert got.get("default") is None, f"{tbl.name}.{col.name} must have no default"
                want = col.type.compile(dialect=engine.dialect)
                assert got["type"].compile(dialect=engine.dialect).split("(")[0] == want.split("(")[0], (
                    tbl.name,
                    col.name,
                )
                if getattr(col.type, "length", None):
                    assert got["type"].length == col.type.length, (tbl.name, col.name)
    finally:
        engine.dispose()


def test_downgrade_removes_exactly_what_upgrade_added_and_business_data_is_untouched(db_url):
    _provider_db(db_url)
    schema_before, data_before = _schema(db_url), _checksum(db_url)

    migrate.upgrade(db_url)
    assert _checksum(db_url) == data_before
    migrate.downgrade(db_url, "0001")
    assert migrate.current(db_url) == "0001"
    migrate.upgrade(db_url)  # up again from the middle
    assert _checksum(db_url) == data_before

    assert migrate.downgrade(db_url) is None
    assert _schema(db_url) == schema_before
    assert _checksum(db_url) == data_before
    assert migrate.current(db_url) is None
    # and once more, the whole way: the cycle is repeatable
    migrate.upgrade(db_url)
    migrate.downgrade(db_url)
    assert _schema(db_url) == schema_before


def test_upgrade_refuses_a_database_without_the_provider_tables(db_url, capsys):
    with pytest.raises(database.MissingProviderTables) as info:
        migrate.upgrade(db_url)
    message = str(info.value)
    for name in business.BUSINESS_TABLE_NAMES:
        assert name in message
    assert "SOURCE_DATABASE_URL" in message and "create-demo" in message

    # only one table missing: named alone, and nothing was added to the others
    engine = database.make_engine(db_url)
    business.create_business_tables(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE payment_transactions"))
    engine.dispose()
    schema = _schema(db_url)
    with pytest.raises(database.MissingProviderTables) as info:
        migrate.upgrade(db_url)
    assert info.value.missing == ["payment_transactions"]
    assert _schema(db_url) == schema

    assert db_cmd.main(["upgrade", "--database-url", db_url]) == 2
    err = capsys.readouterr().err
    assert "payment_transactions" in err and "create-demo" in err


def test_due_index_predicate_is_tables_dirty_predicate():
    """The migration's frozen predicate renders exactly like tables.dirty_predicate on both dialects."""
    from importlib.util import module_from_spec, spec_from_file_location

    path = migrate.MIGRATIONS_DIR / "versions" / "0002_zoho_indexes.py"
    spec = spec_from_file_location("zp_0002", path)
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    kw = {"literal_binds": True, "include_table": False}
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        for tbl in tables.BUSINESS_TABLES:
            ours = str(module.due_predicate(tbl.name).compile(dialect=dialect, compile_kwargs=kw))
            theirs = str(tables.dirty_predicate(tbl).compile(dialect=dialect, compile_kwargs=kw))
            assert ours == theirs


def test_find_work_query_uses_the_due_index_on_sqlite(sqlite_url):
    _provider_db(sqlite_url)
    migrate.upgrade(sqlite_url)
    engine = database.make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            for tbl in tables.BUSINESS_TABLES:
                stmt = sa.select(tbl.c.id).where(tables.dirty_predicate(tbl))
                compiled = stmt.compile(engine)
                plan = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params.values())
                ).all()
                assert f"ix_{tbl.name}_zoho_due" in " ".join(str(r[-1]) for r in plan)
    finally:
        engine.dispose()


RAW_PROVIDER_DDL = """
CREATE TABLE service_packages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    description text,
    monthly_price numeric(12,2) NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL UNIQUE,
    first_name text NOT NULL,
    last_name text NOT NULL,
    phone text,
    account_type text NOT NULL,
    company_name text,
    vat_number text,
    address_line1 text, address_line2 text, suburb text, city text, province text, postal_code text,
    country text NOT NULL DEFAULT 'ZA',
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customer_services (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL REFERENCES customers(id),
    package_id uuid NOT NULL REFERENCES service_packages(id),
    status text NOT NULL,
    monthly_price numeric(12,2) NOT NULL,
    activation_date date,
    cancellation_date date,
    installation_address text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customer_invoices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL REFERENCES customers(id),
    service_id uuid REFERENCES customer_services(id),
    invoice_number text NOT NULL UNIQUE,
    invoice_type text NOT NULL,
    invoice_date date NOT NULL,
    due_date date NOT NULL,
    line_items jsonb,
    subtotal numeric(12,2) NOT NULL,
    vat_amount numeric(12,2) NOT NULL,
    total_amount numeric(12,2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE payment_transactions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    transaction_id text NOT NULL UNIQUE,
    customer_id uuid NOT NULL REFERENCES customers(id),
    invoice_id uuid REFERENCES customer_invoices(id),
    amount numeric(12,2) NOT NULL,
    currency text NOT NULL DEFAULT 'ZAR',
    payment_method text NOT NULL,
    status text NOT NULL,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- the provider's own housekeeping, which the pipeline must leave alone
CREATE INDEX customers_created_idx ON customers (created_at);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('provider_7f3a');
"""


def test_upgrade_on_native_postgres_ddl_and_the_due_index_serves_find_work(pg_url):
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(RAW_PROVIDER_DDL)
        conn.exec_driver_sql(
            "INSERT INTO customers (email, first_name, last_name, account_type) "
            "SELECT 'c' || g || '@example.co.za', 'Sipho', 'Ngcobo', 'personal' FROM generate_series(1, 200) g"
        )
        conn.exec_driver_sql("INSERT INTO service_packages (name, monthly_price) VALUES ('Fibre 50/50 Mbps', 699.00)")
    data_before = _checksum(pg_url)
    schema_before = _schema(pg_url)

    assert migrate.upgrade(pg_url) == migrate.head()
    with engine.begin() as conn:
        # the provider's own alembic is not ours: untouched
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar_one() == "provider_7f3a"
        conn.execute(
            tables.customers.update()
            .where(tables.customers.c.email.like("c1%"))
            .values(zoho_sync_status="synced", zoho_source_version=sa.func.now() + sa.text("interval '1 hour'"))
        )
        # no index is left invalid by the CONCURRENTLY build
        assert (
            conn.execute(
                sa.text(
                    "select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid "
                    "where c.relname like :pattern and not i.indisvalid"
                ),
                {"pattern": "ix_%zoho%"},
            ).scalar_one()
            == 0
        )
        predicate = conn.exec_driver_sql(
            "select pg_get_expr(i.indpred, i.indrelid) from pg_index i join pg_class c on c.oid = i.indexrelid "
            "where c.relname = 'ix_customers_zoho_due'"
        ).scalar_one()
        assert "zoho_source_version" in predicate and "synced" in predicate
        conn.exec_driver_sql("ANALYZE customers")
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for tbl in tables.BUSINESS_TABLES:
            stmt = sa.select(tbl.c.id).where(tables.dirty_predicate(tbl))
            sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
            assert f"ix_{tbl.name}_zoho_due" in plan, plan
        # the same query through SQLAlchemy with bound parameters finds the dirty rows
        dirty = conn.execute(
            sa.select(sa.func.count()).select_from(tables.customers).where(tables.dirty_predicate(tables.customers))
        ).scalar_one()
        assert dirty == 200 - 111  # c1, c10..c19, c100..c199 are synced

    # the provider's types (uuid, jsonb, timestamptz) and rows survive the round trip exactly
    assert _checksum(pg_url) == data_before
    migrate.downgrade(pg_url)
    assert _schema(pg_url) == schema_before
    assert _checksum(pg_url) == data_before
    engine.dispose()


def test_make_engine_sqlite_pragmas(sqlite_url):
    engine = database.make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_make_engine_postgres_pool(pg_url):
    engine = database.make_engine(pg_url)
    try:
        assert engine.pool.size() == 12
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select 1").scalar() == 1
    finally:
        engine.dispose()


def test_a_pooled_connection_is_pinged_only_after_sitting_idle_and_replaced_when_dead(pg_url, monkeypatch):
    engine = database.make_engine(pg_url, pool_size=1, max_overflow=0)
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(1) or real_ping(c))
    try:
        with engine.connect() as conn:
            first = conn.exec_driver_sql("select pg_backend_pid()").scalar()
        with engine.connect() as conn:  # back a moment ago: no ping, no round trip
            assert conn.exec_driver_sql("select pg_backend_pid()").scalar() == first
        assert pings == []
        with sa.create_engine(pg_url).connect() as admin:  # the server drops it while it sits in the pool
            admin.exec_driver_sql(f"select pg_terminate_backend({first})")
        monkeypatch.setattr(database, "PING_IDLE_S", 0.0)  # as if it had sat idle
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select pg_backend_pid()").scalar() != first
        assert pings == [1]
    finally:
        engine.dispose()


def test_upgrade_gives_up_on_a_locked_table_instead_of_blocking_it_then_succeeds(pg_url):
    _provider_db(pg_url, customers=5)
    schema_before = _schema(pg_url)
    holder = sa.create_engine(pg_url)
    with holder.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE customer_invoices IN ACCESS SHARE MODE")  # a long report, say
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            migrate.upgrade(pg_url, lock_timeout="300ms")
        conn.rollback()
    holder.dispose()
    assert _schema(pg_url) == schema_before  # the failed revision left nothing behind
    assert migrate.current(pg_url) is None
    assert migrate.upgrade(pg_url) == migrate.head()


def test_upgrade_resumes_after_an_interrupted_concurrent_index_build(pg_url):
    _provider_db(pg_url, customers=5)
    migrate.upgrade(pg_url, "0001")
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        # a CONCURRENTLY build that failed half-way leaves an INVALID index behind under the name we want
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql('CREATE UNIQUE INDEX CONCURRENTLY "ix_customers_zoho_due" ON customers (country)')
        assert (
            conn.exec_driver_sql(
                "select indisvalid from pg_index where indexrelid = 'ix_customers_zoho_due'::regclass"
            ).scalar()
            is False
        )
    assert migrate.upgrade(pg_url) == migrate.head()
    with engine.connect() as conn:
        valid, pred = conn.exec_driver_sql(
            "select indisvalid, pg_get_expr(indpred, indrelid) from pg_index "
            "where indexrelid = 'ix_customers_zoho_due'::regclass"
        ).one()
        assert valid and "synced" in pred
    engine.dispose()
