"""Money movements over real HTTP: credit applied both ways, void and reopen, write-off and its undo, invoice
adjustment, a deleted payment giving the invoice its balance back, credit-note refunds; the customer's
`outstanding_receivable_amount` and `unused_credits` checked after each."""

from __future__ import annotations

import pytest

from zoho_pipeline_tests.emulator.accounts import VAT, Api, emu


class Books:
    def __init__(self, handle):
        self.h, self.api = handle, Api(handle)
        self.pid = self.api.ok("POST", "/products", {"name": "Installation"})["product"]["product_id"]
        self.cid = self.api.ok("POST", "/customers", {"display_name": "M", "email": "m@example.co.za"})["customer"][
            "customer_id"
        ]

    def invoice(self, price=100, **extra):  # 100 + 15 VAT
        body = {
            "customer_id": self.cid,
            "date": "2025-01-01",
            "due_date": "2025-01-10",
            "invoice_items": [{"product_id": self.pid, "price": price, "quantity": 1, "tax_id": VAT}],
            **extra,
        }
        return self.api.ok("POST", "/invoices", body)["invoice"]

    def note(self, price=40):  # 40 + 6 VAT
        return self.api.ok(
            "POST",
            "/creditnotes",
            {
                "customer_id": self.cid,
                "creditnote_items": [{"name": "Credit", "price": price, "quantity": 1, "tax_id": VAT}],
            },
        )["creditnote"]

    def get(self, kind, ident):
        key = {"invoices": "invoice", "creditnotes": "creditnote", "payments": "payment"}[kind]
        return self.api.ok("GET", f"/{kind}/{ident}")[key]

    def balances(self):
        c = self.api.ok("GET", f"/customers/{self.cid}")["customer"]
        return c["outstanding_receivable_amount"], c["unused_credits"]


@pytest.fixture
def books():
    with emu(start_time="2025-01-05T08:00:00Z") as handle:
        yield Books(handle)


def test_credit_applied_from_the_invoice_and_from_the_note(books):
    inv, note = books.invoice(), books.note()
    assert books.balances() == (115.0, 46.0)
    out = books.api.ok(
        "POST",
        f"/invoices/{inv['invoice_id']}/credits",
        {"apply_creditnotes": [{"creditnote_id": note["creditnote_id"], "amount_applied": 30}]},
    )
    assert out["apply_creditnotes"][0]["amount_applied"] == 30.0
    got = books.get("invoices", inv["invoice_id"])
    assert (got["credits_applied"], got["balance"], got["status"]) == (30.0, 85.0, "partially_paid")
    assert got["credits"][0]["creditnote_id"] == note["creditnote_id"]
    assert books.balances() == (85.0, 16.0)
    books.api.ok(
        "POST",
        f"/creditnotes/{note['creditnote_id']}/invoices",
        {"invoices": [{"invoice_id": inv["invoice_id"], "amount_applied": 16}]},
    )
    note = books.get("creditnotes", note["creditnote_id"])
    assert (note["balance"], note["status"], [a["amount"] for a in note["invoices"]]) == (0.0, "closed", [30.0, 16.0])
    assert books.balances() == (69.0, 0.0)
    # voiding the invoice gives the credit back to its note
    books.api.ok("POST", f"/invoices/{inv['invoice_id']}/void")
    assert (books.get("creditnotes", note["creditnote_id"])["balance"], books.balances()) == (46.0, (0.0, 46.0))
    # ... and reopening it owes the whole total again
    reopened = books.api.ok("POST", f"/invoices/{inv['invoice_id']}/converttoopen")
    assert reopened["message"] == "Status of the invoice has been changed to open."
    assert (reopened["invoice"]["status"], books.balances()) == ("sent", (115.0, 46.0))


def test_voiding_a_note_undoes_its_applications_and_reopening_restores_it(books):
    inv, note = books.invoice(), books.note()
    books.api.ok(
        "POST",
        f"/creditnotes/{note['creditnote_id']}/invoices",
        {"invoices": [{"invoice_id": inv["invoice_id"], "amount_applied": 46}]},
    )
    assert books.balances() == (69.0, 0.0)
    books.api.ok("POST", f"/creditnotes/{note['creditnote_id']}/void")
    assert books.get("invoices", inv["invoice_id"])["balance"] == 115.0 and books.balances() == (115.0, 0.0)
    books.api.ok("POST", f"/creditnotes/{note['creditnote_id']}/converttoopen")
    assert books.get("creditnotes", note["creditnote_id"])["status"] == "open" and books.balances() == (115.0, 46.0)
    books.api.ok("DELETE", f"/creditnotes/{note['creditnote_id']}")
    assert books.balances() == (115.0, 0.0)


