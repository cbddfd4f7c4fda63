"""The alerting sensors against a local SMTP server, a local webhook receiver, the emulator and a real Dagster
instance (SQLite and Dagster's Postgres storage): a failing ERROR check alerts once and once on recovery (an entity
check, and the ledger check of issue 15), a failed run alerts once, ALERT_DRY_RUN sends nothing and prints what
would be sent, and no secret value ever leaves."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from zoho_pipeline.defs.alerting import state_key
from zoho_pipeline.defs.assets import ALL_ASSETS
from zoho_pipeline.defs.checks import ENTITY_CHECKS
from zoho_pipeline.defs.sensors import zoho_check_alert_sensor, zoho_run_failure_sensor
from zoho_pipeline.monitor import alerts
from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS
from zoho_pipeline_tests.support.alert_targets import SECRET, SMTP_PASSWORD, _everything_sent, _parse
from zoho_pipeline_tests.support.dagster import (
    BACKENDS,
    dagster_instance,
    demo_db,
    make_resources,
    materialize,
    source_url,
)

CUSTOMERS = dg.AssetKey("zoho_customers")
MISSING_ID = dg.AssetCheckKey(CUSTOMERS, "synced_rows_have_zoho_id")
CUSTOMER_CHECKS = [c for c in ENTITY_CHECKS if next(iter(c.check_keys)).asset_key == CUSTOMERS]
BAD_SECRET = "bad-client-secret-77c1d"


@pytest.fixture
def alert_env(env, monkeypatch):
    """test_alerts' targets (SMTP + webhook) and secrets, plus the ZOHO credentials the runs really use."""
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", TEST_CREDENTIALS["client_secret"])
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", TEST_CREDENTIALS["refresh_token"])
    monkeypatch.setenv("ALERT_WEBHOOK_FORMAT", "generic")
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example:3000")
    monkeypatch.delenv("ALERT_DRY_RUN", raising=False)
    return env


def _secrets_absent(text: str) -> None:
    for secret in (
        SECRET,
        SMTP_PASSWORD,
        TEST_CREDENTIALS["client_secret"],
        TEST_CREDENTIALS["refresh_token"],
        BAD_SECRET,
    ):
        assert secret not in text


def _bodies(webhook_server) -> list[dict]:
    return [json.loads(r["body"]) for r in webhook_server.received]


def _run_customer_checks(instance, resources):
    result = materialize(
        [], resources, instance=instance, checks=CUSTOMER_CHECKS, selection=dg.AssetSelection.checks(*CUSTOMER_CHECKS)
    )
    assert result.success
    return result


def _tick(instance, resources):
    return zoho_check_alert_sensor(dg.build_sensor_context(instance=instance, resources=resources))


