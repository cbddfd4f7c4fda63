"""Emulator: PUT /invoices/{id} (recompute lines, totals, balance; guard what is paid) and DELETE /invoices/{id}."""

from __future__ import annotations

import pytest

from zoho_pipeline_tests.emulator.test_emulator import VAT, Api, make_customer


@pytest.fixture
def api(emulator):
    api = Api(emulator)
    api.pid = api.ok("POST", "/products", {"name": "Installation"})["product"]["product_id"]
    api.cid = make_customer(api)["customer_id"]
    return api


def _invoice(api, price=1000, qty=1, **extra):
    body = {
        "customer_id": api.cid,
        "date": "2025-03-01",
        "due_date": "2025-03-31",
        "reference_number": "INV-1",
        "invoice_items": [{"product_id": api.pid, "price": price, "quantity": qty, "tax_id": VAT}],
        **extra,
    }
    return body, api.ok("POST", "/invoices", body)["invoice"]


def _pay(api, invoice_id, amount, ref="PAY-1"):
    return api.ok(
        "POST",
        "/payments",
        {
            "customer_id": api.cid,
            "payment_mode": "cash",
            "amount": amount,
            "reference_number": ref,
            "invoices": [{"invoice_id": invoice_id, "amount_applied": amount}],
        },
    )["payment"]


def test_update_recomputes_lines_and_totals(api):
    body, inv = _invoice(api)
    assert inv["total"] == 1150.0
    body["invoice_items"] = [
        {"product_id": api.pid, "name": "Router", "price": 200, "quantity": 2, "tax_id": VAT},
        {"product_id": api.pid, "name": "Cable", "price": 10.5, "quantity": 1},
    ]
    body["reference_number"] = "INV-1b"
    out = api.ok("PUT", f"/invoices/{inv['invoice_id']}", body)["invoice"]
    assert out["invoice_id"] == inv["invoice_id"] and out["invoice_number"] == inv["invoice_number"]
    assert (out["sub_total"], out["tax_total"], out["total"], out["balance"]) == (410.5, 60.0, 470.5, 470.5)
    assert [line["name"] for line in out["invoice_items"]] == ["Router", "Cable"]
    assert out["reference_number"] == "INV-1b" and out["status"] == "overdue"  # due 2025-03-31, past today
    assert api.ok("GET", f"/invoices/{inv['invoice_id']}")["invoice"]["total"] == 470.5
    listed = api.ok("GET", "/invoices", reference_number="INV-1b")["invoices"]
    assert [i["invoice_id"] for i in listed] == [inv["invoice_id"]]


def test_update_keeps_payments_and_balance(api):
    body, inv = _invoice(api)  # 1150.00
    _pay(api, inv["invoice_id"], 500)
    body["invoice_items"][0]["price"] = 2000  # 2300.00
    out = api.ok("PUT", f"/invoices/{inv['invoice_id']}", body)["invoice"]
    assert (out["total"], out["payment_made"], out["balance"], out["status"]) == (
        2300.0,
        500.0,
        1800.0,
        "partially_paid",
    )
    body["invoice_items"][0]["price"] = 434.78  # 434.78 + 65.22 = 500.00: exactly what is paid
    out = api.ok("PUT", f"/invoices/{inv['invoice_id']}", body)["invoice"]
    assert (out["total"], out["balance"], out["status"]) == (500.0, 0.0, "paid")


def test_update_below_paid_is_refused_and_changes_nothing(api):
    body, inv = _invoice(api)
    _pay(api, inv["invoice_id"], 800)
    body["invoice_items"][0]["price"] = 100  # 115.00 < 800 paid
    status, data = api.call("PUT", f"/invoices/{inv['invoice_id']}", body)
    assert status == 400 and data["code"] != 0 and "paid" in data["message"]
    after = api.ok("GET", f"/invoices/{inv['invoice_id']}")["invoice"]
    assert (after["total"], after["balance"], after["payment_made"]) == (1150.0, 350.0, 800.0)


def test_void_invoice_cannot_be_edited(api):
    body, inv = _invoice(api)
    api.ok("POST", f"/invoices/{inv['invoice_id']}/void")
    status, data = api.call("PUT", f"/invoices/{inv['invoice_id']}", body)
    assert status == 400 and data["code"] != 0
    assert api.ok("GET", f"/invoices/{inv['invoice_id']}")["invoice"]["status"] == "void"


def test_update_validates_like_create(api):
    body, inv = _invoice(api)
    status, data = api.call("PUT", f"/invoices/{inv['invoice_id']}", {**body, "invoice_items": []})
    assert status == 400 and data["code"] == 4
    status, data = api.call(
        "PUT", f"/invoices/{inv['invoice_id']}", {**body, "invoice_items": [{"product_id": "nope", "price": 1}]}
    )
    assert status == 400 and data["code"] == 2006
    status, data = api.call("PUT", "/invoices/999", body)
    assert status == 404 and data["code"] == 1002


def test_delete_invoice(api):
    _, inv = _invoice(api)
    api.ok("DELETE", f"/invoices/{inv['invoice_id']}")
    status, data = api.call("GET", f"/invoices/{inv['invoice_id']}")
    assert status == 404 and data["code"] == 1002
    status, data = api.call("DELETE", f"/invoices/{inv['invoice_id']}")
    assert status == 404


def test_delete_refused_with_payments_applied(api):
    _, inv = _invoice(api)
    payment = _pay(api, inv["invoice_id"], 100)
    status, data = api.call("DELETE", f"/invoices/{inv['invoice_id']}")
    assert status == 400 and data["code"] != 0
    assert api.ok("GET", f"/invoices/{inv['invoice_id']}")["invoice"]["payment_made"] == 100.0
    api.ok("DELETE", f"/payments/{payment['payment_id']}")  # with the payment gone, the invoice can go
    api.ok("DELETE", f"/invoices/{inv['invoice_id']}")
