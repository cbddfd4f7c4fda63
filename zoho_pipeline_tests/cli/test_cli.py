"""The operator commands end to end: status, logs, retry, health — exit codes and what a person reads."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import timedelta

import pytest

from zoho_pipeline.cli import health as health_cmd
from zoho_pipeline.cli import logs as logs_cmd
from zoho_pipeline.cli import main as cli
from zoho_pipeline.cli import retry as retry_cmd
from zoho_pipeline.cli import status as status_cmd
from zoho_pipeline.monitor import health
from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS
from zoho_pipeline_tests.support.rows import (
    add_customer,
    add_log,
    add_package,
    add_run,
    make_source,
    now,
    row,
    scenario,
    set_usage,
)

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ZOHO_VARS = (
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN",
    "ZOHO_ORGANIZATION_ID",
    "ZOHO_API_BASE_URL",
    "ZOHO_ACCOUNTS_URL",
    "ENABLE_ZOHO_SYNC",
)


@pytest.fixture
def clean_env(monkeypatch):
    for k in ZOHO_VARS + ("SOURCE_DATABASE_URL",):
        monkeypatch.delenv(k, raising=False)
    for k in list(__import__("os").environ):
        if k.startswith(("ALERT_", "ZOHO_HEALTH_")):
            monkeypatch.delenv(k)
    return monkeypatch


@pytest.fixture
def world(db_url, clean_env):
    engine = make_source(db_url)
    ids = scenario(engine)
    clean_env.setenv("SOURCE_DATABASE_URL", db_url)
    yield engine, ids
    engine.dispose()


def _emulator_env(monkeypatch, emulator):
    env = {
        "ZOHO_CLIENT_ID": TEST_CREDENTIALS["client_id"],
        "ZOHO_CLIENT_SECRET": TEST_CREDENTIALS["client_secret"],
        "ZOHO_REFRESH_TOKEN": TEST_CREDENTIALS["refresh_token"],
        "ZOHO_ORGANIZATION_ID": TEST_CREDENTIALS["organization_id"],
        "ZOHO_API_BASE_URL": f"{emulator.url}/billing/v1",
        "ZOHO_ACCOUNTS_URL": emulator.url,
        "ZOHO_RATE_LIMIT_PER_MINUTE": "100000",
        "ZOHO_DAILY_BUDGET": "1000000",
        "ZOHO_SYNC_BACKOFF_BASE_S": "0.01",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)


# --- status -----------------------------------------------------------------------------------------------------


def test_status_text_and_json(world, capsys):
    engine, ids = world
    set_usage(engine, "10234695", 250)
    assert status_cmd.main([]) == 0
    out = capsys.readouterr().out
    assert "customers" in out and "TOTAL" in out
    assert "Pieter van Wyk <pieter@example.co.za>" in out and "INV-2025-000123" in out
    assert "Success rate (24 h): 25.0% of 4 attempts" in out
    # due by the engine's rule: sipho, aisha (dead run's claim), the pending service and the pending payment;
    # not lerato nor the invoice (failed permanently, unchanged since), naledi (next attempt in an hour), pieter
    assert "Backlog: 4 row(s) due" in out and "assumption" in out
    assert status_cmd.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["entities"]["customers"]["dead_lettered"] == 1 and data["totals"]["due"] == 4
    assert data["backlog"]["estimated_calls"] == 4
    assert data["success_rate_24h"]["rate"] == 0.25
    assert data["api"]["calls_today"] == 0  # ZOHO_ORGANIZATION_ID not set
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOHO_ORGANIZATION_ID", "10234695")
        mp.setenv("ZOHO_DAILY_BUDGET", "1000")
        assert status_cmd.main(["--json", "--entity", "invoice"]) == 0
        data = json.loads(capsys.readouterr().out)
    assert list(data["entities"]) == ["invoices"]
    assert data["api"] == {
        "organization_id": "10234695",
        "calls_today": 250,
        "daily_budget": 1000,
        "budget_used": 0.25,
        "rate_limit_per_minute": 90,  # the default: a margin below ZOHO's 100/min
    }


def test_status_estimate_spills_over_budget():
    e = status_cmd.estimate(5000, 1.0, 100, 1000, 900)
    assert e["days_over_budget"] == 5 and e["remaining_budget_today"] == 100
    assert e["eta_s"] > 4 * 86400
    # paced like the limiter: a window's allowance at once, then one window (61 s) per further allowance
    assert status_cmd.estimate(60, 2.0, 120, 10_000, 0)["eta_s"] == 0.0
    assert status_cmd.estimate(121, 1.0, 120, 10_000, 0)["eta_s"] == 61.0


def test_status_usage_errors(clean_env, capsys):
    assert status_cmd.main([]) == 2
    assert "SOURCE_DATABASE_URL" in capsys.readouterr().err
    assert cli.main(["status", "--entity", "widgets", "--database-url", "sqlite://"]) == 2


# --- logs -------------------------------------------------------------------------------------------------------


def test_logs_name_rows_never_only_uuids(world, capsys):
    engine, ids = world
    assert logs_cmd.main([]) == 0
    out = capsys.readouterr().out
    assert "Thandi Nkosi <thandi@example.co.za>" in out and "INV-2025-000123" in out
    assert not UUID_RE.search(out)
    assert logs_cmd.main(["--status", "failed", "--entity", "customers", "--json"]) == 0
    lines = json.loads(capsys.readouterr().out)
    assert {x["label"] for x in lines} == {
        "Lerato Mokoena <lerato@example.co.za>",
        "Pieter van Wyk <pieter@example.co.za>",
    }
    assert logs_cmd.main(["--since", "2h", "--limit", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert logs_cmd.main(["--since", "2h", "--limit", "2", "--offset", "2"]) == 0
    assert "next page" not in capsys.readouterr().out  # only 4 lines in 2 h: the second page is the last
    assert logs_cmd.main(["--entity", "customers", "--row", "naledi@example.co.za", "--json"]) == 0
    assert [x["outcome"] for x in json.loads(capsys.readouterr().out)] == ["retrying"]
    assert logs_cmd.main(["--entity", "payments"]) == 0
    assert "no log lines match" in capsys.readouterr().out


def test_logs_usage_errors(world):
    with pytest.raises(SystemExit) as exc:
        logs_cmd.main(["--since", "yesterday"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        logs_cmd.main(["--row", "x"])


# --- retry ------------------------------------------------------------------------------------------------------


def test_retry_no_sync_requeues(world, capsys):
    engine, ids = world
    assert retry_cmd.main(["--failed", "--no-sync"]) == 0
    out = capsys.readouterr().out
    assert "requeued 4 row(s)" in out and "Pieter van Wyk <pieter@example.co.za>" in out
    assert row(engine, T.customers, ids["pieter"])["zoho_dead_lettered"] is False
    assert retry_cmd.main(["--failed", "--no-sync"]) == 0
    assert "nothing to requeue" in capsys.readouterr().out
    # by what a person knows: invoice number; an unknown one is an error
    with engine.begin() as conn:
        conn.execute(T.customer_invoices.update().values(zoho_sync_status="failed"))
    assert retry_cmd.main(["invoices", "INV-2025-000123", "INV-9999", "--no-sync"]) == 1
    captured = capsys.readouterr()
    assert "not found in invoices: INV-9999" in captured.err and "INV-2025-000123" in captured.out
    assert row(engine, T.customer_invoices, ids["inv"])["zoho_sync_status"] == "pending"


def test_retry_usage(world):
    for argv in ([], ["customers"], ["customers", "x", "--failed"], ["widgets", "x"]):
        with pytest.raises(SystemExit) as exc:
            retry_cmd.main(argv)
        assert exc.value.code == 2


def test_retry_refuses_to_sync_without_credentials_or_when_disabled(world, capsys, monkeypatch):
    assert retry_cmd.main(["--failed"]) == 2
    assert "credentials are missing" in capsys.readouterr().err
    monkeypatch.setenv("ENABLE_ZOHO_SYNC", "false")
    engine, ids = world
    Q_requeue_again = retry_cmd.main(["customers", ids["lerato"]])
    assert Q_requeue_again == 2 and "ENABLE_ZOHO_SYNC is false" in capsys.readouterr().err


def test_retry_syncs_now_through_the_engine(sqlite_url, clean_env, emulator, capsys):
    engine = make_source(sqlite_url)
    clean_env.setenv("SOURCE_DATABASE_URL", sqlite_url)
    _emulator_env(clean_env, emulator)
    good = add_customer(
        engine,
        "Thandi",
        "Nkosi",
        email="thandi@example.co.za",
        zoho_sync_status="failed",
        zoho_dead_lettered=True,
        zoho_attempts=5,
        zoho_error_code="retryable:503",
        zoho_last_sync_error="Service Unavailable",
    )
    bad = add_customer(
        engine,
        "Broken",
        "Email",
        email="broken.at.example.co.za",
        zoho_sync_status="failed",
        zoho_error_code="invalid",
        zoho_last_sync_error="email: not valid",
    )
    other = add_customer(engine, "Left", "Alone", email="left@example.co.za")  # pending, not asked for
    assert retry_cmd.main(["customers", "thandi@example.co.za"]) == 0
    out = capsys.readouterr().out
    assert "requeued 1 row(s)" in out and "Thandi Nkosi <thandi@example.co.za>" in out
    r = row(engine, T.customers, good)
    assert r["zoho_sync_status"] == "synced" and r["zoho_billing_customer_id"]
    assert row(engine, T.customers, other)["zoho_sync_status"] is None  # only the asked-for rows synced
    assert retry_cmd.main(["--failed", "--entity", "customers"]) == 1  # the invalid row fails again
    out = capsys.readouterr().out
    assert "Still failing" in out and "Broken Email <broken.at.example.co.za>" in out
    assert row(engine, T.customers, bad)["zoho_sync_status"] == "failed"


# --- health -----------------------------------------------------------------------------------------------------


def _healthy_db(url):
    engine = make_source(url)
    add_package(engine, zoho_sync_status="synced", zoho_plan_code="fibre-100")
    cid = add_customer(engine, zoho_sync_status="synced", zoho_billing_customer_id="Z1")
    add_run(
        engine,
        "r-ok",
        status="succeeded",
        started=now() - timedelta(minutes=5),
        heartbeat=now(),
        finished=now() - timedelta(minutes=4),
    )
    add_log(engine, "customers", cid, "synced")
    return engine


def test_health_healthy_and_unhealthy(db_url, clean_env, capsys):
    engine = _healthy_db(db_url)
    clean_env.setenv("SOURCE_DATABASE_URL", db_url)
    assert health_cmd.main(["--no-api"]) == 0
    out = capsys.readouterr().out
    assert "HEALTHY" in out and "✓ Database: ok" in out and "API connectivity" in out
    assert health_cmd.main(["--no-api", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["healthy"] and set(data["categories"]) == {"database", "activity", "api", "integrity"}
    assert data["categories"]["api"] == "skip"
    # a dead-lettered row makes it unhealthy, and says which
    add_customer(
        engine,
        "Pieter",
        "van Wyk",
        email="p@example.co.za",
        zoho_sync_status="failed",
        zoho_dead_lettered=True,
        at=now() - timedelta(minutes=1),
    )
    assert health_cmd.main(["--no-api", "--detailed"]) == 1
    out = capsys.readouterr().out
    assert "UNHEALTHY" in out and "dead_lettered" in out and "retry --failed" in out
    engine.dispose()


def test_health_scenario_failures_by_category(world):
    engine, _ = world
    report = health.run_health(engine, check_api_connectivity=False)
    failing = {(c.category, c.name) for c in report.failures()}
    assert {
        ("activity", "stuck_rows"),
        ("integrity", "synced_without_id"),
        ("integrity", "dead_lettered"),
        ("integrity", "backlog_age"),
    } <= failing
    assert report.exit_code == 1


def test_health_database_unusable(sqlite_url, clean_env, capsys):
    from zoho_pipeline.source import business, database

    engine = database.make_engine(sqlite_url)
    business.create_business_tables(engine)  # provider tables, pipeline never installed
    assert health_cmd.main(["--database-url", sqlite_url, "--no-api"]) == 1
    out = capsys.readouterr().out
    assert "zoho-pipeline db upgrade" in out
    assert health_cmd.main(["--database-url", "sqlite:////nonexistent/dir/x.db", "--no-api"]) == 1
    assert "cannot connect" in capsys.readouterr().out
    assert health_cmd.main([]) == 2


def test_health_api_connectivity(sqlite_url, clean_env, emulator, capsys):
    engine = _healthy_db(sqlite_url)
    clean_env.setenv("SOURCE_DATABASE_URL", sqlite_url)
    assert health_cmd.main(["--json"]) == 1  # sync enabled, no credentials → fail
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["connectivity"]["status"] == "fail" and "ZOHO_CLIENT_ID" in checks["connectivity"]["message"]
    clean_env.setenv("ENABLE_ZOHO_SYNC", "false")
    assert health_cmd.main(["--json"]) == 0  # switched off: skipped, healthy
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["connectivity"]["status"] == "skip"
    clean_env.delenv("ENABLE_ZOHO_SYNC")
    _emulator_env(clean_env, emulator)
    assert health_cmd.main([]) == 0
    assert "API connectivity: ok" in capsys.readouterr().out
    clean_env.setenv("ZOHO_REFRESH_TOKEN", "1000.revoked-token")
    assert health_cmd.main(["--detailed"]) == 1
    out = capsys.readouterr().out
    assert "refused the credentials" in out and "1000.revoked-token" not in out
    # budget nearly spent warns, spent fails
    clean_env.setenv("ZOHO_REFRESH_TOKEN", TEST_CREDENTIALS["refresh_token"])
    clean_env.setenv("ZOHO_DAILY_BUDGET", "100")
    set_usage(engine, TEST_CREDENTIALS["organization_id"], 100)
    assert health_cmd.main(["--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["daily_budget"]["status"] == "fail"
    engine.dispose()


def test_health_email_output(world, capsys, monkeypatch):
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.co.za")
    assert health_cmd.main(["--email", "--no-api"]) == 1
    msg = email.message_from_string(capsys.readouterr().out, policy=email.policy.default)
    assert "UNHEALTHY" in str(msg["Subject"]) and msg["To"] == "ops@example.co.za"
    text, html_ = (p.get_content() for p in msg.iter_parts())
    assert "stuck_rows" in text and "<table" in html_


def test_cli_dispatch_help(capsys):
    for name in ("status", "logs", "retry", "health", "alert", "reconcile"):
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert f"zoho-pipeline {name}" in capsys.readouterr().out