def _synced_customer(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        cid = conn.execute(
            sa.select(T.customers.c.id)
            .where(T.customers.c.zoho_sync_status == "synced")
            .order_by(T.customers.c.id)
            .limit(1)
        ).scalar_one()
    engine.dispose()
    return str(cid)


def _set_zoho_id(url: str, cid: str, value) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(T.customers.update().where(T.customers.c.id == cid).values(zoho_billing_customer_id=value))
    engine.dispose()


# --- check alerts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_failing_error_check_alerts_once_and_once_on_recovery(
    request, backend, alert_env, smtp_server, webhook_server, emulator, zoho_config
):
    url = demo_db(source_url(backend, request), customers=6)
    resources = make_resources(url, zoho_config)
    with dagster_instance(backend, request) as instance:
        # a healthy sync with its checks: nothing to say
        assert materialize([ALL_ASSETS[1]], resources, instance=instance, checks=CUSTOMER_CHECKS).success
        assert isinstance(_tick(instance, resources), dg.SkipReason)
        baseline = len(webhook_server.received)
        assert not any(MISSING_ID.name in json.dumps(b) for b in _bodies(webhook_server))

        cid = _synced_customer(url)
        zoho_id = None
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            zoho_id = conn.execute(
                sa.select(T.customers.c.zoho_billing_customer_id).where(T.customers.c.id == cid)
            ).scalar_one()
        engine.dispose()
        _set_zoho_id(url, cid, None)  # "synced" without its ZOHO id
        checks = _run_customer_checks(instance, resources)
        evaluation = next(e for e in checks.get_asset_check_evaluations() if e.check_name == MISSING_ID.name)
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR

        skip = _tick(instance, resources)
        assert "zoho_customers:synced_rows_have_zoho_id" in skip.skip_message
        new = _bodies(webhook_server)[baseline:]
        assert len(new) == 1
        body = new[0]
        assert {"text", "blocks", "content", "embeds"} <= set(body)  # Slack and Discord both understand it
        assert body["event"]["kind"] == "check_failed" and body["event"]["severity"] == "error"
        assert "synced_rows_have_zoho_id" in body["event"]["title"]
        assert any(cid in r["label"] for r in body["event"]["rows"])  # names the failing row
        assert body["event"]["details"]["missing_zoho_id"] == 1
        assert body["event"]["link"] == "http://dagster.example:3000/assets/zoho_customers?view=checks"
        mails = smtp_server.messages[-1:]
        assert mails and "synced_rows_have_zoho_id" in str(_parse(mails[0])["Subject"])
        assert [p.get_content_type() for p in _parse(mails[0]).iter_parts()] == ["text/plain", "text/html"]
        _secrets_absent(_everything_sent(smtp_server, webhook_server))
        assert alerts.alert_state(resources["source"].engine(), state_key(MISSING_ID)) == "failing"

        # still failing: a second tick, and another evaluation, stay quiet
        _tick(instance, resources)
        _run_customer_checks(instance, resources)
        _tick(instance, resources)
        assert len(webhook_server.received) == baseline + 1

        # fixed and re-checked: one recovery
        _set_zoho_id(url, cid, zoho_id)
        _run_customer_checks(instance, resources)
        _tick(instance, resources)
        recovered = _bodies(webhook_server)[baseline + 1 :]
        assert len(recovered) == 1
        assert recovered[0]["event"]["kind"] == "check_recovered" and recovered[0]["event"]["severity"] == "info"
        assert "synced_rows_have_zoho_id" in recovered[0]["event"]["title"]
        _tick(instance, resources)
        assert len(webhook_server.received) == baseline + 2
        assert alerts.alert_state(resources["source"].engine(), state_key(MISSING_ID)) == "ok"


LEDGER = dg.AssetCheckKey(dg.AssetKey("zoho_payments"), "zoho_ledger_matches_source")


