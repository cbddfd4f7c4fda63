"""Dagster in tests: an instance on either storage the project supports (SQLite, instance_for_test's default, or
Dagster's Postgres storage in a fresh database from conftest's make_pg_database), the resources pointed at a source
database and the emulator, a seeded demo source, and `materialize` keeping its instance alive."""

from __future__ import annotations

import contextlib

import dagster as dg

from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline_tests.support.emulator import TEST_CREDENTIALS

BACKENDS = ["sqlite", "postgres"]
DEMO_CUSTOMERS = 25


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


def make_resources(url: str, zoho_config, **zoho_overrides) -> dict:
    zoho = dict(
        api_base_url=zoho_config.api_base_url,
        accounts_url=zoho_config.accounts_url,
        requests_per_minute=zoho_config.requests_per_minute,
        daily_budget=zoho_config.daily_budget,
        read_timeout_s=zoho_config.read_timeout_s,
        max_workers=4,
        backoff_base_s=0.01,
        **TEST_CREDENTIALS,
    )
    zoho.update(zoho_overrides)
    return {"source": SourceDatabaseResource(url=url), "zoho": ZohoBillingResource(**zoho)}


def demo_db(url: str, customers: int = DEMO_CUSTOMERS) -> str:
    from zoho_pipeline.source.migrate import create_demo

    create_demo(url, customers=customers, seed=11)
    return url


def materialize(assets, resources, instance=None, checks=(), **kw):
    instance = instance or dg.DagsterInstance.ephemeral()
    result = dg.materialize([*assets, *checks], resources=resources, instance=instance, raise_on_error=False, **kw)
    result.keep_instance = instance  # the result holds its instance weakly
    return result
