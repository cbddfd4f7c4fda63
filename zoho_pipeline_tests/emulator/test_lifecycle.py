"""Subscription and customer lifecycle over real HTTP: immediate changes with and without Prorated Billing,
backdated starts, postpone, reactivate, scheduled changes dropped, cancel now, and a customer marked inactive."""

from __future__ import annotations

import pytest

from zoho_pipeline_tests.emulator.accounts import VAT, Api, catalog, customer, emu


class World:
    def __init__(self, handle):
        self.h, self.api = handle, Api(handle)
        catalog(self.api)
        self.cid = customer(self.api, "z@example.co.za")

    def subscribe(self, starts_at="2025-01-01", code="fibre-50", **extra):
        body = {"customer_id": self.cid, "plan": {"plan_code": code, "tax_id": VAT}, "starts_at": starts_at, **extra}
        return self.api.ok("POST", "/subscriptions", body)["subscription"]

    def get(self, sid):
        return self.api.ok("GET", f"/subscriptions/{sid}")["subscription"]

    def invoices(self, sid):
        return self.api.ok("GET", "/invoices", subscription_id=sid)["invoices"]

    def notes(self):
        return self.api.ok("GET", "/creditnotes", customer_id=self.cid)["creditnotes"]


@pytest.fixture
def world():
    with emu(start_time="2025-01-01T08:00:00Z") as handle:
        yield World(handle)


@pytest.fixture
def prorating():
    with emu(start_time="2025-01-01T08:00:00Z", prorate=True) as handle:
        yield World(handle)


def test_an_immediate_change_without_proration_reprices_and_raises_nothing(world):
    sub = world.subscribe()
    world.h.move_clock(now="2025-01-16T08:00:00Z")
    out = world.api.ok(
        "PUT",
        f"/subscriptions/{sub['subscription_id']}",
        {"plan": {"plan_code": "fibre-100", "tax_id": VAT}, "end_of_term": False},
    )["subscription"]
    assert (out["plan"]["plan_code"], out["amount"], out["child_invoice_id"]) == (
        "fibre-100",
        800.0,
        sub["child_invoice_id"],
    )
    assert len(world.invoices(sub["subscription_id"])) == 1 and world.notes() == []
    world.h.move_clock(now="2025-02-01T08:00:00Z")
    assert [i["total"] for i in world.invoices(sub["subscription_id"])] == [575.0, 920.0]


def test_with_proration_an_upgrade_invoices_and_a_downgrade_credits_the_rest_of_the_term(prorating):
    w = prorating
    sub = w.subscribe()  # term 2025-01-01 .. 2025-02-01: 31 days
    sid = sub["subscription_id"]
    w.h.move_clock(now="2025-01-17T08:00:00Z")  # 15 days left
    w.api.ok("PUT", f"/subscriptions/{sid}", {"plan": {"plan_code": "fibre-100", "tax_id": VAT}, "end_of_term": False})
    upgrade = w.api.ok("GET", f"/invoices/{w.get(sid)['child_invoice_id']}")["invoice"]
    # (800 - 500) * 15 / 31 = 145.16, + 15 % VAT 21.77
    assert (upgrade["transaction_type"], upgrade["date"], upgrade["sub_total"], upgrade["total"]) == (
        "upgrade",
        "2025-01-17",
        145.16,
        166.93,
    )
    assert upgrade["subscription_id"] == sid
    w.api.ok("PUT", f"/subscriptions/{sid}", {"plan": {"plan_code": "fibre-50", "tax_id": VAT}, "end_of_term": False})
    (note,) = w.notes()
    assert (note["total"], note["status"], note["date"]) == (166.93, "open", "2025-01-17")
    customer = w.api.ok("GET", f"/customers/{w.cid}")["customer"]
    assert (customer["outstanding_receivable_amount"], customer["unused_credits"]) == (741.93, 166.93)
    # an end-of-term change raises nothing now, even with proration on
    w.api.ok("PUT", f"/subscriptions/{sid}", {"plan": {"plan_code": "fibre-100", "tax_id": VAT}, "end_of_term": True})
    assert len(w.invoices(sid)) == 2 and len(w.notes()) == 1


def test_backdated_start_invoices_the_current_term_only_when_asked(world):
    plain = world.subscribe(starts_at="2024-10-20")
    assert (plain["status"], plain["child_invoice_id"], plain["activated_at"]) == ("live", "", "2024-10-20")
    assert (plain["current_term_starts_at"], plain["current_term_ends_at"]) == ("2024-12-20", "2025-01-20")
    assert world.invoices(plain["subscription_id"]) == []
    asked = world.subscribe(starts_at="2024-10-20", create_backdated_invoice=True)
    (inv,) = world.invoices(asked["subscription_id"])
    assert (inv["invoice_date"], inv["total"], inv["status"]) == ("2024-12-20", 575.0, "overdue")
    world.h.move_clock(now="2025-01-20T00:00:00Z")
    assert [i["invoice_date"] for i in world.invoices(plain["subscription_id"])] == ["2025-01-20"]


