"""Issue 14 (a): a payment refunded or bounced after it reached ZOHO, through the emulator over real HTTP, on SQLite
and Postgres. Money moves exactly once: a lost answer, a 5xx or a run killed mid-transition never becomes a
second refund or deletion, and ZOHO's ledger ends where the source's is."""

from __future__ import annotations

from decimal import Decimal

import pytest

from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.lifecycle import NO_RETRY, World, writes

PAYMENTS = T.payment_transactions
REFUND = "POST /payments/{payment_id}/refunds"
DETACH = "PUT /payments/{payment_id}"
DELETE = "DELETE /payments/{payment_id}"
READ = "GET /payments/{payment_id}"


@pytest.fixture
def world(db_url, emulator):
    w = World(db_url, emulator)
    yield w
    w.close()


def paid_invoice(world, total="1150.00"):
    """A customer, an installation invoice and a completed payment of all of it, synced: the invoice paid."""
    customer = R.add_customer(world.engine)
    invoice = R.add_invoice(world.engine, customer, total=total)
    payment = R.add_payment(world.engine, customer, invoice, amount=total)
    report, _ = world.sync()
    assert report.exit_code == 0, report.failures
    zoho_invoice = world.store.invoices[world.row(T.customer_invoices, invoice)["zoho_billing_invoice_id"]]
    assert zoho_invoice["status"] == "paid"
    return customer, invoice, payment


def refunds_of(world, zoho_payment_id) -> list[dict]:
    return [r for r in world.store.refunds.values() if r.get("payment_id") == zoho_payment_id]


def zoho_invoice(world, invoice_id) -> dict:
    return world.store.invoices[world.row(T.customer_invoices, invoice_id)["zoho_billing_invoice_id"]]


def zoho_customer(world, customer_id) -> dict:
    return world.store.customers[world.row(T.customers, customer_id)["zoho_billing_customer_id"]]


def assert_refunded_once(world, payment, invoice, customer, total="1150.00"):
    row = world.row(PAYMENTS, payment)
    assert row["zoho_sync_status"] == "synced" and not row["zoho_create_in_doubt"]
    zoho_payment = world.store.payments[row["zoho_payment_id"]]
    assert Decimal(str(zoho_payment["amount_refunded"])) == Decimal(total)
    assert len(refunds_of(world, row["zoho_payment_id"])) == 1, "one refund, never two"
    assert zoho_payment["invoices"] == [], "the refunded payment no longer pays its invoice"
    owed = zoho_invoice(world, invoice)
    assert Decimal(str(owed["balance"])) == Decimal(total) and owed["status"] in ("sent", "overdue")
    # the customer owes the invoice again and holds no credit: the source's ledger
    assert Decimal(str(zoho_customer(world, customer)["unused_credits"])) == 0


def test_a_refund_after_sync_refunds_in_zoho_once_and_the_invoice_is_owed_again(world):
    customer, invoice, payment = paid_invoice(world)
    world.change(PAYMENTS, payment, status="refunded")

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert_refunded_once(world, payment, invoice, customer)
    assert writes(calls) == {DETACH: 1, REFUND: 1}, "detach, then refund; no read without doubt"
    assert calls[READ] == 0
    report, calls = world.sync()
    assert writes(calls) == {} and report.entity("payments").unchanged == 0  # not due: nothing read or sent


def test_a_bounced_payment_is_deleted_in_zoho_once(world):
    customer, invoice, payment = paid_invoice(world)
    zoho_id = world.row(PAYMENTS, payment)["zoho_payment_id"]
    world.change(PAYMENTS, payment, status="failed")  # the debit order bounced

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho_id not in world.store.payments
    assert writes(calls) == {DELETE: 1} and calls[READ] == 0
    owed = zoho_invoice(world, invoice)
    assert Decimal(str(owed["balance"])) == Decimal("1150.00") and owed["status"] in ("sent", "overdue")
    assert world.row(PAYMENTS, payment)["zoho_sync_status"] == "synced"
    _, calls = world.sync()
    assert writes(calls) == {}


def test_a_dropped_refund_answer_never_becomes_a_second_refund(world):
    """act-then-drop: ZOHO refunds, the answer is lost; the next attempt reads the payment and sends nothing."""
    customer, invoice, payment = paid_invoice(world)
    world.change(PAYMENTS, payment, status="refunded")
    report, calls = world.sync_with_answers_lost()
    row = world.row(PAYMENTS, payment)
    assert row["zoho_sync_status"] == "retrying" and row["zoho_create_in_doubt"], "the lost answer is in doubt"
    assert calls[DETACH] == 1 and calls[REFUND] == 0, "the detach's answer was lost: the refund was not sent"

    # the detach acted (its answer was lost); now the refund is sent, then its answer is lost too
    world.change(PAYMENTS, payment, status="refunded")  # due at once rather than after the backoff
    world.sync_with_answers_lost()
    zoho_id = world.row(PAYMENTS, payment)["zoho_payment_id"]
    assert len(refunds_of(world, zoho_id)) == 1, "the refund acted though its answer was lost"

    world.change(PAYMENTS, payment, status="refunded")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert calls[READ] == 1 and writes(calls) == {}, "read back, found refunded: nothing sent again"
    assert_refunded_once(world, payment, invoice, customer)


