"""Shared plumbing for the benchmarks: an emulator in its own process, clients, fast customer data, databases.

The emulator always runs as a separate process (`python -m zoho_pipeline.emulator`): its store and its request
threads then neither share the GIL with the engine under test nor count in the engine's RSS. Its admin endpoints
(`/__emulator__/stats|reset|faults`) give the server-side view (requests, 429s) of every run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager

import requests
import sqlalchemy as sa

from zoho_pipeline.source import business
from zoho_pipeline.source.admin import make_engine, upgrade
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.limiter import RateLimiter

CREDS = dict(client_id="1000.BENCH", client_secret="bench-secret", refresh_token="1000.bench-refresh",
             organization_id="10234695")
PG_ADMIN_URL = os.environ.get("ZOHO_BENCH_PG_URL",
                              os.environ.get("ZOHO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"))
UNLIMITED = dict(rate_limit_per_minute=10_000_000, daily_limit=100_000_000, max_concurrency=64, lockout_seconds=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatorProc:
    """`python -m zoho_pipeline.emulator` on a free port; stats/reset/faults over its admin API."""

    def __init__(self, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "zoho_pipeline.emulator", "--port", str(self.port)]
        for key, value in {**CREDS, **settings}.items():
            if value is None:
                continue
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/__emulator__/health", timeout=1).ok:
                    return
            except requests.RequestException:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"emulator exited: {self.proc.stderr.read()[-2000:]}")
                time.sleep(0.05)
        raise RuntimeError("emulator did not start within 20 s")

    def stats(self) -> dict:
        return requests.get(self.url + "/__emulator__/stats", timeout=30).json()

    def reset(self) -> None:
        requests.post(self.url + "/__emulator__/reset", timeout=60).raise_for_status()

    def set_faults(self, **changes) -> dict:
        r = requests.put(self.url + "/__emulator__/faults", json=changes, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def api_requests(stats: dict) -> int:
    """Requests to /billing/v1 (the OAuth token endpoint left out)."""
    return sum(n for route, n in stats.get("by_route", {}).items() if "/oauth/" not in route)


def zoho_config(emulator_url: str, requests_per_minute: int = 10_000_000, daily_budget: int = 100_000_000,
                **kw) -> ZohoConfig:
    return ZohoConfig(api_base_url=emulator_url + "/billing/v1", accounts_url=emulator_url,
                      requests_per_minute=requests_per_minute, daily_budget=daily_budget, **CREDS, **kw)


def make_client(engine, emulator_url: str, *, session: requests.Session | None = None, **config_kw) -> ZohoClient:
    """The production wiring (DB token cache and usage store), with a fresh process-wide limiter."""
    RateLimiter.reset_registry()
    return ZohoClient(zoho_config(emulator_url, **config_kw), token_store=DbTokenStore(engine),
                      usage_store=DbUsageStore(engine), session=session)


# --- databases -----------------------------------------------------------------------------------------------


def pg_available() -> str | None:
    """None when the benchmark Postgres answers, else why not."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0]


@contextmanager
def pg_database(keep: bool = False):
    """A fresh Postgres database `zp_bench_<hex>`; dropped afterwards unless `keep`."""
    name = f"zp_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(workdir: str | None = None):
    directory = tempfile.mkdtemp(prefix="zp-bench-", dir=workdir)
    path = os.path.join(directory, "source.db")
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        os.rmdir(directory)


@contextmanager
def source_database(kind: str, keep: bool = False):
    if kind == "postgres":
        with pg_database(keep) as url:
            yield url
    else:
        with sqlite_database() as url:
            yield url


def customer_rows(n: int, start: int = 0):
    """`n` valid, distinct customers (no services, invoices or payments): one create each."""
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(start, start + n):
        ts = base + dt.timedelta(seconds=i)
        yield dict(id=str(uuid.UUID(int=(0x5EED << 96) + i, version=4)), email=f"customer{i}@bench.example.co.za",
                   first_name="Thandi", last_name=f"Nkosi {i}", phone=f"+2782{i % 10_000_000:07d}",
                   account_type="personal", company_name=None, vat_number=None,
                   address_line1=f"{i % 250 + 1} Jan Smuts Avenue", address_line2=None, suburb="Sandton",
                   city="Johannesburg", province="Gauteng", postal_code="2196", country="ZA", status="active",
                   created_at=ts, updated_at=ts)


def customers_database(url: str, n: int, chunk: int = 5000) -> None:
    """Business tables + migrations, then `n` new customers (batched executemany)."""
    engine = make_engine(url)
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
    upgrade(url)


def vm_hwm_kb() -> int:
    """Peak resident set of this process (VmHWM), in kB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def vm_rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)


# --- results -------------------------------------------------------------------------------------------------


def metric(section: str, name: str, value, unit: str = "", target: float | None = None, op: str | None = None,
           note: str = "") -> dict:
    """One line of the printed table. `op` compares value with target: '<=', '>=' or '=='."""
    ok = None
    if target is not None and op and value is not None:
        ok = {"<=": value <= target + 1e-12, ">=": value >= target - 1e-12, "==": abs(value - target) < 1e-9}[op]
    return dict(section=section, metric=name, value=value, unit=unit, target=target, op=op, ok=ok, note=note)
