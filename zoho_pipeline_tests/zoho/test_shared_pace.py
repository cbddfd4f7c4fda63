"""Issue 12 item 3: one pace per ZOHO organization across processes. The window and the 429 pause are shared
through the source database (Postgres and SQLite), so two or three processes together never exceed the pace, ZOHO
never answers 429, and a 429 one process meets holds back the others too. The emulator runs at ZOHO's limit
(`--rate-limit-per-minute 100 --lockout-seconds 60`); the processes pace at the default, 90/min."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from zoho_pipeline.sync.stores import DbPaceStore, zoho_client
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.errors import RATE_LIMITED, ZohoError
from zoho_pipeline.zoho.limiter import RateLimiter
from zoho_pipeline_tests.support.emulator import start_emulator
from zoho_pipeline_tests.support.emulator import zoho_config as emulator_config
from zoho_pipeline_tests.support.rows import make_source

PACE = ZohoConfig.__dataclass_fields__["requests_per_minute"].default
ZOHO_LIMIT = 100


@pytest.fixture
def source_url(db_url):
    make_source(db_url).dispose()
    return db_url


@pytest.fixture
def zoho_at_its_limit():
    handle = start_emulator(rate_limit_per_minute=ZOHO_LIMIT, lockout_seconds=60)
    try:
        yield handle
    finally:
        handle.stop()


def _api_statuses(emulator) -> dict:
    stats = emulator.stats()
    return {s: n for s, n in stats["by_status"].items()}, sum(
        n for route, n in stats["by_route"].items() if "/oauth/" not in route
    )


def test_the_default_pace_is_a_margin_below_zohos_limit():
    assert PACE < ZOHO_LIMIT and PACE == 90


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_sharing_an_organization_stay_under_its_limit_together(processes, source_url, zoho_at_its_limit):
    """Each process alone would send 60 calls at once (its own window allows 90): together 120-180 in one
    minute, a lockout on today's main. Shared, the organization gets exactly the pace and not one 429."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zoho_pipeline_tests.support.pace_child",
                source_url,
                zoho_at_its_limit.url,
                str(PACE),
                "60",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    by_status, api_requests = _api_statuses(zoho_at_its_limit)
    assert "429" not in by_status, by_status
    assert sum(r["rate_limited"] for r in results) == 0
    # all of it inside one 60 s window: the combined rate is the pace, never more
    assert api_requests == sum(r["calls"] for r in results) == PACE
    assert all("shared window is full" in (r["held_back"] or "") for r in results if r["calls"] < 60)


def test_a_429_pause_holds_back_every_process(source_url, zoho_at_its_limit):
    """One process meets a 429 (here: told to pause 30 s); another process's next call does not go out, and says
    why, instead of walking into the lockout."""
    engine = make_source(source_url)
    RateLimiter.reset_registry()
    first = RateLimiter(PACE, None, None, "org-1", pace_store=DbPaceStore(engine))
    second = RateLimiter(PACE, None, None, "org-1", pace_store=DbPaceStore(engine))  # as another process
    first.acquire()
    first.pause_for(30)
    with pytest.raises(ZohoError) as exc:
        second.acquire(max_wait_s=2)
    assert exc.value.kind == RATE_LIMITED and "paused after a 429" in str(exc.value)
    assert 28 < second.shared_pause_s() <= 30
    engine.dispose()


def test_the_fast_path_costs_a_transaction_per_lease_not_per_call(source_url):
    """A lone process leases slots in growing batches: 90 calls, far fewer than 90 store transactions."""
    engine = make_source(source_url)
    store = DbPaceStore(engine)
    leases = []
    real = store.lease

    def counting(*a, **kw):
        leases.append(1)
        return real(*a, **kw)

    store.lease = counting
    limiter = RateLimiter(PACE, None, None, "org-2", pace_store=store)
    for _ in range(PACE):
        limiter.acquire()
    assert len(leases) <= 16, len(leases)
    engine.dispose()


def test_health_beside_a_lockout_says_so_instead_of_waiting_it_out(source_url, zoho_at_its_limit, monkeypatch):
    from zoho_pipeline.monitor import health
    from zoho_pipeline.monitor.health_report import HealthReport
    from zoho_pipeline.monitor.thresholds import Thresholds

    engine = make_source(source_url)
    RateLimiter.reset_registry()
    config = emulator_config(zoho_at_its_limit.url, requests_per_minute=PACE)
    # another process met a lockout a moment ago: the organization is paused for 60 s
    DbPaceStore(engine).pause(config.organization_id, 60)
    RateLimiter.reset_registry()
    report = HealthReport()
    started = time.monotonic()
    with zoho_client(config, engine) as client:
        health.check_api(report, engine, True, Thresholds(), client=client)
    elapsed = time.monotonic() - started
    check = next(c for c in report.checks if c.name == "connectivity")
    assert elapsed < 15, "health waited out the lockout"
    assert check.status == health.WARN and "paused after a 429" in check.message
    assert zoho_at_its_limit.stats()["by_status"].get("429", 0) == 0
    engine.dispose()
    RateLimiter.reset_registry()


def test_a_sync_summary_reports_the_429s_it_met():
    from zoho_pipeline.cli.sync_summary import format_summary
    from zoho_pipeline.sync.report import RunReport

    report = RunReport(run_id="r1")
    report.entity("customers").rate_limited = 3
    assert "429 (rate limited) 3 time(s)" in format_summary(report)


def test_with_the_store_down_a_process_paces_alone_and_says_so_once(caplog):
    class DownStore:
        def lease(self, *a, **kw):
            raise OSError("source database unreachable")

        def release(self, *a, **kw):
            raise OSError("source database unreachable")

        def pause(self, *a, **kw):
            raise OSError("source database unreachable")

        def paused_for(self, *a, **kw):
            raise OSError("source database unreachable")

    limiter = RateLimiter(5, None, None, "org-down", pace_store=DownStore(), window_s=60.0)
    for _ in range(5):
        limiter.acquire()
    assert limiter.in_window() == 5  # the local window counts: a sixth call would wait for it
    with pytest.raises(ZohoError):
        limiter.pause_for(30) or limiter.acquire(max_wait_s=1)
    assert sum("shared pace unavailable" in r.message for r in caplog.records) == 1
