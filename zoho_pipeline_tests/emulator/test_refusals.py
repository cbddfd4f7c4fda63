"""Every refusal over real HTTP: its precondition answered 400 with its own code, nothing changed; the codes are
the ones docs/emulator.md names; and faults (a 500 that did nothing, a dropped answer after the act) reach every
new write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from zoho_pipeline.emulator.errors import REFUSALS
from zoho_pipeline_tests.emulator.accounts import VAT, Api, catalog, customer, emu

DOCS = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"


class Setup:
    """A customer with a plan, and builders for the documents a precondition needs."""

    def __init__(self, handle):
        self.h, self.api = handle, Api(handle)
        self.pid = catalog(self.api)
        self.cid = self.customer("r@example.co.za")

    def customer(self, email):
        return customer(self.api, email)

    def invoice(self, price=100):  # total = price * 1.15
        return self.api.ok(
            "POST",
            "/invoices",
            {
                "customer_id": self.cid,
                "invoice_items": [{"product_id": self.pid, "price": price, "quantity": 1, "tax_id": VAT}],
            },
        )["invoice"]["invoice_id"]

    def pay(self, invoice_id, amount=115):
        return self.api.ok(
            "POST",
            "/payments",
            {
                "customer_id": self.cid,
                "payment_mode": "cash",
                "amount": amount,
                "invoices": [{"invoice_id": invoice_id, "amount_applied": amount}],
            },
        )["payment"]["payment_id"]

    def void(self, invoice_id):
        self.api.ok("POST", f"/invoices/{invoice_id}/void")
        return invoice_id

    def note(self, price=40):  # total 46
        return self.api.ok(
            "POST",
            "/creditnotes",
            {
                "customer_id": self.cid,
                "creditnote_items": [{"name": "Credit", "price": price, "quantity": 1, "tax_id": VAT}],
            },
        )["creditnote"]["creditnote_id"]

    def sub(self, starts_at="2025-01-01"):
        return self.api.ok(
            "POST",
            "/subscriptions",
            {"customer_id": self.cid, "plan": {"plan_code": "fibre-50"}, "starts_at": starts_at},
        )["subscription"]["subscription_id"]

    def cancelled_sub(self):
        sid = self.sub()
        self.api.ok("POST", f"/subscriptions/{sid}/cancel?cancel_at_end=false")
        return sid


def _credit(invoice, amount):
    return {"invoices": [{"invoice_id": invoice, "amount_applied": amount}]}


def _after(_prepared, call):
    """`call`, once its first argument (the set-up it needs) has been made."""
    return call


# refusal name -> (setup) -> (method, path, body) of the refused call
CASES = {
    "customer_has_transactions": lambda s: _after(s.invoice(), ("DELETE", f"/customers/{s.cid}", None)),
    "customer_has_live_subscription": lambda s: _after(s.sub(), ("POST", f"/customers/{s.cid}/markasinactive", None)),
    "subscription_already_cancelled": lambda s: ("POST", f"/subscriptions/{s.cancelled_sub()}/cancel", None),
    "subscription_not_non_renewing": lambda s: ("POST", f"/subscriptions/{s.sub()}/reactivate", None),
    "subscription_ended_update": lambda s: ("PUT", f"/subscriptions/{s.cancelled_sub()}", {"reference_id": "x"}),
    "postpone_not_live": lambda s: (
        "POST",
        f"/subscriptions/{s.cancelled_sub()}/postpone",
        {"renewal_at": "2026-01-01"},
    ),
    "postpone_not_later": lambda s: ("POST", f"/subscriptions/{s.sub()}/postpone", {"renewal_at": "2025-01-15"}),
    "no_scheduled_changes": lambda s: ("GET", f"/subscriptions/{s.sub()}/scheduledchanges", None),
    "invoice_already_void": lambda s: ("POST", f"/invoices/{s.void(s.invoice())}/void", None),
    "invoice_void_edit": lambda s: (
        "PUT",
        f"/invoices/{s.void(s.invoice())}",
        {"invoice_items": [{"product_id": s.pid, "price": 1}]},
    ),
    "invoice_customer_change": lambda s: _paid_invoice_put(s, customer_id=s.customer("other@example.co.za")),
    "invoice_total_below_paid": lambda s: _paid_invoice_put(s, invoice_items=[{"product_id": s.pid, "price": 10}]),
    "invoice_delete_applied": lambda s: ("DELETE", f"/invoices/{_paid(s)}", None),
    "invoice_not_void": lambda s: ("POST", f"/invoices/{s.invoice()}/converttoopen", None),
    "writeoff_nothing_due": lambda s: ("POST", f"/invoices/{_paid(s)}/writeoff", None),
    "writeoff_none": lambda s: ("POST", f"/invoices/{s.invoice()}/cancelwriteoff", None),
    "payment_to_closed_invoice": lambda s: (
        "POST",
        "/payments",
        {
            "customer_id": s.cid,
            "payment_mode": "cash",
            "amount": 5,
            "invoices": [{"invoice_id": s.void(s.invoice()), "amount_applied": 5}],
        },
    ),
    "credit_to_closed_invoice": lambda s: (
        "POST",
        f"/creditnotes/{s.note()}/invoices",
        _credit(s.void(s.invoice()), 5),
    ),
    "payment_exceeds_balance": lambda s: (
        "POST",
        "/payments",
        {
            "customer_id": s.cid,
            "payment_mode": "cash",
            "amount": 500,
            "invoices": [{"invoice_id": s.invoice(), "amount_applied": 115.01}],
        },
    ),
    "applied_exceeds_payment": lambda s: (
        "POST",
        "/payments",
        {
            "customer_id": s.cid,
            "payment_mode": "cash",
            "amount": 10,
            "invoices": [{"invoice_id": s.invoice(), "amount_applied": 20}],
        },
    ),
    "refund_exceeds_creditnote": lambda s: ("POST", f"/creditnotes/{s.note()}/refunds", {"amount": 46.01}),
    "refund_exceeds_payment": lambda s: ("POST", f"/payments/{s.pay(s.invoice())}/refunds", {"amount": 115.01}),
    "credit_exceeds_creditnote": lambda s: (
        "POST",
        f"/creditnotes/{s.note()}/invoices",
        _credit(s.invoice(1000), 46.01),
    ),
    "credit_exceeds_balance": lambda s: (
        "POST",
        f"/invoices/{s.invoice(10)}/credits",
        {"apply_creditnotes": [{"creditnote_id": s.note(), "amount_applied": 11.51}]},
    ),
    "creditnote_not_open": lambda s: ("POST", f"/creditnotes/{_void_note(s)}/invoices", _credit(s.invoice(), 1)),
    "payment_delete_refunded": lambda s: ("DELETE", f"/payments/{_refunded_payment(s)}", None),
    "creditnote_already_void": lambda s: ("POST", f"/creditnotes/{_void_note(s)}/void", None),
    "creditnote_not_void": lambda s: ("POST", f"/creditnotes/{s.note()}/converttoopen", None),
    "creditnote_delete_used": lambda s: ("DELETE", f"/creditnotes/{_used_note(s)}", None),
}


def _paid(s):
    invoice = s.invoice()
    s.pay(invoice)
    return invoice


def _paid_invoice_put(s, **change):
    body = {"invoice_items": [{"product_id": s.pid, "price": 100, "tax_id": VAT}], **change}
    return "PUT", f"/invoices/{_paid(s)}", body


def _void_note(s):
    note = s.note()
    s.api.ok("POST", f"/creditnotes/{note}/void")
    return note


def _refunded_payment(s):
    payment = s.pay(s.invoice())
    s.api.ok("POST", f"/payments/{payment}/refunds", {"amount": 5})
    return payment


def _used_note(s):
    note = s.note()
    s.api.ok("POST", f"/creditnotes/{note}/invoices", _credit(s.invoice(), 5))
    return note


def _state(handle) -> str:
    """Every document the API shows (not the id and number counters, which a refused create may advance)."""
    data = handle.store.to_dict()
    for counter in ("tokens", "mints", "next_id", "seq"):
        data.pop(counter)
    return json.dumps(data, sort_keys=True)


def test_every_refusal_has_a_case():
    assert set(CASES) == set(REFUSALS)
    codes = [r.code for r in REFUSALS.values()]
    assert len(codes) == len(set(codes)), "one code per refusal"


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_answers_its_code_and_changes_nothing(name):
    with emu(start_time="2025-01-10T08:00:00Z") as h:
        s = Setup(h)
        method, path, body = CASES[name](s)
        before = _state(h)
        status, answer = s.api.call(method, path, body)
        assert (status, answer["code"]) == (400, REFUSALS[name].code), answer
        assert "{" not in answer["message"], answer  # every field of the message filled
        assert _state(h) == before


def test_docs_name_every_code():
    text = DOCS.read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", text, flags=re.M))
    assert documented == {name: str(r.code) for name, r in REFUSALS.items()}


# faults reach the new writes ------------------------------------------------------------------------------------

# (setup) -> (method, path, body, check that it was done)
WRITES = {
    "refund": lambda s: _then(
        ("POST", f"/payments/{s.pay(s.invoice())}/refunds", {"amount": 5}), lambda: s.h.store.refunds
    ),
    "cancel": lambda s: _sub_then(s, "POST", "/cancel?cancel_at_end=true", None, "non_renewing"),
    "postpone": lambda s: _sub_then(
        s, "POST", "/postpone", {"renewal_at": "2025-03-01"}, "live", lambda sub: sub["next_billing_at"] == "2025-03-01"
    ),
    "end_of_term_put": lambda s: _sub_then(
        s,
        "PUT",
        "",
        {"plan": {"plan_code": "fibre-50", "price": 1}, "end_of_term": True},
        "live",
        lambda sub: s.h.store.schedule[sub["subscription_id"]].get("change"),
    ),
    "credits": lambda s: _then(
        (
            "POST",
            f"/invoices/{s.invoice()}/credits",
            {"apply_creditnotes": [{"creditnote_id": s.note(), "amount_applied": 5}]},
        ),
        lambda: any(i["credits"] for i in s.h.store.invoices.values()),
    ),
    "writeoff": lambda s: _then(
        ("POST", f"/invoices/{s.invoice()}/writeoff", None),
        lambda: any(i["write_off_amount"] for i in s.h.store.invoices.values()),
    ),
    "delete_payment": lambda s: _then(
        ("DELETE", f"/payments/{s.pay(s.invoice())}", None), lambda: not s.h.store.payments
    ),
}


def _then(call, done):
    return (*call, done)


def _sub_then(s, method, suffix, body, status, extra=lambda sub: True):
    sid = s.sub()
    sub = s.h.store.subscriptions[sid]
    return method, f"/subscriptions/{sid}{suffix}", body, lambda: sub["status"] == status and extra(sub)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_new_write_acts_then_loses_its_answer_or_fails_without_acting(name):
    with emu(start_time="2025-01-10T08:00:00Z") as h:
        s = Setup(h)
        method, path, body, done = WRITES[name](s)
        h.set_faults(fail_rate=1.0)
        assert s.api.call(method, path, body)[0] == 500
        assert not done()
        h.set_faults(fail_rate=0.0, drop_rate=1.0)
        with pytest.raises(requests.ConnectionError):
            s.api.call(method, path, body)
        assert done(), "a dropped write is done in ZOHO"