def _ledger_check(instance, resources) -> dg.AssetCheckEvaluation:
    from zoho_pipeline.defs.ledger import zoho_ledger_matches_source

    result = materialize(
        [],
        resources,
        instance=instance,
        checks=[zoho_ledger_matches_source],
        selection=dg.AssetSelection.checks(zoho_ledger_matches_source),
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_ledger_difference_alerts_once_and_once_when_it_clears(
    request, backend, alert_env, smtp_server, webhook_server, emulator, zoho_config
):
    """zoho_ledger_matches_source (issue 15) through the check alert sensor: a bill the source holds and ZOHO does
    not (a recurring invoice of no service, never linked) is one email and one webhook, naming the customer; the
    provider cancels it, the check passes, one recovery."""
    from zoho_pipeline_tests.support import rows as R

    url = source_url(backend, request)
    engine = R.make_source(url)
    customer = R.add_customer(engine)
    bill = R.add_invoice(engine, customer, invoice_type="recurring", total="918.85")
    resources = make_resources(url, zoho_config)
    with dagster_instance(backend, request) as instance:
        assert materialize([ALL_ASSETS[1]], resources, instance=instance).success  # the customer reaches ZOHO
        assert _ledger_check(instance, resources).passed is False
        _tick(instance, resources)
        new = _bodies(webhook_server)
        assert [b["event"]["kind"] for b in new] == ["check_failed"], new
        assert LEDGER.name in new[0]["event"]["title"] and new[0]["event"]["severity"] == "error"
        labels = {(r["label"], r["reason"]) for r in new[0]["event"]["rows"]}  # the customer and the bill named
        assert labels == {
            (R.row(engine, T.customers, customer)["email"], "receivable"),
            (R.row(engine, T.customer_invoices, bill)["invoice_number"], "recurring_not_linked"),
        }
        assert len(smtp_server.messages) == 1 and LEDGER.name in str(_parse(smtp_server.messages[0])["Subject"])
        _secrets_absent(_everything_sent(smtp_server, webhook_server))

        # still differing: another evaluation and more ticks stay quiet
        _tick(instance, resources)
        assert _ledger_check(instance, resources).passed is False
        _tick(instance, resources)
        assert (len(webhook_server.received), len(smtp_server.messages)) == (1, 1)

        with engine.begin() as conn:  # the provider cancels the bill it raised by mistake: the ledgers agree
            conn.execute(
                T.customer_invoices.update().where(T.customer_invoices.c.id == bill).values(status="cancelled")
            )
        assert _ledger_check(instance, resources).passed
        _tick(instance, resources)
        _tick(instance, resources)
        recovered = _bodies(webhook_server)[1:]
        assert [(b["event"]["kind"], LEDGER.name in b["event"]["title"]) for b in recovered] == [
            ("check_recovered", True)
        ]
        assert len(smtp_server.messages) == 2
        assert alerts.alert_state(resources["source"].engine(), state_key(LEDGER)) == "ok"
    engine.dispose()


def test_check_alert_dry_run_prints_once_per_change_and_sends_nothing(
    sqlite_url, alert_env, monkeypatch, capsys, smtp_server, webhook_server, emulator, zoho_config
):
    url = demo_db(sqlite_url, customers=6)
    resources = make_resources(url, zoho_config)
    monkeypatch.setenv("ALERT_DRY_RUN", "true")
    with dagster_instance("sqlite", request=None) as instance:
        assert materialize([ALL_ASSETS[1]], resources, instance=instance, checks=CUSTOMER_CHECKS).success
        _set_zoho_id(url, _synced_customer(url), None)
        _run_customer_checks(instance, resources)
        capsys.readouterr()
        _tick(instance, resources)
        printed = capsys.readouterr().out
        assert "DRY RUN" in printed and "synced_rows_have_zoho_id" in printed
        _secrets_absent(printed)
        _tick(instance, resources)
        assert "synced_rows_have_zoho_id" not in capsys.readouterr().out  # once per change, in a dry run too
        assert smtp_server.messages == [] and webhook_server.received == []
        # the real state is untouched: switching the dry run off alerts for real
        engine = resources["source"].engine()
        assert alerts.alert_state(engine, state_key(MISSING_ID)) is None
        monkeypatch.delenv("ALERT_DRY_RUN")
        _tick(instance, resources)
        assert any("synced_rows_have_zoho_id" in b["event"]["title"] for b in _bodies(webhook_server))


def test_warn_only_failures_do_not_alert(
    sqlite_url, alert_env, monkeypatch, smtp_server, webhook_server, emulator, zoho_config
):
    """failures_under_threshold fails at WARN for a few failed rows: no alert (only ERROR alerts)."""
    url = demo_db(sqlite_url, customers=6)
    resources = make_resources(url, zoho_config)
    with dagster_instance("sqlite", request=None) as instance:
        assert materialize([ALL_ASSETS[1]], resources, instance=instance).success
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # one customer changed to an email ZOHO refuses: failed, not dead-lettered
            conn.execute(
                T.customers.update()
                .where(T.customers.c.id == _synced_customer(url))
                .values(email="not-an-email", updated_at=datetime.now(UTC))
            )
        engine.dispose()
        materialize([ALL_ASSETS[1]], resources, instance=instance, checks=CUSTOMER_CHECKS)
        rec = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(CUSTOMERS, "failures_under_threshold"))
        assert not rec.evaluation.passed and rec.evaluation.severity == dg.AssetCheckSeverity.WARN
        _tick(instance, resources)
        assert not any("failures_under_threshold" in b["event"]["title"] for b in _bodies(webhook_server))


