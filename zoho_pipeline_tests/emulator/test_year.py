"""A year of one account, driven by ZOHO's clock over real HTTP: the invoices ZOHO raises from two subscriptions,
their amounts, links and statuses, an end-of-term plan change, a cancel at the end of the term, payments, two
refunds (ZOHO's credit-note route, and detach-then-refund), a void, and the customer's two balances throughout."""

from __future__ import annotations

import pytest

from zoho_pipeline_tests.emulator.accounts import VAT, Api, catalog, customer, emu

START = "2025-01-01T08:00:00Z"


class Account:
    """One customer (payment terms 7 days) on the emulator, with the calls the story needs."""

    def __init__(self, handle):
        self.h, self.api = handle, Api(handle)
        catalog(self.api)
        self.cid = customer(self.api, payment_terms=7)

    def subscribe(self, code, price, starts_at, ref):
        return self.api.ok(
            "POST",
            "/subscriptions",
            {
                "customer_id": self.cid,
                "plan": {"plan_code": code, "price": price, "tax_id": VAT},
                "starts_at": starts_at,
                "reference_id": ref,
                "auto_collect": False,
            },
        )["subscription"]

    def to(self, now):
        return self.h.move_clock(now=now)

    def invoices(self, sid, **params):
        return self.api.ok("GET", "/invoices", subscription_id=sid, **params)["invoices"]

    def invoice(self, iid):
        return self.api.ok("GET", f"/invoices/{iid}")["invoice"]

    def pay(self, amount, applied, ref):
        return self.api.ok(
            "POST",
            "/payments",
            {
                "customer_id": self.cid,
                "payment_mode": "banktransfer",
                "amount": amount,
                "reference_number": ref,
                "invoices": [{"invoice_id": i, "amount_applied": a} for i, a in applied],
            },
        )["payment"]

    def balances(self):
        """(receivable, unused credits) from the detail, checked equal to the list row."""
        detail = self.api.ok("GET", f"/customers/{self.cid}")["customer"]
        row = self.api.ok("GET", "/customers", filter_by="Status.Active")["customers"][0]
        pair = (detail["outstanding_receivable_amount"], detail["unused_credits"])
        assert (row["outstanding_receivable_amount"], row["unused_credits"]) == pair
        return pair


@pytest.fixture
def account():
    with emu(start_time=START) as handle:
        yield Account(handle)


