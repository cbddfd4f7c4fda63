"""The pipeline's migrations of the source database, and a demo database set up in one step.

The migrations run programmatically from `zoho_pipeline/source/migrations` (no alembic.ini) and keep their version
in `zoho_pipeline_alembic_version`, apart from any alembic the provider runs itself.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from zoho_pipeline.source import business
from zoho_pipeline.source.database import MissingProviderTables, make_engine, missing_provider_tables
from zoho_pipeline.source.tables import PIPELINE_TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "zoho_pipeline_alembic_version"
PIPELINE_TABLE_NAMES = tuple(t.name for t in PIPELINE_TABLES)  # one list of our tables: tables.py


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


def revision_of(conn) -> str | None:
    """The revision an open connection's database is at (None: the pipeline was never installed there)."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def current(url: str) -> str | None:
    """The revision the database is at, or None when the pipeline was never installed there."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return revision_of(conn)
    finally:
        engine.dispose()


def is_at_head(url: str) -> bool:
    return current(url) == head()


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
            return revision_of(conn)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base", lock_timeout: str | None = DEFAULT_LOCK_TIMEOUT) -> str | None:
    """Remove the pipeline's additions down to `revision` ("base": everything it added). Business data stays."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if revision_of(conn) is not None:
                command.downgrade(_config(connection=conn, lock_timeout=lock_timeout), revision)
                conn.commit()
        with engine.begin() as conn:
            reached = revision_of(conn)
            if reached is None:  # at base: the version table was ours too
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{VERSION_TABLE}"'))
            return reached
    finally:
        engine.dispose()


# --- a demo database -------------------------------------------------------------------------------------------------------


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