# --- run failures ------------------------------------------------------------------------------------------------


def _failed_run_context(instance, resources):
    result = materialize([ALL_ASSETS[1]], resources, instance=instance)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    record = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
    return dg.build_run_status_sensor_context(
        sensor_name=zoho_run_failure_sensor.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=record.event_log_entry.dagster_event,
    ).for_run_failure()


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_run_sends_one_alert(
    request, backend, alert_env, monkeypatch, smtp_server, webhook_server, emulator, zoho_config
):
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", BAD_SECRET)  # what the run is configured with: must never leave
    url = demo_db(source_url(backend, request), customers=4)
    resources = make_resources(url, zoho_config, client_secret=BAD_SECRET)  # ZOHO rejects it: dg.Failure
    with dagster_instance(backend, request) as instance:
        context = _failed_run_context(instance, resources)
        zoho_run_failure_sensor(context)
        assert len(webhook_server.received) == 1 and len(smtp_server.messages) == 1
        event = _bodies(webhook_server)[0]["event"]
        assert event["kind"] == "run_failed"
        assert event["details"]["run_id"] == context.dagster_run.run_id
        assert "credentials" in event["summary"]  # the step's own error, not only "steps failed"
        assert event["link"] == f"http://dagster.example:3000/runs/{context.dagster_run.run_id}"
        _secrets_absent(_everything_sent(smtp_server, webhook_server))


def test_failed_run_dry_run_prints_and_sends_nothing(
    sqlite_url, alert_env, monkeypatch, capsys, smtp_server, webhook_server, emulator, zoho_config
):
    monkeypatch.setenv("ALERT_DRY_RUN", "true")
    resources = make_resources(demo_db(sqlite_url, customers=4), zoho_config, client_secret=BAD_SECRET)
    with dagster_instance("sqlite", request=None) as instance:
        context = _failed_run_context(instance, resources)
        capsys.readouterr()
        zoho_run_failure_sensor(context)
    printed = capsys.readouterr().out
    assert "DRY RUN" in printed and "ZOHO sync run failed" in printed and context.dagster_run.run_id in printed
    assert "Content-Type: text/html" in printed or "text/html" in printed
    assert '"embeds"' in printed and '"blocks"' in printed
    assert webhook_server.received == [] and smtp_server.messages == []
    _secrets_absent(printed)


def test_a_zoho_outage_is_one_alert_not_one_per_asset(sqlite_url, alert_env, monkeypatch, webhook_server):
    """api_reachable is one check on the ZOHO API's external asset; its failure is one event for the deployment."""
    from types import SimpleNamespace

    from zoho_pipeline.defs import alerting
    from zoho_pipeline.source.database import make_engine
    from zoho_pipeline.source.migrate import create_demo

    create_demo(sqlite_url, customers=3, seed=1)
    from zoho_pipeline.defs.checks import ALL_CHECKS

    keys = [k for check in ALL_CHECKS for k in check.check_keys if k.name == "api_reachable"]
    failing = dg.AssetCheckEvaluation(
        asset_key=keys[0].asset_key,
        check_name="api_reachable",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description="connection refused",
    )
    record = SimpleNamespace(run_id="r1", create_timestamp=0.0)
    monkeypatch.setattr(alerting, "latest_evaluations", lambda instance, ks: {k: (record, failing) for k in ks})
    engine = make_engine(sqlite_url)
    outcomes = alerting.alert_on_checks(engine, None, keys, dry_run=False)
    assert len(outcomes) == 1
    assert len(_bodies(webhook_server)) == 1
