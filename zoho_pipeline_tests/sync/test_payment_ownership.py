"""Issue 12 item 2: a payment is applied to its payer's invoice only, and only payments that reached ZOHO are
deducted from that invoice's balance, so one customer's bad payment never turns another's into unapplied credit.

Real HTTP to the emulator, the source on SQLite and on Postgres.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support import rows

FAST = SyncSettings(max_workers=4, backoff_base_s=0.05, in_run_retry_window_s=3.0, run_stale_after_s=5.0)


@pytest.fixture
def source(db_url):
    engine = rows.make_source(db_url)
    yield engine
    engine.dispose()


def _sync(engine, zoho_config):
    with ZohoClient(zoho_config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
        return run_sync(engine, client, FAST, entities=["payments"])


def _completed(engine, hours_ago: float):
    return rows.ts(engine, rows.now() - timedelta(hours=hours_ago))


def test_a_payment_on_another_customers_invoice_fails_alone_and_the_owners_payment_closes_it(
    source, zoho_config, emulator
):
    engine = source
    owner = rows.add_customer(engine, "Thandi", "Nkosi")
    stranger = rows.add_customer(engine, "Sipho", "Dlamini")
    invoice = rows.add_invoice(engine, owner, total="1150.00")
    # the stranger's payment completed first: on today's main it is deducted from the owner's invoice
    wrong = rows.add_payment(engine, stranger, invoice, amount="1150.00", completed_at=_completed(engine, 3))
    real = rows.add_payment(engine, owner, invoice, amount="1150.00", completed_at=_completed(engine, 2))

    report = _sync(engine, zoho_config)

    wrong_row, real_row = (
        rows.row(engine, T.payment_transactions, wrong),
        rows.row(engine, T.payment_transactions, real),
    )
    assert wrong_row["zoho_sync_status"] == "failed"
    assert wrong_row["zoho_last_sync_error"].startswith("invoice_id:")
    assert "another customer" in wrong_row["zoho_last_sync_error"]
    assert wrong_row["zoho_payment_id"] is None
    assert real_row["zoho_sync_status"] == "synced", real_row["zoho_last_sync_error"]
    invoice_zoho_id = rows.row(engine, T.customer_invoices, invoice)["zoho_billing_invoice_id"]
    payment = emulator.store.payments[real_row["zoho_payment_id"]]
    assert [(a["invoice_id"], float(a["amount_applied"])) for a in payment["invoices"]] == [(invoice_zoho_id, 1150.0)]
    assert emulator.store.invoices[invoice_zoho_id]["status"] == "paid"
    assert float(emulator.store.invoices[invoice_zoho_id]["balance"]) == 0.0
    assert report.entities["payments"].failed == 1
    # nothing of the stranger's reached ZOHO's payments
    assert len(emulator.store.payments) == 1


def test_an_earlier_payment_that_never_reaches_zoho_is_not_deducted(source, zoho_config, emulator):
    engine = source
    owner = rows.add_customer(engine, "Lerato", "Mokoena")
    invoice = rows.add_invoice(engine, owner, total="1150.00")
    # the earlier payment is refused by our validation (no ZOHO payment mode): it never reaches ZOHO
    refused = rows.add_payment(
        engine, owner, invoice, amount="1150.00", payment_method="bitcoin", completed_at=_completed(engine, 3)
    )
    real = rows.add_payment(engine, owner, invoice, amount="1150.00", completed_at=_completed(engine, 2))

    _sync(engine, zoho_config)

    assert rows.row(engine, T.payment_transactions, refused)["zoho_sync_status"] == "failed"
    real_row = rows.row(engine, T.payment_transactions, real)
    assert real_row["zoho_sync_status"] == "synced", real_row["zoho_last_sync_error"]
    invoice_zoho_id = rows.row(engine, T.customer_invoices, invoice)["zoho_billing_invoice_id"]
    payment = emulator.store.payments[real_row["zoho_payment_id"]]
    assert [float(a["amount_applied"]) for a in payment["invoices"]] == [1150.0]
    assert emulator.store.invoices[invoice_zoho_id]["status"] == "paid"


def test_two_payments_of_one_invoice_in_one_run_never_over_apply(source, zoho_config, emulator):
    engine = source
    owner = rows.add_customer(engine, "Aisha", "Patel")
    invoice = rows.add_invoice(engine, owner, total="1150.00")
    first = rows.add_payment(engine, owner, invoice, amount="800.00", completed_at=_completed(engine, 3))
    second = rows.add_payment(engine, owner, invoice, amount="800.00", completed_at=_completed(engine, 2))

    _sync(engine, zoho_config)

    applied = {}
    for pid in (first, second):
        r = rows.row(engine, T.payment_transactions, pid)
        assert r["zoho_sync_status"] == "synced", r["zoho_last_sync_error"]
        applied[pid] = sum(
            float(a["amount_applied"]) for a in emulator.store.payments[r["zoho_payment_id"]]["invoices"]
        )
    assert applied == {first: 800.0, second: 350.0}  # by completion time; the rest of the second is credit
    invoice_zoho_id = rows.row(engine, T.customer_invoices, invoice)["zoho_billing_invoice_id"]
    assert emulator.store.invoices[invoice_zoho_id]["status"] == "paid"
