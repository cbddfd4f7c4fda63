"""A Dagster instance on either storage the project supports: SQLite (instance_for_test's default) or Dagster's
Postgres storage (dagster-postgres) in a fresh database from conftest's make_pg_database."""

from __future__ import annotations

import contextlib

import dagster as dg

BACKENDS = ["sqlite", "postgres"]


@contextlib.contextmanager
def dagster_instance(backend: str, request):
    """instance_for_test on `backend`; for postgres the storage lives in its own new database (dropped after)."""
    overrides = None
    if backend == "postgres":
        url = request.getfixturevalue("make_pg_database")()  # postgresql+psycopg2://, read with SQLAlchemy
        overrides = {"storage": {"postgres": {"postgres_url": url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        if backend == "postgres":
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        yield instance


def source_url(backend: str, request) -> str:
    """The source database on the same backend: SQLite file or a fresh Postgres database."""
    return request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