def test_a_month_end_start_bills_on_the_last_day_of_short_months():
    with emu(start_time="2025-01-31T08:00:00Z") as h:
        w = World(h)
        sid = w.subscribe(starts_at="2025-01-31")["subscription_id"]
        h.move_clock(now="2025-04-01T08:00:00Z")
        assert [i["invoice_date"] for i in w.invoices(sid)] == ["2025-01-31", "2025-02-28", "2025-03-31"]


def test_postpone_moves_the_renewal_later_only(world):
    sid = world.subscribe()["subscription_id"]
    out = world.api.ok("POST", f"/subscriptions/{sid}/postpone", {"renewal_at": "2025-02-10"})
    assert out["message"] == "Billing date of the subscription has been changed."
    assert (out["subscription"]["next_billing_at"], out["subscription"]["current_term_ends_at"]) == (
        "2025-02-10",
        "2025-02-10",
    )
    status, body = world.api.call("POST", f"/subscriptions/{sid}/postpone", {"renewal_at": "2025-02-05"})
    assert (status, body["code"]) == (400, 1008)
    world.h.move_clock(now="2025-03-15T08:00:00Z")
    assert [i["invoice_date"] for i in world.invoices(sid)] == ["2025-01-01", "2025-02-10", "2025-03-10"]


def test_reactivate_a_non_renewing_subscription_keeps_it_renewing(world):
    sid = world.subscribe()["subscription_id"]
    world.api.ok("POST", f"/subscriptions/{sid}/cancel", {"cancel_at_end": True})  # PY sends it in the body
    assert world.get(sid)["status"] == "non_renewing"
    live = world.api.ok("POST", f"/subscriptions/{sid}/reactivate")["subscription"]
    assert (live["status"], live["expires_at"], live["next_billing_at"]) == ("live", "", "2025-02-01")
    world.h.move_clock(now="2025-02-02T08:00:00Z")
    assert world.get(sid)["status"] == "live" and len(world.invoices(sid)) == 2


def test_dropped_scheduled_change_is_not_applied(world):
    sid = world.subscribe()["subscription_id"]
    world.api.ok("PUT", f"/subscriptions/{sid}", {"plan": {"plan_code": "fibre-100"}, "end_of_term": True})
    world.api.ok("DELETE", f"/subscriptions/{sid}/scheduledchanges")
    world.h.move_clock(now="2025-02-02T08:00:00Z")
    assert [i["total"] for i in world.invoices(sid)] == [575.0, 575.0]


def test_cancel_now_and_a_future_subscription_cancelled_at_end(world):
    sid = world.subscribe()["subscription_id"]
    world.h.move_clock(now="2025-01-10T08:00:00Z")
    out = world.api.ok("POST", f"/subscriptions/{sid}/cancel?cancel_at_end=false")["subscription"]
    assert (out["status"], out["cancelled_at"], out["next_billing_at"]) == ("cancelled", "2025-01-10", "")
    future = world.subscribe(starts_at="2025-03-01")["subscription_id"]
    assert world.api.ok("POST", f"/subscriptions/{future}/cancel?cancel_at_end=true")["subscription"]["status"] == (
        "cancelled"
    )  # a term that never started has no end to wait for
    world.h.move_clock(now="2025-04-01T08:00:00Z")
    assert len(world.invoices(sid)) == 1 and world.invoices(future) == []


def test_a_customer_is_marked_inactive_only_once_nothing_runs(world):
    sid = world.subscribe()["subscription_id"]
    world.api.ok("POST", f"/subscriptions/{sid}/cancel?cancel_at_end=true")
    status, body = world.api.call("POST", f"/customers/{world.cid}/markasinactive")
    assert (status, body["code"]) == (400, 3009) and "non_renewing" in body["message"]
    world.h.move_clock(now="2025-02-01T08:00:00Z")  # the term ends: cancelled
    assert world.api.ok("POST", f"/customers/{world.cid}/markasinactive")["message"] == (
        "The customer has been marked as inactive."
    )
    other = world.api.ok("POST", "/customers", {"display_name": "Y", "email": "y@example.co.za"})["customer"]
    inactive = world.api.ok("GET", "/customers", filter_by="Status.Inactive")["customers"]
    active = world.api.ok("GET", "/customers", filter_by="Status.Active")["customers"]
    assert [c["customer_id"] for c in inactive] == [world.cid]
    assert [c["customer_id"] for c in active] == [other["customer_id"]]
    assert inactive[0]["outstanding_receivable_amount"] == 575.0  # the first term's invoice is still owed
