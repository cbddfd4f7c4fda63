"""`zoho-pipeline sync`: a real in-process Dagster run against the emulator, its summary and its exit codes."""

from __future__ import annotations

import json

import pytest

from zoho_pipeline.cli import sync as sync_cmd
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS


@pytest.fixture
def env(monkeypatch, tmp_path, emulator, zoho_config):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("ZOHO_CLIENT_ID", TEST_CREDENTIALS["client_id"])
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", TEST_CREDENTIALS["client_secret"])
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", TEST_CREDENTIALS["refresh_token"])
    monkeypatch.setenv("ZOHO_ORGANIZATION_ID", TEST_CREDENTIALS["organization_id"])
    monkeypatch.setenv("ZOHO_API_BASE_URL", zoho_config.api_base_url)
    monkeypatch.setenv("ZOHO_ACCOUNTS_URL", zoho_config.accounts_url)
    monkeypatch.setenv("ZOHO_RATE_LIMIT_PER_MINUTE", "100000")
    monkeypatch.setenv("ZOHO_DAILY_BUDGET", "10000000")
    monkeypatch.setenv("ZOHO_SYNC_BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("ZOHO_SYNC_IN_RUN_RETRY_WINDOW_S", "0")
    return tmp_path


def _source(monkeypatch, tmp_path, bad_rows: bool = True):
    from zoho_pipeline.source.migrate import create_demo

    url = f"sqlite:///{tmp_path / 'source.db'}"
    create_demo(url, customers=20, seed=5)
    monkeypatch.setenv("SOURCE_DATABASE_URL", url)
    return url


def test_exit_1_lists_failed_rows_then_exit_0_when_nothing_fails(env, monkeypatch, capsys):
    _source(monkeypatch, env, bad_rows=True)
    code = sync_cmd.main([])
    out = capsys.readouterr().out
    assert code == 1, out
    for header in ("entity", "due", "created", "updated", "unchanged", "failed", "api_calls", "backlog"):
        assert header in out
    assert "Failed rows" in out and "is not a valid email address" in out
    assert "customers" in out and "payments" in out

    # Only plans: the demo's bad rows are elsewhere, and the plans are synced already: exit 0, nothing created.
    code = sync_cmd.main(["--entity", "plans"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Failed rows" not in out


def test_json_report_and_dagster_history(env, monkeypatch, capsys):
    import dagster as dg

    _source(monkeypatch, env, bad_rows=True)
    code = sync_cmd.main(["--entity", "customers", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == data["exit_code"] == 1
    assert data["entities"]["customers"]["created"] >= 19
    assert data["entities"]["customers"]["failed"] == 1
    instance = dg.DagsterInstance.get()
    run = instance.get_run_by_id(data["dagster_run_id"])
    assert run is not None and run.tags["zoho_sync"] == "1" and run.job_name == "zoho_full_sync_job"


def test_dry_run_prints_what_would_be_sent(env, monkeypatch, capsys, emulator):
    _source(monkeypatch, env, bad_rows=True)
    before = emulator.stats()["requests"]
    sync_cmd.main(["--dry-run", "--entity", "customers"])
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "would_create" in out and "Estimated" in out
    assert emulator.stats()["requests"] == before


def test_exit_2_when_the_run_fails(env, monkeypatch, capsys):
    _source(monkeypatch, env, bad_rows=True)
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", "wrong")
    assert sync_cmd.main(["--entity", "customers"]) == 2
    assert "credentials" in capsys.readouterr().err


def test_month_must_be_yyyy_mm():
    with pytest.raises(SystemExit):
        sync_cmd.main(["--month", "March"])
