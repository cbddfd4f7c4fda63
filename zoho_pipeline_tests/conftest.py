"""Shared fixtures: real Postgres databases made and dropped per test, SQLite files, and a live emulator.

Under CI=true a missing Postgres is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("ZOHO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

TEST_CREDENTIALS = dict(
    client_id="1000.TESTCLIENT",
    client_secret="emulator-client-secret-5f1c",
    refresh_token="1000.emulator-refresh-token-9a7e",
    organization_id="10234695",
)


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no Postgres here"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_admin_url():
    problem = _pg_available()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Postgres is required under CI=true and is not reachable at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"Postgres not reachable at {PG_ADMIN_URL}: {problem}")
    return PG_ADMIN_URL


@pytest.fixture
def make_pg_database(pg_admin_url):
    """Factory: a fresh, empty Postgres database URL; every database made is dropped after the test."""
    made: list[str] = []
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")

    def make() -> str:
        name = f"zp_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return sa.engine.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
    from zoho_pipeline.emulator.server import EmulatorConfig, start_emulator

    handle = start_emulator(
        EmulatorConfig(host="127.0.0.1", port=0, rate_limit_per_minute=100_000, daily_limit=10_000_000,
                       max_concurrency=64, seed=7, **TEST_CREDENTIALS)
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def zoho_config(emulator):
    from zoho_pipeline.zoho.config import ZohoConfig

    return ZohoConfig(
        api_base_url=f"{emulator.url}/billing/v1", accounts_url=emulator.url,
        requests_per_minute=100_000, daily_budget=10_000_000, read_timeout_s=5.0, **TEST_CREDENTIALS,
    )


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
