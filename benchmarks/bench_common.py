"""Shared plumbing for the benchmarks, over the test suite's support package (zoho_pipeline_tests.support): an
emulator in its own process, clients, fast customer data, databases.

The emulator always runs as a separate process (`python -m zoho_pipeline.emulator`): its store and its request
threads then neither share the GIL with the engine under test nor count in the engine's RSS. Its admin endpoints
(`/__emulator__/stats|reset|faults`) give the server-side view (requests, 429s) of every run.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from zoho_pipeline_tests.support import databases
from zoho_pipeline_tests.support import emulator as emu
from zoho_pipeline_tests.support.databases import pg_database as _pg_database
from zoho_pipeline_tests.support.databases import sqlite_database  # noqa: F401 - the sections' names
from zoho_pipeline_tests.support.emulator import UNLIMITED, EmulatorProc  # noqa: F401
from zoho_pipeline_tests.support.rows import customer_rows, customers_database  # noqa: F401

PG_ADMIN_URL = os.environ.get("ZOHO_BENCH_PG_URL", databases.PG_ADMIN_URL)
UNPACED = dict(requests_per_minute=10_000_000, daily_budget=100_000_000, read_timeout_s=30.0)


def api_requests(stats: dict) -> int:
    """Requests to /billing/v1 (the OAuth token endpoint left out)."""
    return sum(n for route, n in stats.get("by_route", {}).items() if "/oauth/" not in route)


def make_client(engine, emulator_url: str, *, session=None, **config_kw):
    """The production wiring (DB token cache and usage store), with a fresh process-wide limiter; unpaced."""
    return emu.make_client(engine, emulator_url, session=session, **{**UNPACED, **config_kw})


def pg_available() -> str | None:
    return databases.pg_available(PG_ADMIN_URL)


def pg_database(keep: bool = False):
    """A fresh Postgres database `zp_bench_<hex>`; dropped afterwards unless `keep`."""
    return _pg_database(PG_ADMIN_URL, prefix="zp_bench", keep=keep)


@contextmanager
def source_database(kind: str, keep: bool = False):
    if kind == "postgres":
        with pg_database(keep) as url:
            yield url
    else:
        with sqlite_database() as url:
            yield url


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


def metric(
    section: str, name: str, value, unit: str = "", target: float | None = None, op: str | None = None, note: str = ""
) -> dict:
    """One line of the printed table. `op` compares value with target: '<=', '>=' or '=='."""
    ok = None
    if target is not None and op and value is not None:
        ok = {"<=": value <= target + 1e-12, ">=": value >= target - 1e-12, "==": abs(value - target) < 1e-9}[op]
    return dict(section=section, metric=name, value=value, unit=unit, target=target, op=op, ok=ok, note=note)
