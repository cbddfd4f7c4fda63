"""Issue 14 (d): manual invoices whose VAT the source rounded otherwise than ZOHO, and edits after they reached
ZOHO, through the emulator over real HTTP, on SQLite and Postgres."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.lifecycle import World, writes

INVOICES = T.customer_invoices
PUT = "PUT /invoices/{invoice_id}"


@pytest.fixture
def world(db_url, emulator):
    w = World(db_url, emulator)
    yield w
    w.close()


def invoice(world, customer, prices, vat, number=None, status="sent"):
    """An installation invoice of one-unit lines at `prices`, with the source's own VAT figure."""
    items = [{"description": f"Item {n}", "quantity": 1, "unit_price": p} for n, p in enumerate(prices, 1)]
    subtotal = sum((Decimal(p) for p in prices), Decimal("0.00"))
    return R._insert(
        world.engine,
        INVOICES,
        customer_id=customer,
        invoice_number=number or f"INV-R-{len(world.store.invoices)}-{prices[0]}-{vat}",
        invoice_type="installation",
        invoice_date=date(2025, 6, 1),
        due_date=date(2025, 6, 15),
        line_items=items,
        subtotal=subtotal,
        vat_amount=Decimal(vat),
        total_amount=subtotal + Decimal(vat),
        status=status,
    )


def zoho_invoice(world, invoice_id) -> dict:
    return world.store.invoices[world.row(INVOICES, invoice_id)["zoho_billing_invoice_id"]]


def test_half_even_and_subtotal_vat_go_with_a_rounding_adjustment_and_their_payments_pay_them(world):
    customer = R.add_customer(world.engine)
    # VAT of 10.30 is 1.545: ZOHO rounds half up (1.55), the source half-even (1.54)
    half_even = invoice(world, customer, ["10.30"], "1.54")
    # three lines of 10.30: ZOHO taxes each (3 × 1.55 = 4.65), the source the subtotal (30.90 × 15 % = 4.64)
    on_subtotal = invoice(world, customer, ["10.30", "10.30", "10.30"], "4.64")
    payment = R.add_payment(world.engine, customer, half_even, amount="11.84")

    report, _ = world.sync()

    assert report.exit_code == 0, report.failures
    for row_id, total in ((half_even, "11.84"), (on_subtotal, "35.54")):
        zoho = zoho_invoice(world, row_id)
        assert Decimal(str(zoho["total"])) == Decimal(total), "ZOHO's total is the source total to the cent"
        assert Decimal(str(zoho["adjustment"])) == Decimal("-0.01")
        assert zoho["adjustment_description"] == "Rounding"
    assert zoho_invoice(world, half_even)["status"] == "paid"
    assert world.row(T.payment_transactions, payment)["zoho_sync_status"] == "synced"


def test_a_difference_beyond_rounding_fails_naming_both_figures(world):
    customer = R.add_customer(world.engine)
    wrong = invoice(world, customer, ["100.00"], "15.50")  # 50 cents off: not rounding
    fine = invoice(world, customer, ["100.00"], "15.00")
    world.sync()
    row = world.row(INVOICES, wrong)
    assert row["zoho_sync_status"] == "failed"
    assert "R 115.50" in row["zoho_last_sync_error"] and "R 115.00" in row["zoho_last_sync_error"]
    assert row["zoho_last_sync_error"].startswith("total_amount:")
    assert world.row(INVOICES, fine)["zoho_sync_status"] == "synced"


def test_an_edit_of_an_unpaid_invoice_updates_the_same_zoho_invoice(world):
    customer = R.add_customer(world.engine)
    row_id = invoice(world, customer, ["10.30"], "1.54")
    world.sync()
    zoho_id = world.row(INVOICES, row_id)["zoho_billing_invoice_id"]
    items = [{"description": "Router", "quantity": 1, "unit_price": "200.00"}]
    world.change(
        INVOICES,
        row_id,
        line_items=items,
        subtotal=Decimal("200.00"),
        vat_amount=Decimal("30.00"),
        total_amount=Decimal("230.00"),
    )

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert world.row(INVOICES, row_id)["zoho_billing_invoice_id"] == zoho_id and len(world.store.invoices) == 1
    zoho = world.store.invoices[zoho_id]
    assert Decimal(str(zoho["total"])) == Decimal("230.00") and Decimal(str(zoho["adjustment"])) == 0
    assert writes(calls) == {PUT: 1}


def test_an_edit_zoho_cannot_take_fails_with_what_finance_must_do(world):
    customer = R.add_customer(world.engine)
    row_id = invoice(world, customer, ["1000.00"], "150.00")
    R.add_payment(world.engine, customer, row_id, amount="1150.00")
    world.sync()
    zoho_id = world.row(INVOICES, row_id)["zoho_billing_invoice_id"]
    assert world.store.invoices[zoho_id]["status"] == "paid"
    items = [{"description": "Router", "quantity": 1, "unit_price": "100.00"}]
    world.change(
        INVOICES,
        row_id,
        line_items=items,
        subtotal=Decimal("100.00"),
        vat_amount=Decimal("15.00"),
        total_amount=Decimal("115.00"),
    )

    report, _ = world.sync()

    row = world.row(INVOICES, row_id)
    assert row["zoho_sync_status"] == "failed" and row["zoho_error_code"] == "invalid"
    assert "Finance:" in row["zoho_last_sync_error"] and "refund or move the payment" in row["zoho_last_sync_error"]
    assert Decimal(str(world.store.invoices[zoho_id]["total"])) == Decimal("1150.00"), "ZOHO unchanged"
    assert any(f.entity == "invoices" and f.entity_id == row_id for f in report.failures)


def test_a_cancelled_invoice_is_voided_once_even_when_the_answer_is_lost(world):
    customer = R.add_customer(world.engine)
    row_id = invoice(world, customer, ["100.00"], "15.00")
    world.sync()
    zoho_id = world.row(INVOICES, row_id)["zoho_billing_invoice_id"]
    world.change(INVOICES, row_id, status="cancelled")
    world.sync_with_answers_lost()  # ZOHO voids it; the answer is lost
    assert world.store.invoices[zoho_id]["status"] == "void"
    world.change(INVOICES, row_id, status="cancelled")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert writes(calls) == {} and calls["GET /invoices/{invoice_id}"] == 1, "read back: void already"
    world.change(INVOICES, row_id, due_date=date(2025, 7, 1))  # an edit of the cancelled invoice
    report, calls = world.sync()
    assert report.exit_code == 0 and writes(calls) == {} and calls == {}, "voided once; nothing to send"
