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
    assert run is not None and run.tags["zoho_sync"] == "1" and run.job_name == "zoho_all_entities_sync_job"


def test_dry_run_prints_what_would_be_sent(env, monkeypatch, capsys, emulator):
    _source(monkeypatch, env, bad_rows=True)
    before = emulator.stats()["requests"]
    sync_cmd.main(["--dry-run", "--entity", "customers"])
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "would_create" in out and "Estimated" in out
    assert emulator.stats()["requests"] == before


def test_dry_run_says_how_many_recurring_invoices_would_be_linked_and_the_real_run_does_that(
    env, monkeypatch, capsys, emulator
):
    _source(monkeypatch, env, bad_rows=True)
    before = emulator.stats()["requests"]
    sync_cmd.main(["--dry-run"])
    out = capsys.readouterr().out
    assert "Recurring invoices (estimate, ZOHO not read):" in out and "would be linked" in out, out
    sync_cmd.main(["--dry-run", "--json"])
    estimate = json.loads(capsys.readouterr().out)["entities"]["invoices"]["before_sync"]
    assert emulator.stats()["requests"] == before  # a dry run reads nothing from ZOHO

    sync_cmd.main(["--json"])
    real = json.loads(capsys.readouterr().out)["entities"]["invoices"]["before_sync"]
    assert estimate["considered"] == real["considered"] > 0
    # a fresh demo's services get their subscriptions in this run, by the subscriptions' own step: the invoices'
    # step of a dry run does not know which (the demo's bad customers' services get none), so their months await
    # them; then they are history (a term already begun) or unmatched (no subscription)
    assert estimate["awaiting_subscription"] == real["history"] + real["unmatched"] - estimate["history"] > 0
    assert (estimate["would_link"], estimate["waiting"]) == (real["linked"], real["waiting"])
    assert estimate["list_pages"] == real["list_pages"]


def test_exit_2_when_the_run_fails(env, monkeypatch, capsys):
    _source(monkeypatch, env, bad_rows=True)
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", "wrong")
    assert sync_cmd.main(["--entity", "customers"]) == 2
    assert "credentials" in capsys.readouterr().err


def test_month_must_be_yyyy_mm():
    with pytest.raises(SystemExit):
        sync_cmd.main(["--month", "March"])


def test_dry_run_diff_prints_each_changed_field_and_the_launchpad_gets_the_same(env, monkeypatch, capsys, emulator):
    import dagster as dg
    import sqlalchemy as sa

    from zoho_pipeline.source import tables as T
    from zoho_pipeline.source.database import make_engine, utcnow

    url = _source(monkeypatch, env, bad_rows=True)
    assert sync_cmd.main(["--entity", "customers"]) == 1  # the demo's invalid email fails
    capsys.readouterr()
    engine = make_engine(url)
    with engine.begin() as conn:
        row = conn.execute(sa.select(T.customers).where(T.customers.c.zoho_sync_status == "synced")).mappings().first()
        conn.execute(
            T.customers.update().where(T.customers.c.id == row["id"]).values(city="Bloemfontein", updated_at=utcnow())
        )
    engine.dispose()
    before = emulator.stats()["requests"]

    with pytest.raises(SystemExit):
        sync_cmd.main(["--diff", "--entity", "customers"])  # --diff only with --dry-run: it never sends
    assert "use it with --dry-run" in capsys.readouterr().err

    code = sync_cmd.main(["--dry-run", "--diff", "--entity", "customers"])
    out = capsys.readouterr().out
    assert emulator.stats()["requests"] == before, "a dry run makes no call"
    assert code in (0, 1), out
    assert "customers: 0 to create, 1 to update (billing_address.city ×1)" in out
    assert f"update customers {row['first_name']} {row['last_name']}" in out
    assert f'billing_address.city: "{row["city"]}" → "Bloemfontein"' in out

    # the Launchpad's dry run: the same diff in the materialization's metadata, and the full diff as files
    instance = dg.DagsterInstance.get()
    [record] = instance.fetch_materializations(dg.AssetKey("zoho_customers"), limit=1).records
    meta = record.asset_materialization.metadata
    assert meta["diff_rows"].value == 1
    [change] = meta["diff"].records
    assert (change.data["field"], change.data["new"]) == ("billing_address.city", '"Bloemfontein"')
    assert "`billing_address.city`" in meta["diff_markdown"].value
    assert json.loads(open(meta["diff_file"].value).read())[0]["entity_id"] == row["id"]
