"""`zoho-pipeline demo month | figures` in-process: a month played and ZOHO's clock moved, the finance figures after a
sync, and a clear error (exit 2) when no emulator answers."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from zoho_pipeline.cli import demo as demo_cmd
from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline_tests.support.emulator import free_port, pipeline_env


@pytest.fixture
def early_emulator():
    """An emulator whose clock starts on the demo's day (the shared fixture's starts at the wall clock)."""
    from zoho_pipeline_tests.support.emulator import start_emulator

    handle = start_emulator(start_time="2026-02-10T06:00:00Z")
    yield handle
    handle.stop()


def _env(monkeypatch, url: str, emulator_url: str) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for key, value in pipeline_env(url, emulator_url, ZOHO_DAILY_BUDGET="10000000").items():
        monkeypatch.setenv(key, value)


def test_month_with_sync_prints_the_month_and_the_figures(sqlite_url, early_emulator, monkeypatch, capsys):
    create_demo(sqlite_url, customers=15, seed=8, today=dt.date(2026, 2, 10))
    _env(monkeypatch, sqlite_url, early_emulator.url)
    assert demo_cmd.main(["month", "--sync"]) in (0, 1)  # 1: the demo's deliberately bad rows fail
    out = capsys.readouterr().out
    assert "Played March 2026 in the source" in out and "ZOHO's clock is now 2026-03-01 06:00 UTC" in out
    assert early_emulator.clock() == "2026-03-01T06:00:00Z"
    assert "Finance figures" in out and "Payments in ZOHO:" in out
    assert "Customers whose ZOHO balance differs from the source: " in out and "not computed" not in out
    assert "Payments on recurring invoices left as credit while ZOHO holds the invoice: 0" in out
    assert demo_cmd.main(["figures", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["payments"] > 0 and float(figures["applied"]) > 0
    assert isinstance(figures["balance_differences"], int) and figures["recurring_left_as_credit"] == 0


def test_month_without_an_emulator_says_so(sqlite_url, monkeypatch, capsys):
    create_demo(sqlite_url, customers=5, seed=8, today=dt.date(2026, 2, 10))
    _env(monkeypatch, sqlite_url, f"http://127.0.0.1:{free_port()}")
    assert demo_cmd.main(["month"]) == 2
    assert "the ZOHO emulator is not reachable" in capsys.readouterr().err