def test_a_year_of_one_account(account):
    a = account
    fibre = a.subscribe("fibre-50", 500, "2025-01-01", "svc-1")  # starts today: invoiced at once
    later = a.subscribe("fibre-100", 300, "2025-03-10", "svc-2")  # future
    assert (fibre["status"], later["status"], later["child_invoice_id"]) == ("live", "future", "")
    (first,) = a.invoices(fibre["subscription_id"])
    assert fibre["child_invoice_id"] == first["invoice_id"]
    assert (first["invoice_date"], first["due_date"], first["total"], first["status"]) == (
        "2025-01-01",
        "2025-01-08",
        575.0,
        "sent",
    )
    detail = a.invoice(first["invoice_id"])
    assert detail["subscriptions"][0]["subscription_id"] == fibre["subscription_id"]
    assert (detail["subscription_id"], detail["transaction_type"]) == (fibre["subscription_id"], "new")
    assert (detail["sub_total"], detail["tax_total"], detail["invoice_items"][0]["code"]) == (500.0, 75.0, "fibre-50")
    assert a.balances() == (575.0, 0.0)

    a.to("2025-01-05T09:00:00Z")
    a.pay(575, [(first["invoice_id"], 575)], "PAY-1")
    assert a.balances() == (0.0, 0.0)

    # February: renewed on the 1st, overdue after the 8th; paid with 25 over, which is credit
    done = a.to("2025-02-10T09:00:00Z")["done"]
    assert done == {"renewed": 1, "invoices_raised": 1, "overdue": 1}
    feb = a.invoices(fibre["subscription_id"], filter_by="Status.OverDue")
    assert [(i["invoice_date"], i["due_date"], i["total"]) for i in feb] == [("2025-02-01", "2025-02-08", 575.0)]
    assert a.invoice(feb[0]["invoice_id"])["transaction_type"] == "renewal"
    assert a.balances() == (575.0, 0.0)
    extra = a.pay(600, [(feb[0]["invoice_id"], 575)], "PAY-2")
    assert (extra["unused_amount"], a.balances()) == (25.0, (0.0, 25.0))

    # an upgrade at the end of the term: visible as scheduled, applied by the March renewal
    a.to("2025-02-15T09:00:00Z")
    put = a.api.ok(
        "PUT",
        f"/subscriptions/{fibre['subscription_id']}",
        {"plan": {"plan_code": "fibre-100", "price": 800, "tax_id": VAT}, "end_of_term": True},
    )
    assert (put["subscription"]["plan"]["plan_code"], put["subscription"]["amount"]) == ("fibre-50", 500.0)
    scheduled = a.api.ok("GET", f"/subscriptions/{fibre['subscription_id']}/scheduledchanges")["subscription"]
    assert (scheduled["plan"]["plan_code"], scheduled["amount"]) == ("fibre-100", 800.0)
    a.to("2025-03-05T09:00:00Z")
    mar = a.invoice(a.api.ok("GET", f"/subscriptions/{fibre['subscription_id']}")["subscription"]["child_invoice_id"])
    assert (mar["date"], mar["total"], mar["invoice_items"][0]["code"]) == ("2025-03-01", 920.0, "fibre-100")
    status, body = a.api.call("GET", f"/subscriptions/{fibre['subscription_id']}/scheduledchanges")
    assert (status, body["code"]) == (400, 1009)
    # the 25 of credit moves onto March: part paid, so it stays partially_paid past its due date
    a.api.ok(
        "PUT",
        f"/payments/{extra['payment_id']}",
        {
            "invoices": [
                {"invoice_id": feb[0]["invoice_id"], "amount_applied": 575},
                {"invoice_id": mar["invoice_id"], "amount_applied": 25},
            ]
        },
    )
    assert a.balances() == (895.0, 0.0)

    # the future subscription goes live on its day with its first invoice; then it is cancelled at the term's end
    a.to("2025-03-10T09:00:00Z")
    later = a.api.ok("GET", f"/subscriptions/{later['subscription_id']}")["subscription"]
    (b1,) = a.invoices(later["subscription_id"])
    assert (later["status"], later["child_invoice_id"], later["current_term_ends_at"]) == (
        "live",
        b1["invoice_id"],
        "2025-04-10",
    )
    assert (b1["invoice_date"], b1["due_date"], b1["total"]) == ("2025-03-10", "2025-03-17", 345.0)
    assert a.invoice(mar["invoice_id"])["status"] == "partially_paid"
    assert a.balances() == (1240.0, 0.0)
    a.to("2025-03-12T09:00:00Z")
    cancel = a.api.ok("POST", f"/subscriptions/{later['subscription_id']}/cancel?cancel_at_end=true")["subscription"]
    assert (cancel["status"], cancel["expires_at"]) == ("non_renewing", "2025-04-10")
    a.to("2025-04-15T09:00:00Z")
    later = a.api.ok("GET", f"/subscriptions/{later['subscription_id']}")["subscription"]
    assert (later["status"], later["cancelled_at"], later["next_billing_at"]) == ("cancelled", "2025-04-10", "")
    assert len(a.invoices(later["subscription_id"])) == 1  # no invoice after the term it was cancelled in
    apr = [i for i in a.invoices(fibre["subscription_id"]) if i["invoice_date"] == "2025-04-01"]
    assert [(i["total"], i["status"]) for i in apr] == [(920.0, "overdue")]
    assert a.balances() == (895.0 + 345.0 + 920.0, 0.0)
    big = a.pay(2160, [(mar["invoice_id"], 895), (b1["invoice_id"], 345), (apr[0]["invoice_id"], 920)], "PAY-3")
    assert a.balances() == (0.0, 0.0)

    # ZOHO's refund route on a payment that is fully applied: a credit note is raised and refunded; the invoices it
    # paid stay paid, so neither balance moves
    refund = a.api.ok("POST", f"/payments/{big['payment_id']}/refunds", {"amount": 50, "description": "goodwill"})
    note = a.api.ok("GET", f"/creditnotes/{refund['refund']['creditnote']['creditnote_id']}")["creditnote"]
    assert (note["total"], note["balance"], note["status"]) == (50.0, 0.0, "closed")
    assert a.api.ok("GET", f"/payments/{big['payment_id']}")["payment"]["amount_refunded"] == 50.0
    assert a.balances() == (0.0, 0.0)

    # May is paid, then the payment is refunded in full the way the source sees it: detached, then refunded, so
    # the May invoice is owed again
    a.to("2025-05-03T09:00:00Z")
    may = [i for i in a.invoices(fibre["subscription_id"]) if i["invoice_date"] == "2025-05-01"][0]
    pay4 = a.pay(920, [(may["invoice_id"], 920)], "PAY-4")
    assert a.balances() == (0.0, 0.0)
    a.api.ok("PUT", f"/payments/{pay4['payment_id']}", {"invoices": []})
    assert a.balances() == (920.0, 920.0)
    a.api.ok("POST", f"/payments/{pay4['payment_id']}/refunds", {"amount": 920, "reference_number": "RF-4"})
    listed = a.api.ok("GET", f"/payments/{pay4['payment_id']}/refunds")["payment_refunds"]
    assert [(r["amount"], r["reference_number"]) for r in listed] == [(920.0, "RF-4")]
    assert a.balances() == (920.0, 0.0)
    assert a.invoice(may["invoice_id"])["status"] == "sent"

    # June renews; the refunded May invoice is voided (the provider cancelled it)
    a.to("2025-06-02T09:00:00Z")
    assert a.balances() == (1840.0, 0.0)
    a.api.ok("POST", f"/invoices/{may['invoice_id']}/void")
    assert a.balances() == (920.0, 0.0)

    # to the end of the year: one renewal a month, each unpaid one overdue after its due date
    done = a.to("2026-01-01T08:00:00Z")["done"]
    assert done == {"renewed": 7, "invoices_raised": 7, "overdue": 7}
    rows = a.invoices(fibre["subscription_id"])
    months = [f"2025-{m:02d}-01" for m in range(1, 13)] + ["2026-01-01"]
    assert [r["invoice_date"] for r in rows] == months
    assert [r["total"] for r in rows] == [575.0, 575.0] + [920.0] * 11
    assert {r["subscription_id"] for r in rows} == {fibre["subscription_id"]}
    assert [r["status"] for r in rows] == ["paid"] * 4 + ["void"] + ["overdue"] * 7 + ["sent"]
    fibre = a.api.ok("GET", f"/subscriptions/{fibre['subscription_id']}")["subscription"]
    assert fibre["child_invoice_id"] == rows[-1]["invoice_id"]
    assert (
        fibre["current_term_starts_at"],
        fibre["current_term_ends_at"],
        fibre["next_billing_at"],
        fibre["last_billing_at"],
    ) == ("2026-01-01", "2026-02-01", "2026-02-01", "2026-01-01")
    unpaid = a.api.ok("GET", "/invoices", customer_id=a.cid, filter_by="Status.Unpaid")["invoices"]
    assert len(unpaid) == 8 and sum(i["balance"] for i in unpaid) == 8 * 920.0
    assert a.balances() == (7360.0, 0.0)
    assert len(a.api.ok("GET", "/invoices", customer_id=a.cid)["invoices"]) == 14  # 13 + the cancelled one's
