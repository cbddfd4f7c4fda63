"""Shared fixtures: real Postgres databases made and dropped per test, SQLite files, and a live emulator.

The helpers behind them live in `zoho_pipeline_tests.support` (the benchmarks use them too).
Under CI=true a missing Postgres is a failure, never a skip.
"""

from __future__ import annotations

import os

import pytest

from zoho_pipeline_tests.support import databases
from zoho_pipeline_tests.support.emulator import TEST_CREDENTIALS, start_emulator
from zoho_pipeline_tests.support.emulator import zoho_config as emulator_config

PG_ADMIN_URL = databases.PG_ADMIN_URL
pytest_plugins = ["zoho_pipeline_tests.support.alert_targets"]  # smtp_server, webhook_server, env
__all__ = ["PG_ADMIN_URL", "TEST_CREDENTIALS"]


@pytest.fixture(scope="session")
def pg_admin_url():
    problem = databases.pg_available(PG_ADMIN_URL)
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Postgres is required under CI=true and is not reachable at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"Postgres not reachable at {PG_ADMIN_URL}: {problem}")
    return PG_ADMIN_URL


@pytest.fixture
def make_pg_database(pg_admin_url):
    """Factory: a fresh, empty Postgres database URL; every database made is dropped after the test."""
    made: list[str] = []

    def make() -> str:
        name, url = databases.create_database(pg_admin_url)
        made.append(name)
        return url

    yield make
    for name in made:
        databases.drop_database(pg_admin_url, name)


@pytest.fixture
def pg_url(make_pg_database):
    return make_pg_database()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    """An empty source database URL, once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def emulator():
    """A live emulator on a free port, with the test credentials and no limits or faults."""
    handle = start_emulator()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def zoho_config(emulator):
    return emulator_config(emulator.url)


@pytest.fixture(autouse=True)
def _no_rate_limiter_from_another_test():
    """Every test meets a fresh process-wide limiter: the registry's limiter per organization keeps its window, its
    429 pause and its first pace/usage stores (another test's database), and a CLI test lowers its pace to the
    env's 90/min. Left over, a later test's few calls waited out a minute's window (test_recurring's reconcile
    --ledger took 50 s in the full suite, 0.5 s alone)."""
    from zoho_pipeline.zoho.limiter import RateLimiter

    RateLimiter.reset_registry()
    yield
    RateLimiter.reset_registry()


@pytest.fixture
def fresh_zoho_process_state():
    """No process-wide rate limiter or cached access token left over from another test."""
    from zoho_pipeline.zoho.auth import MemoryTokenStore
    from zoho_pipeline.zoho.limiter import RateLimiter

    RateLimiter.reset_registry()
    MemoryTokenStore.clear()
    yield
    RateLimiter.reset_registry()
    MemoryTokenStore.clear()
