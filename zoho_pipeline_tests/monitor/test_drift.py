"""Drift: a field changed in ZOHO (through the emulator's API, as finance would in ZOHO's UI) since we sent it is
reported with the row, the field, what we sent and what ZOHO holds; ZOHO_DRIFT=repair sends the source's version
back. SQLite and Postgres."""

from __future__ import annotations

import dagster as dg
import pytest

from zoho_pipeline.cli import reconcile as reconcile_cmd
from zoho_pipeline.defs.drift import zoho_drift
from zoho_pipeline.monitor.drift import drift
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.dagster import make_resources, materialize

FAST = SyncSettings(max_workers=4, backoff_base_s=0.05, in_run_retry_window_s=0.0, run_stale_after_s=5.0)


@pytest.fixture
def synced(db_url, zoho_config, emulator):
    engine = R.make_source(db_url)
    package = R.add_package(engine)
    edited = R.add_customer(engine, "Thandi", "Nkosi", city="Cape Town", address_line1="12 Long St")
    other = R.add_customer(engine, "Sipho", "Dlamini", city="Durban")
    R.add_service(engine, edited, package)
    invoice = R.add_invoice(engine, other)
    with zoho_client(zoho_config, engine) as client:
        report = run_sync(engine, client, FAST)
        assert report.exit_code == 0
        zoho_id = R.row(engine, T.customers, edited)["zoho_billing_customer_id"]
        # finance edits the customer in ZOHO: a new city and a phone number we never sent
        held = client.get(f"/customers/{zoho_id}")["customer"]
        address = {**held["billing_address"], "city": "Stellenbosch"}
        client.put(f"/customers/{zoho_id}", json={"billing_address": address, "display_name": "T. Nkosi"})
        other_zoho_id = R.row(engine, T.customers, other)["zoho_billing_customer_id"]
        yield (
            engine,
            client,
            dict(
                edited=edited,
                other=other,
                zoho_id=zoho_id,
                url=db_url,
                invoice=invoice,
                package=package,
                other_zoho_id=other_zoho_id,
            ),
        )
    engine.dispose()


def test_a_customer_edited_in_zoho_is_reported_field_by_field(synced):
    engine, client, ids = synced
    report = drift(engine, client)
    customers = report.entities["customers"]
    assert customers.candidates == customers.checked == 2 and customers.complete
    assert {(d.entity_id, d.field, d.sent, d.zoho) for d in report.drifts} == {
        (ids["edited"], "billing_address.city", "Cape Town", "Stellenbosch"),
        (ids["edited"], "display_name", "Thandi Nkosi", "T. Nkosi"),
    }
    assert {e.entity for e in report.entities.values() if e.checked} == {
        "plans",
        "customers",
        "subscriptions",
        "invoices",
    }
    assert report.api_calls == sum(e.checked for e in report.entities.values())  # one GET per row checked

    # a budget smaller than the rows: a sample, marked incomplete
    one = drift(engine, client, ["customers"], max_calls=1, seed=3).entities["customers"]
    assert (one.checked, one.api_calls, one.complete) == (1, 1, False)


def test_fields_zoho_names_otherwise_are_compared_where_zoho_holds_them(synced):
    """The entity modules declare where ZOHO's GET shows each field (sync.entities.*.DRIFT): an invoice's total we
    sent as the private `_total` is ZOHO's `total` (money, to the cent), a closed account and a retired package
    are ZOHO's `status`. Edited through the emulator's API, each is reported under ZOHO's name."""
    engine, client, ids = synced
    invoice = R.row(engine, T.customer_invoices, ids["invoice"])["zoho_billing_invoice_id"]
    held = client.get(f"/invoices/{invoice}")["invoice"]
    items = [{**held["invoice_items"][0], "price": 1100.0}]  # finance re-prices the line in ZOHO's UI
    client.put(f"/invoices/{invoice}", json={"customer_id": held["customer_id"], "invoice_items": items})
    client.post(f"/customers/{ids['other_zoho_id']}/markasinactive")
    plan_code = R.row(engine, T.service_packages, ids["package"])["zoho_plan_code"]
    client.post(f"/plans/{plan_code}/markasinactive")

    found = {(d.entity, d.entity_id, d.field, d.sent, d.zoho) for d in drift(engine, client).drifts}
    assert (ids["invoice"], "total", "1150.00", 1265.0) in {f[1:] for f in found if f[0] == "invoices"}
    assert ("invoices", ids["invoice"], "invoice_items[1].price", 1000.0, 1100.0) in found
    assert ("customers", ids["other"], "status", False, "inactive") in found
    assert ("plans", ids["package"], "status", True, "inactive") in found
    # money as money, a flag as its status: nothing else drifted (1150.00 sent as text is ZOHO's 1150.0)
    assert {f[:3] for f in found} == {
        ("invoices", ids["invoice"], "total"),
        ("invoices", ids["invoice"], "invoice_items[1].price"),
        ("customers", ids["other"], "status"),
        ("plans", ids["package"], "status"),
        ("customers", ids["edited"], "billing_address.city"),
        ("customers", ids["edited"], "display_name"),
    }


def test_reconcile_drift_prints_the_table(synced, monkeypatch, capsys, zoho_config):
    engine, client, ids = synced
    for key, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(f"ZOHO_{key.upper()}", value)
    monkeypatch.setenv("ZOHO_API_BASE_URL", zoho_config.api_base_url)
    monkeypatch.setenv("ZOHO_ACCOUNTS_URL", zoho_config.accounts_url)
    code = reconcile_cmd.main(["--database-url", ids["url"], "--drift", "--entity", "customers"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "billing_address.city" in out and "Cape Town" in out and "Stellenbosch" in out
    assert "retry ENTITY KEY... --force" in out and "1 row(s) drifted" in out


def test_the_drift_check_reports_and_under_repair_the_source_wins(synced, zoho_config, emulator):
    engine, client, ids = synced
    selection = dg.AssetSelection.checks(zoho_drift)

    reported = materialize([], make_resources(ids["url"], zoho_config), checks=[zoho_drift], selection=selection)
    check = {e.asset_key.to_user_string(): e for e in reported.get_asset_check_evaluations()}["zoho_customers"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["requeued"].value == 0 and check.metadata["policy"].value == "report"
    fields = {(r.data["entity_id"], r.data["field"], r.data["zoho"]) for r in check.metadata["rows"].records}
    assert (ids["edited"], "billing_address.city", '"Stellenbosch"') in fields
    assert R.row(engine, T.customers, ids["edited"])["zoho_sync_status"] == "synced"  # report only

    resources = make_resources(ids["url"], zoho_config, drift_policy="repair")
    repaired = materialize([], resources, checks=[zoho_drift], selection=selection)
    check = {e.asset_key.to_user_string(): e for e in repaired.get_asset_check_evaluations()}["zoho_customers"]
    assert check.metadata["requeued"].value == 1
    assert R.row(engine, T.customers, ids["edited"])["zoho_sync_status"] == "pending"
    run_sync(engine, client, FAST)  # the next sync sends the source's version back
    held = emulator.store.customers[ids["zoho_id"]]
    assert (held["billing_address"]["city"], held["display_name"]) == ("Cape Town", "Thandi Nkosi")
    assert drift(engine, client).drifts == []