def test_a_5xx_on_the_refund_is_retried_and_refunds_once(world):
    customer, invoice, payment = paid_invoice(world)
    world.change(PAYMENTS, payment, status="refunded")
    world.emulator.set_faults(fail_rate=1.0)
    try:
        report, _ = world.sync(NO_RETRY)
    finally:
        world.emulator.set_faults(fail_rate=0.0)
    assert world.row(PAYMENTS, payment)["zoho_sync_status"] == "retrying"
    world.change(PAYMENTS, payment, status="refunded")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert_refunded_once(world, payment, invoice, customer)


@pytest.mark.parametrize("died_after", ["detach", "refund"])
def test_a_run_killed_mid_refund_leaves_one_refund(world, died_after):
    """The killed run's claim was committed before its calls; what it sent is read back, not sent again."""
    customer, invoice, payment = paid_invoice(world)
    world.change(PAYMENTS, payment, status="refunded")
    zoho_id = world.row(PAYMENTS, payment)["zoho_payment_id"]
    world.die_mid_attempt(PAYMENTS, payment)
    world.client.put(f"/payments/{zoho_id}", json={"invoices": []})  # what the killed run had sent
    if died_after == "refund":
        world.client.post(f"/payments/{zoho_id}/refunds", json={"amount": 1150.0, "description": "killed run"})

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert calls[READ] == 1
    assert writes(calls) == ({REFUND: 1} if died_after == "detach" else {})
    assert_refunded_once(world, payment, invoice, customer)


def test_a_dropped_delete_answer_is_read_back_not_deleted_again(world):
    customer, invoice, payment = paid_invoice(world)
    zoho_id = world.row(PAYMENTS, payment)["zoho_payment_id"]
    world.change(PAYMENTS, payment, status="failed")
    world.sync_with_answers_lost()
    assert zoho_id not in world.store.payments and world.row(PAYMENTS, payment)["zoho_create_in_doubt"]
    world.change(PAYMENTS, payment, status="failed")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert calls[READ] == 1 and writes(calls) == {}
    assert world.row(PAYMENTS, payment)["zoho_sync_status"] == "synced"


def test_a_refund_of_a_payment_that_never_reached_zoho_fails_that_row_alone(world):
    customer = R.add_customer(world.engine)
    invoice = R.add_invoice(world.engine, customer)
    never = R.add_payment(
        world.engine,
        customer,
        invoice,
        status="refunded",
        zoho_sync_status="failed",
        zoho_error_code="4",
        zoho_last_sync_error="an earlier refusal",
    )
    other = R.add_payment(world.engine, customer, invoice, amount="100.00")
    untouched = R.add_payment(world.engine, customer, None, status="refunded")  # never met by the pipeline
    world.change(PAYMENTS, never, status="refunded")

    report, calls = world.sync()

    failed = world.row(PAYMENTS, never)
    assert failed["zoho_sync_status"] == "failed" and failed["zoho_last_sync_error"].startswith("status:")
    assert "never reached ZOHO" in failed["zoho_last_sync_error"] and failed["zoho_payment_id"] is None
    assert world.row(PAYMENTS, other)["zoho_sync_status"] == "synced", "the rest of the run goes on"
    assert world.row(PAYMENTS, untouched)["zoho_sync_status"] is None
    assert calls["POST /payments"] == 1 and calls[REFUND] == 0


def test_a_payment_moved_to_another_invoice_is_re_applied_to_it(world):
    customer, first, payment = paid_invoice(world)
    second = R.add_invoice(world.engine, customer, total="1150.00")
    world.sync()
    world.change(PAYMENTS, payment, invoice_id=second)

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    zoho_payment = world.store.payments[world.row(PAYMENTS, payment)["zoho_payment_id"]]
    assert [a["invoice_id"] for a in zoho_payment["invoices"]] == [
        world.row(T.customer_invoices, second)["zoho_billing_invoice_id"]
    ]
    assert zoho_invoice(world, second)["status"] == "paid"
    assert Decimal(str(zoho_invoice(world, first)["balance"])) == Decimal("1150.00")
    assert writes(calls) == {DETACH: 1}, "one PUT with the whole new application"
