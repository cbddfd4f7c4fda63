"""Issue 15 in Dagster: `zoho_invoices` carries the recurring-invoice links in its metadata, and the ERROR check
`zoho_ledger_matches_source` on `zoho_payments` passes when ZOHO's ledger equals the source's, and fails naming
the customer and the invoice when it does not. Real HTTP to the emulator on its clock, the source on SQLite."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from zoho_pipeline.defs.assets import ALL_ASSETS
from zoho_pipeline.defs.jobs import sync_target
from zoho_pipeline.defs.ledger import zoho_ledger_matches_source
from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.dagster import make_resources, materialize
from zoho_pipeline_tests.support.emulator import start_emulator, zoho_config

BILL = "918.85"


@pytest.fixture
def world(sqlite_url):
    handle = start_emulator(start_time="2025-01-10T08:00:00Z")
    engine = R.make_source(sqlite_url)
    try:
        yield sqlite_url, engine, handle
    finally:
        engine.dispose()
        handle.stop()


def sync(url, resources):
    partition_key, tags = sync_target(resources["source"].engine())
    result = materialize(ALL_ASSETS, resources, partition_key=partition_key, tags=tags)
    assert result.success
    out = {}
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization
        out.setdefault(mat.asset_key.to_user_string(), {k: v.value for k, v in mat.metadata.items()})
    return out


def ledger_check(resources):
    result = materialize(
        [],
        resources,
        checks=[zoho_ledger_matches_source],
        selection=dg.AssetSelection.checks(zoho_ledger_matches_source),
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_links_in_the_invoices_metadata_and_the_ledger_check_fails_and_clears(world):
    url, engine, handle = world
    resources = make_resources(url, zoho_config(handle.url))
    pkg = R.add_package(engine, price="799.00")
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, activation_date=date(2025, 1, 5))
    no_service = R.add_invoice(
        engine, cust, invoice_type="recurring", invoice_date=date(2025, 2, 1), due_date=date(2025, 2, 8), total=BILL
    )
    first = sync(url, resources)["zoho_invoices"]
    assert (first["recurring_linked"], first["recurring_unmatched"], first["recurring_waiting"]) == (0, 1, 0)
    (row,) = first["recurring_not_linked"].records
    assert row.data["invoice_id"] == no_service and "names no service" in row.data["reason"]
    handle.move_clock(now="2025-02-01T09:00:00Z")
    inv = R.add_invoice(
        engine,
        cust,
        invoice_type="recurring",
        service_id=svc,
        invoice_date=date(2025, 2, 1),
        due_date=date(2025, 2, 8),
        total=BILL,
    )
    pay = R.add_payment(engine, cust, inv, amount=BILL, completed_at=R.ts(engine, R.now()))
    meta = sync(url, resources)["zoho_invoices"]  # the payment's month: the invoice it pays is linked with it
    assert (meta["recurring_linked"], meta["recurring_amount_differences"], meta["recurring_link_error"]) == (1, 0, "")

    # the invoice without a service is the provider's bill ZOHO does not hold: the customer owes more in the source
    failing = ledger_check(resources)
    assert not failing.passed and failing.severity == dg.AssetCheckSeverity.ERROR
    assert failing.metadata["customers_balance_differs"].value == 1
    kinds = {r.data["kind"] for r in failing.metadata["rows"].records}
    assert {"receivable", "recurring_not_linked"} <= kinds
    assert failing.metadata["recurring_payments_left_as_credit"].value == 0

    with engine.begin() as conn:  # the provider cancels the bill it raised by mistake: the ledger clears
        conn.execute(
            T.customer_invoices.update().where(T.customer_invoices.c.id == no_service).values(status="cancelled")
        )
    passing = ledger_check(resources)
    assert passing.passed, passing.metadata["rows"].records
    assert passing.metadata["customers_compared"].value == 1
    assert R.row(engine, T.payment_transactions, pay)["zoho_sync_status"] == "synced"
