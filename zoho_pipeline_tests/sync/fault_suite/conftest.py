"""The fault suite's harness (issue 6): one `World` per scenario — a fresh demo database on Postgres, cloned from
one template, its emulators with their fault injection, runs repeated until nothing needs work — and the verdict
every scenario ends with: source against ZOHO (the emulator's store), 0 duplicates, 0 lost rows, 0 rows stuck in
`syncing` (support/faults.py's docstring has the exact rules). Each module's scenarios make one summary table,
printed at its end and written to bench-results/<module>.txt (zoho_faults.txt, pipeline_faults.txt).

Size: ZOHO_FAULT_CUSTOMERS (default 100 customers, ~800 rows) for `make test`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from zoho_pipeline.source.database import make_engine
from zoho_pipeline_tests.support import faults as fk

FAST_CUSTOMERS = fk.env_int("ZOHO_FAULT_CUSTOMERS", 100)
DEMO_SEED = 42
RESULTS_DIR = Path(__file__).resolve().parents[3] / "bench-results"


@pytest.fixture(scope="module")
def fault_results(request):
    """Collects one line per scenario; prints the module's table when it is done (and writes it to a file)."""
    results: list[dict] = []
    yield results
    if not results:
        return
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    table = fk.format_table(results)
    try:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{name}.txt").write_text(table + "\n")
    except OSError:
        pass
    sys.__stdout__.write(f"\n\nfault suite summary ({name})\n" + table + "\n")
    sys.__stdout__.flush()


@pytest.fixture(scope="session")
def demo_templates(pg_admin_url):
    made: dict[int, str] = {}

    def get(customers: int) -> str:
        if customers not in made:
            made[customers] = fk.make_demo_template(pg_admin_url, customers, DEMO_SEED)
        return made[customers]

    yield get
    for name in made.values():
        fk.drop_database(pg_admin_url, name)


class World:
    """One scenario: a fresh demo database on Postgres, its emulators, and the result line."""

    def __init__(self, admin_url: str, db_name: str, url: str, results: list, customers: int):
        self.admin_url, self.db_name, self.url, self.results = admin_url, db_name, url, results
        self.customers = customers
        self.engine = make_engine(url)
        self.emulators: list = []
        self.started = time.monotonic()
        self.api_calls_elsewhere = 0

    def emulator(self, **overrides):
        handle = fk.start_emulator(**overrides)
        self.emulators.append(handle)
        return handle

    def clients(self, handle_or_url, **overrides):
        url = handle_or_url if isinstance(handle_or_url, str) else handle_or_url.url
        return lambda: fk.make_client(url, self.engine, **overrides)

    def settle(self, handle, settings=None, *, client=None, **kw) -> list:
        return fk.sync_until_settled(
            self.engine, self.clients(handle, **(client or {})), settings or fk.fast_settings(), **kw
        )

    def api_calls(self) -> int:
        return sum(h.stats()["requests"] for h in self.emulators) + self.api_calls_elsewhere

    def finish(self, scenario: str, store, reports: list, notes: str = "", extra_dup: int = 0) -> fk.Verdict:
        verdict = fk.verify(self.engine, store)
        self.results.append(
            dict(
                scenario=scenario,
                rows=verdict.rows,
                api_calls=self.api_calls(),
                duplicates=verdict.duplicates + verdict.orphans + extra_dup,
                lost=verdict.lost,
                stuck=verdict.stuck,
                seconds=f"{time.monotonic() - self.started:.1f}",
                runs=len(reports),
                adopted=fk.total(reports, "adopted"),
                failed_ok=verdict.failed_ok,
                dead=verdict.dead_lettered,
                notes=notes,
            )
        )
        assert verdict.duplicates == 0, verdict.summary()
        assert verdict.orphans == 0, verdict.summary()
        assert verdict.lost == 0, verdict.summary()
        assert verdict.stuck == 0, verdict.summary()
        assert verdict.synced > 0.9 * (verdict.eligible - verdict.failed_ok), verdict.summary()
        return verdict

    def close(self) -> None:
        for handle in self.emulators:
            try:
                handle.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass
        self.engine.dispose()


@pytest.fixture
def make_world(request):
    """A World of `customers` demo customers, dropped after the test."""

    def make(customers: int) -> World:
        admin = request.getfixturevalue("pg_admin_url")
        template = request.getfixturevalue("demo_templates")(customers)
        name, url = fk.clone_database(admin, template)
        world = World(admin, name, url, request.getfixturevalue("fault_results"), customers)
        request.addfinalizer(lambda: (world.close(), fk.drop_database(admin, name)))
        return world

    return make


@pytest.fixture
def world(make_world):
    return make_world(FAST_CUSTOMERS)
