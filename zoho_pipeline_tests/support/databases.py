"""Scratch databases for tests and benchmarks: a fresh Postgres database per use (dropped after), SQLite files.

The admin URL is ZOHO_TEST_PG_URL (default: the local trust-auth Postgres, database `test`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("ZOHO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def admin_engine(admin_url: str = PG_ADMIN_URL) -> sa.Engine:
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")


def database_url(admin_url: str, name: str) -> str:
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def pg_available(admin_url: str = PG_ADMIN_URL) -> str | None:
    """None when Postgres answers at `admin_url`, else why not."""
    try:
        engine = admin_engine(admin_url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no Postgres here"
        return str(exc).splitlines()[0]


def create_database(admin_url: str = PG_ADMIN_URL, prefix: str = "zp_test") -> tuple[str, str]:
    """(name, URL) of a new empty Postgres database."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = admin_engine(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return name, database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    admin = admin_engine(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def pg_database(admin_url: str = PG_ADMIN_URL, prefix: str = "zp_test", keep: bool = False):
    """A fresh Postgres database URL; dropped afterwards unless `keep`."""
    name, url = create_database(admin_url, prefix)
    try:
        yield url
    finally:
        if not keep:
            drop_database(admin_url, name)


@contextmanager
def sqlite_database(workdir: str | None = None):
    """A SQLite file URL in a new temporary directory, removed afterwards (with its WAL files)."""
    directory = tempfile.mkdtemp(prefix="zp-", dir=workdir)
    path = os.path.join(directory, "source.db")
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        os.rmdir(directory)
