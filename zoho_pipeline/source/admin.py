"""Administration of the source database: engines, migrations, demo setup.

`make_engine` is the one place that creates SQLAlchemy engines for the source database. The migrations run
programmatically from `zoho_pipeline/source/migrations` (no alembic.ini) and keep their version in
`zoho_pipeline_alembic_version`, apart from any alembic the provider runs itself.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from zoho_pipeline.source import business

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "zoho_pipeline_alembic_version"
PIPELINE_TABLE_NAMES = ("zoho_sync_logs", "zoho_sync_runs", "zoho_oauth_tokens", "zoho_api_usage", "zoho_pipeline_state")


class MissingProviderTables(RuntimeError):
    """The database lacks some of the provider's business tables: it is not (yet) a provider database."""

    def __init__(self, missing: list[str], url: str):
        self.missing = list(missing)
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        super().__init__(
            f"the source database {shown} has no table(s) {', '.join(self.missing)}: the pipeline's migrations "
            "only add to the provider's existing tables. Point SOURCE_DATABASE_URL (or --database-url) at the "
            "provider's billing database, or create a demo database with `zoho-pipeline db create-demo`."
        )


# --- engines ----------------------------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str | sa.engine.URL, **kwargs) -> sa.engine.Engine:
    """The engine for the source database. SQLite: 30 s busy timeout, usable from any thread, WAL journal and
    foreign keys on every connection. Postgres: pre-ping, a pool sized for the sync workers. `kwargs` override."""
    url = sa.engine.make_url(url)
    if url.get_backend_name() == "sqlite":
        options = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        options.update(kwargs)
        engine = sa.create_engine(url, **options)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # jit off: the planner overestimates the small dirty part of a big table and would spend ~0.25 s compiling
    # the find-work count (measured at 1 M customers); these queries are short and never gain from JIT
    options = {"pool_pre_ping": True, "pool_size": 12, "max_overflow": 8, "pool_recycle": 1800,
               "connect_args": {"options": "-c jit=off"}}
    if url.get_driver_name() == "psycopg2":
        # a chunk's claims and outcomes go as a few statements per round trip, not one each
        options["executemany_mode"] = "values_plus_batch"
    options.update(kwargs)
    return sa.create_engine(url, **options)


# --- migrations -------------------------------------------------------------------------------------------------


DEFAULT_LOCK_TIMEOUT = "10s"


def _config(connection=None, url=None, lock_timeout: str | None = DEFAULT_LOCK_TIMEOUT) -> Config:
    cfg = Config()
    cfg.attributes["lock_timeout"] = lock_timeout
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_table", VERSION_TABLE)
    if connection is not None:
        cfg.attributes["connection"] = connection
    if url is not None:
        cfg.attributes["url"] = str(url)
    return cfg


def head() -> str:
    """The newest revision shipped with this version of the pipeline."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _current(conn) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def current(url: str) -> str | None:
    """The revision the database is at, or None when the pipeline was never installed there."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return _current(conn)
    finally:
        engine.dispose()


def is_at_head(url: str) -> bool:
    return current(url) == head()


def missing_provider_tables(engine: sa.engine.Engine) -> list[str]:
    existing = set(sa.inspect(engine).get_table_names())
    return [name for name in business.BUSINESS_TABLE_NAMES if name not in existing]


def upgrade(url: str, revision: str = "head", lock_timeout: str | None = DEFAULT_LOCK_TIMEOUT) -> str:
    """Bring the pipeline's columns and tables to `revision` (idempotent). Returns the revision reached.

    On Postgres each DDL statement waits at most `lock_timeout` for its lock (None: no limit), so a long business
    transaction makes the upgrade fail cleanly (re-run it later) instead of queueing the provider's writes behind
    it. A revision is one transaction, and the CONCURRENTLY index builds resume after an interruption.

    Raises MissingProviderTables when the database is not a provider database."""
    engine = make_engine(url)
    try:
        missing = missing_provider_tables(engine)
        if missing:
            raise MissingProviderTables(missing, str(url))
        with engine.connect() as conn:
            command.upgrade(_config(connection=conn, lock_timeout=lock_timeout), revision)
            conn.commit()
        with engine.connect() as conn:
            return _current(conn)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base", lock_timeout: str | None = DEFAULT_LOCK_TIMEOUT) -> str | None:
    """Remove the pipeline's additions down to `revision` ("base": everything it added). Business data stays."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if _current(conn) is not None:
                command.downgrade(_config(connection=conn, lock_timeout=lock_timeout), revision)
                conn.commit()
        with engine.begin() as conn:
            reached = _current(conn)
            if reached is None:  # at base: the version table was ours too
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{VERSION_TABLE}"'))
            return reached
    finally:
        engine.dispose()


# --- demo -------------------------------------------------------------------------------------------------------


def business_row_counts(url: str) -> dict[str, int]:
    """Rows per business table that exists (a missing table is left out)."""
    engine = make_engine(url)
    try:
        existing = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {
                tbl.name: conn.execute(sa.select(sa.func.count()).select_from(tbl)).scalar_one()
                for tbl in business.BUSINESS_TABLES
                if tbl.name in existing
            }
    finally:
        engine.dispose()


def reset(url: str) -> None:
    """Drop the pipeline's tables, its version table and the five business tables (demo databases only)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name in (*PIPELINE_TABLE_NAMES, VERSION_TABLE):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        business.drop_business_tables(engine)
    finally:
        engine.dispose()


def create_demo(url: str, customers: int = 500, seed: int = 42, today=None) -> dict:
    """Create the business tables when missing, fill them with seeded demo data, then run the migrations.

    Returns the rows inserted per table plus `bad_rows` (kind -> count) and `revision`."""
    from zoho_pipeline.source import demo

    engine = make_engine(url)
    try:
        business.create_business_tables(engine)
        rows = demo.generate(customers, seed, today=today)
        counts = demo.insert_rows(engine, rows)
    finally:
        engine.dispose()
    counts["bad_rows"] = {kind: len(ids) for kind, ids in rows.bad.items()}
    counts["revision"] = upgrade(url)
    return counts