def test_credit_note_refunds_are_listed_and_closed_notes_refuse_more(books):
    note = books.note()
    refund = books.api.ok(
        "POST", f"/creditnotes/{note['creditnote_id']}/refunds", {"amount": 46, "reference_number": "RF-1"}
    )["refund"]
    assert (refund["creditnote"]["balance_amount"], refund["creditnote"]["refund_amount"]) == (0.0, 46.0)
    listed = books.api.ok("GET", f"/creditnotes/{note['creditnote_id']}/refunds")["creditnote_refunds"]
    assert [r["refund_id"] for r in listed] == [refund["refund_id"]]
    assert books.api.ok("GET", f"/creditnotes/refunds/{refund['refund_id']}")["refund"]["reference_number"] == "RF-1"
    assert books.balances() == (0.0, 0.0)
    status, body = books.api.call("POST", f"/creditnotes/{note['creditnote_id']}/refunds", {"amount": 1})
    assert (status, body["code"]) == (400, 24022)


def test_write_off_and_cancel(books):
    inv = books.invoice()
    books.api.ok(
        "POST",
        "/payments",
        {
            "customer_id": books.cid,
            "payment_mode": "cash",
            "amount": 15,
            "invoices": [{"invoice_id": inv["invoice_id"], "amount_applied": 15}],
        },
    )
    out = books.api.ok("POST", f"/invoices/{inv['invoice_id']}/writeoff", {"reason": "uncollectible"})
    assert out["message"] == "Invoice has been written off.."
    got = books.get("invoices", inv["invoice_id"])
    assert (got["status"], got["balance"], got["write_off_amount"]) == ("paid", 0.0, 100.0)
    assert books.balances() == (0.0, 0.0)
    books.api.ok("POST", f"/invoices/{inv['invoice_id']}/cancelwriteoff")
    got = books.get("invoices", inv["invoice_id"])
    assert (got["status"], got["balance"], got["write_off_amount"]) == ("partially_paid", 100.0, 0.0)
    assert books.balances() == (100.0, 0.0)


def test_adjustment_is_added_to_the_total_on_create_and_update(books):
    inv = books.invoice(price=99.99, adjustment=0.01, adjustment_description="Rounding off")
    assert (inv["sub_total"], inv["tax_total"], inv["adjustment"], inv["total"]) == (99.99, 15.0, 0.01, 115.0)
    assert inv["adjustment_description"] == "Rounding off"
    body = {
        "customer_id": books.cid,
        "adjustment": -0.99,
        "adjustment_description": "Discount",
        "invoice_items": [{"product_id": books.pid, "price": 100, "quantity": 1, "tax_id": VAT}],
    }
    out = books.api.ok("PUT", f"/invoices/{inv['invoice_id']}", body)["invoice"]
    assert (out["total"], out["balance"], out["adjustment_description"]) == (114.01, 114.01, "Discount")
    rows = books.api.ok("GET", "/invoices", customer_id=books.cid)["invoices"]
    assert (rows[0]["adjustment"], rows[0]["total"]) == (-0.99, 114.01)
    status, body = books.api.call("POST", "/invoices", {**body, "adjustment": -500})
    assert (status, body["code"]) == (400, 4) and "adjustment" in body["message"]


def test_deleting_a_payment_gives_the_invoice_its_balance_back(books):
    inv = books.invoice()  # due 2025-01-10
    pay = books.api.ok(
        "POST",
        "/payments",
        {
            "customer_id": books.cid,
            "payment_mode": "cash",
            "amount": 115,
            "invoices": [{"invoice_id": inv["invoice_id"], "amount_applied": 115}],
        },
    )
    books.h.move_clock(now="2025-01-20T08:00:00Z")
    assert books.get("invoices", inv["invoice_id"])["status"] == "paid"
    books.api.ok("DELETE", f"/payments/{pay['payment']['payment_id']}")
    got = books.get("invoices", inv["invoice_id"])
    assert (got["status"], got["balance"], got["payment_made"], got["payments"]) == ("overdue", 115.0, 0.0, [])
    assert books.balances() == (115.0, 0.0)
