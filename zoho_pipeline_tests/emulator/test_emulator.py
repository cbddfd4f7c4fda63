"""The ZOHO Billing emulator over real HTTP: OAuth, auth, resources, money, lists, limits, faults, state, admin."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from zoho_pipeline.emulator.server import EmulatorConfig, start_emulator
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS

VAT = "187955000000000435"


class Api:
    """A tiny client: mints one token, sends ZOHO's headers, returns (status, json)."""

    def __init__(self, handle, org=None):
        self.h = handle
        self.s = requests.Session()
        self.org = org or handle.config.organization_id
        self.token = mint(handle).json()["access_token"]

    def headers(self):
        return {"Authorization": f"Zoho-oauthtoken {self.token}", "X-com-zoho-subscriptions-organizationid": self.org}

    def call(self, method, path, body=None, **params):
        r = self.s.request(
            method,
            f"{self.h.url}/billing/v1{path}",
            json=body,
            params=params or None,
            headers=self.headers(),
            timeout=10,
        )
        return r.status_code, r.json()

    def ok(self, method, path, body=None, **params):
        status, data = self.call(method, path, body, **params)
        assert status in (200, 201) and data["code"] == 0, (status, data)
        return data


def mint(handle, **overrides):
    form = dict(
        grant_type="refresh_token",
        client_id=handle.config.client_id,
        client_secret=handle.config.client_secret,
        refresh_token=handle.config.refresh_token,
    )
    form.update(overrides)
    return requests.post(f"{handle.url}/oauth/v2/token", data=form, timeout=10)


def emu(**kw):
    base = dict(
        host="127.0.0.1",
        port=0,
        rate_limit_per_minute=100_000,
        daily_limit=10_000_000,
        max_concurrency=64,
        seed=7,
        **TEST_CREDENTIALS,
    )
    base.update(kw)
    return start_emulator(EmulatorConfig(**base))


@pytest.fixture
def api(emulator):
    return Api(emulator)


def make_catalog(api, code="fibre-100", price=599, tax_id=None):
    product = api.ok("POST", "/products", {"name": f"Fibre {code}"})["product"]
    body = {
        "plan_code": code,
        "name": "Fibre 100",
        "recurring_price": price,
        "interval": 1,
        "product_id": product["product_id"],
    }
    if tax_id:
        body["tax_id"] = tax_id
    plan = api.ok("POST", "/plans", body)["plan"]
    return product, plan


def make_customer(api, email="thabo@example.co.za", **extra):
    return api.ok("POST", "/customers", {"display_name": "Thabo M", "email": email, **extra})["customer"]


def make_invoice(api, customer, product, items=None, **extra):
    items = items or [
        {"product_id": product["product_id"], "name": "Install", "price": 100, "quantity": 1, "tax_id": VAT}
    ]
    body = {
        "customer_id": customer["customer_id"],
        "date": "2024-03-01",
        "due_date": "2024-03-15",
        "invoice_items": items,
        **extra,
    }
    return api.ok("POST", "/invoices", body)["invoice"]


# OAuth and auth -----------------------------------------------------------------------------------------------------


def test_token_grant_success_and_errors(emulator):
    r = mint(emulator)
    body = r.json()
    assert r.status_code == 200 and body["access_token"].startswith("1000.")
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer" and body["api_domain"] == emulator.url
    assert mint(emulator, refresh_token="1000.nope").json() == {"error": "invalid_code"}
    assert mint(emulator, refresh_token="1000.nope").status_code == 200
    assert mint(emulator, client_secret="wrong").json() == {"error": "invalid_client"}
    assert mint(emulator, client_id="wrong").json() == {"error": "invalid_client"}
    # the query string works as well as a form body
    q = requests.post(
        f"{emulator.url}/oauth/v2/token",
        timeout=5,
        params=dict(
            grant_type="refresh_token",
            refresh_token=emulator.config.refresh_token,
            client_id=emulator.config.client_id,
            client_secret=emulator.config.client_secret,
        ),
    )
    assert "access_token" in q.json()
    assert emulator.stats()["tokens_minted"] == 2


def test_token_mint_limit_per_refresh_token():
    with emu() as h:
        for _ in range(10):
            assert "access_token" in mint(h).json()
        r = mint(h)
        assert r.status_code == 400 and r.json()["error"] == "Access Denied"
        assert "too many requests" in r.json()["error_description"]
    with emu(token_mint_limit=2, token_mint_window_s=0.3) as h:
        assert "access_token" in mint(h).json() and "access_token" in mint(h).json()
        assert mint(h).status_code == 400
        time.sleep(0.35)
        assert "access_token" in mint(h).json()


def test_auth_failures(emulator, api):
    url = f"{emulator.url}/billing/v1/customers"
    org = {"X-com-zoho-subscriptions-organizationid": emulator.config.organization_id}
    r = requests.get(url, headers=org, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == 57
    r = requests.get(url, headers={**org, "Authorization": "Zoho-oauthtoken 1000.bogus"}, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == 57
    r = requests.get(url, headers={"Authorization": f"Zoho-oauthtoken {api.token}"}, timeout=5)
    assert r.status_code == 400 and r.json()["code"] == 6041
    r = requests.get(
        url,
        headers={"Authorization": f"Zoho-oauthtoken {api.token}", "X-com-zoho-subscriptions-organizationid": "999"},
        timeout=5,
    )
    assert r.status_code in (401, 403) and r.json()["code"] == 57
    assert api.call("GET", "/customers")[0] == 200


def test_expired_token_is_401():
    with emu(early_token_expiry_s=0.2) as h:
        api = Api(h)
        assert mint(h).json()["expires_in"] == 3600  # what the client is told ...
        assert api.call("GET", "/customers")[0] == 200
        time.sleep(0.3)  # ... and what really happens
        status, body = api.call("GET", "/customers")
        assert status == 401 and body["code"] in (14, 57)


def test_a_token_dies_after_its_uses():
    """token_max_uses: a token's death set by the calls it served, not by the time (the fault suite's token test)."""
    with emu(token_max_uses=2) as h:
        api = Api(h)
        assert [api.call("GET", "/customers")[0] for _ in range(2)] == [200, 200]
        status, body = api.call("GET", "/customers")
        assert status == 401 and body["code"] == 14
        fresh = Api(h)  # a new token has its own uses
        assert fresh.call("GET", "/customers")[0] == 200
        h.set_faults(token_max_uses=1)  # read at each check: a token already used once is spent now
        assert fresh.call("GET", "/customers")[0] == 401
        h.set_faults(token_max_uses=None)
        assert api.call("GET", "/customers")[0] == 200


def test_unknown_route_and_bad_json(emulator, api):
    assert api.call("GET", "/nothing/here") == (404, {"code": 5, "message": "Invalid URL Passed"})
    r = api.s.post(
        f"{emulator.url}/billing/v1/customers",
        data="{not json",
        headers={**api.headers(), "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400 and r.json()["code"] == 1038


# resources ------------------------------------------------------------------------------------------------------------


def test_organizations_and_taxes(api, emulator):
    orgs = api.ok("GET", "/organizations")["organizations"]
    assert orgs[0]["organization_id"] == emulator.config.organization_id
    tax = api.ok("GET", "/settings/taxes")["taxes"][0]
    assert tax["tax_name"] == "VAT" and tax["tax_percentage"] == 15 and tax["is_default_tax"] is True


def test_products_crud(api):
    status, data = api.call("POST", "/products", {"name": "Fibre"})
    assert status == 201 and data["message"]
    pid = data["product"]["product_id"]
    assert pid.isdigit()
    assert api.call("POST", "/products", {"description": "no name"})[0] == 400
    assert api.ok("PUT", f"/products/{pid}", {"name": "Fibre Home"})["product"]["name"] == "Fibre Home"
    api.ok("POST", f"/products/{pid}/markasinactive")
    assert api.ok("GET", f"/products/{pid}")["product"]["status"] == "inactive"
    api.ok("POST", f"/products/{pid}/markasactive")
    assert [p["product_id"] for p in api.ok("GET", "/products")["products"]] == [pid]
    api.ok("DELETE", f"/products/{pid}")
    assert api.call("GET", f"/products/{pid}") == (400, {"code": 2006, "message": "Invalid Product ID."})


def test_plans_crud_and_errors(api):
    product, plan = make_catalog(api, tax_id=VAT)
    assert plan["tax_id"] == VAT and plan["interval_unit"] == "months" and plan["status"] == "active"
    status, data = api.call(
        "POST",
        "/plans",
        {
            "plan_code": "fibre-100",
            "name": "x",
            "recurring_price": 1,
            "interval": 1,
            "product_id": product["product_id"],
        },
    )
    assert status == 400 and data["code"] != 0 and data["message"] == "The plan code already exists."
    status, data = api.call(
        "POST", "/plans", {"plan_code": "p2", "name": "x", "recurring_price": 1, "interval": 1, "product_id": "123"}
    )
    assert (status, data["code"]) == (400, 2006)
    assert api.call("GET", "/plans/nope") == (400, {"code": 101002, "message": "Invalid PlanCode."})
    assert api.ok("PUT", "/plans/fibre-100", {"recurring_price": 649})["plan"]["recurring_price"] == 649
    api.ok("POST", "/plans/fibre-100/markasinactive")
    assert api.ok("GET", "/plans", filter_by="PlanStatus.ACTIVE")["plans"] == []
    assert len(api.ok("GET", "/plans", filter_by="PlanStatus.INACTIVE")["plans"]) == 1
    assert len(api.ok("GET", "/plans", product_id=product["product_id"])["plans"]) == 1
    api.ok("DELETE", "/plans/fibre-100")
    assert api.call("GET", "/plans/fibre-100")[1]["code"] == 101002


def test_customers_crud_filters_and_errors(api, emulator):
    c = make_customer(
        api,
        first_name="Thabo",
        last_name="M",
        company_name="ISP",
        phone="0211234567",
        billing_address={"street": "1 Main", "city": "Cape Town", "zip": "8001", "country": "ZA"},
        custom_fields=[{"label": "provider_id", "value": "C-17"}],
        vat_reg_no="4123",
    )
    assert c["custom_fields"] == [{"index": 1, "value": "C-17", "label": "provider_id", "data_type": "text"}]
    assert c["billing_address"]["city"] == "Cape Town" and c["vat_reg_no"] == "4123"
    make_customer(api, email="other@example.co.za")
    status, data = api.call("POST", "/customers", {"display_name": "X", "email": "not-an-email"})
    assert status == 400 and data["code"] != 0 and "email" in data["message"]
    assert api.call("POST", "/customers", {"email": "a@b.co"})[0] == 400
    found = api.ok("GET", "/customers", email="THABO@example.co.za")["customers"]
    assert [x["customer_id"] for x in found] == [c["customer_id"]]
    updated = api.ok("PUT", f"/customers/{c['customer_id']}", {"display_name": "Thabo Mokoena"})["customer"]
    assert updated["display_name"] == "Thabo Mokoena" and updated["email"] == c["email"]
    assert emulator.store.customers[c["customer_id"]]["display_name"] == "Thabo Mokoena"
    expected = (400, {"code": 3004, "message": "Please enter a valid reference for the customer"})
    assert api.call("GET", "/customers/0") == expected
    api.ok("DELETE", f"/customers/{c['customer_id']}")
    assert api.call("GET", f"/customers/{c['customer_id']}") == expected


def test_duplicate_email_policy():
    with emu(duplicate_email="reject") as h:
        api = Api(h)
        make_customer(api)
        status, data = api.call("POST", "/customers", {"display_name": "Y", "email": "Thabo@example.co.za"})
        assert status == 400 and data["code"] != 0
    with emu() as h:
        api = Api(h)
        make_customer(api)
        make_customer(api)
        assert len(h.store.customers) == 2


def test_paging_page_context(api):
    for i in range(5):
        make_customer(api, email=f"c{i}@example.com")
    first = api.ok("GET", "/customers", per_page=2, page=1)
    assert len(first["customers"]) == 2 and first["page_context"]["has_more_page"] is True
    assert first["page_context"]["page"] == 1 and first["page_context"]["per_page"] == 2
    last = api.ok("GET", "/customers", per_page=2, page=3)
    assert len(last["customers"]) == 1 and last["page_context"]["has_more_page"] is False
    assert api.ok("GET", "/customers", per_page=500)["page_context"]["per_page"] == 200
    emails = [c["email"] for p in (1, 2, 3) for c in api.ok("GET", "/customers", per_page=2, page=p)["customers"]]
    assert emails == [f"c{i}@example.com" for i in range(5)]


def test_invoice_list_sorts_by_the_documented_columns_and_refuses_others(api):
    """invoices.yml's sort_column values and A/D: newest first by date pages the same rows in reverse."""
    product, _ = make_catalog(api)
    customer = make_customer(api)
    days = ["2024-03-01", "2024-01-01", "2024-02-01", "2024-02-01", "2024-04-01"]
    made = [make_invoice(api, customer, product, date=d, due_date=d)["invoice_id"] for d in days]

    default = api.ok("GET", "/invoices")
    assert [i["invoice_id"] for i in default["invoices"]] == made  # creation order, as before
    assert (default["page_context"]["sort_column"], default["page_context"]["sort_order"]) == ("created_time", "A")

    newest = [
        row
        for p in (1, 2, 3)
        for row in api.ok("GET", "/invoices", sort_column="date", sort_order="D", per_page=2, page=p)["invoices"]
    ]
    assert [i["date"] for i in newest] == sorted(days, reverse=True)
    assert [i["invoice_id"] for i in newest][2:4] == [made[2], made[3]]  # a tie keeps creation order
    context = api.ok("GET", "/invoices", sort_column="date", sort_order="D")["page_context"]
    assert (context["sort_column"], context["sort_order"]) == ("date", "D")
    oldest = api.ok("GET", "/invoices", sort_column="date", sort_order="A")["invoices"]
    assert [i["date"] for i in oldest] == sorted(days)

    for params, name in (({"sort_column": "reference_number"}, "sort_column"), ({"sort_order": "desc"}, "sort_order")):
        assert api.call("GET", "/invoices", **params) == (
            400,
            {"code": 4, "message": f"Invalid value passed for {name}"},
        )


def test_subscriptions_lifecycle(api):
    product, plan = make_catalog(api)
    c = make_customer(api)
    status, data = api.call(
        "POST",
        "/subscriptions",
        {
            "customer_id": c["customer_id"],
            "plan": {"plan_code": plan["plan_code"], "price": 499.5, "quantity": 2},
            "reference_id": "svc-000123",
            "starts_at": "2024-01-01",
            "auto_collect": False,
        },
    )
    assert status == 201
    sub = data["subscription"]
    assert sub["status"] == "live" and sub["amount"] == 999.0 and sub["auto_collect"] is False
    sid = sub["subscription_id"]
    future = api.ok(
        "POST",
        "/subscriptions",
        {
            "customer_id": c["customer_id"],
            "plan": {"plan_code": plan["plan_code"]},
            "reference_id": "svc-000999",
            "starts_at": "2999-01-01",
        },
    )["subscription"]
    assert future["status"] == "future" and future["amount"] == 599.0
    assert (
        api.call("POST", "/subscriptions", {"customer_id": c["customer_id"], "plan": {"plan_code": "x"}})[1]["code"]
        == 101002
    )
    assert (
        api.call("POST", "/subscriptions", {"customer_id": "1", "plan": {"plan_code": "fibre-100"}})[1]["code"] == 3004
    )
    assert [
        s["subscription_id"] for s in api.ok("GET", "/subscriptions", reference_contains="000123")["subscriptions"]
    ] == [sid]
    assert len(api.ok("GET", "/subscriptions", customer_id=c["customer_id"])["subscriptions"]) == 2
    assert len(api.ok("GET", "/subscriptions", filter_by="SubscriptionStatus.LIVE")["subscriptions"]) == 1
    upd = api.ok(
        "PUT",
        f"/subscriptions/{sid}",
        {"plan": {"plan_code": plan["plan_code"], "quantity": 3}, "reference_id": "svc-000123b"},
    )["subscription"]
    assert upd["amount"] == 1498.5 and upd["reference_id"] == "svc-000123b"
    assert api.ok("POST", f"/subscriptions/{sid}/cancel?cancel_at_end=true")["subscription"]["status"] == "non_renewing"
    assert api.ok("POST", f"/subscriptions/{sid}/reactivate")["subscription"]["status"] == "live"
    assert api.ok("POST", f"/subscriptions/{sid}/cancel?cancel_at_end=false")["subscription"]["status"] == "cancelled"
    assert len(api.ok("GET", "/subscriptions", filter_by="SubscriptionStatus.CANCELLED")["subscriptions"]) == 1
    # the OAS reactivates only a non-renewing subscription (docs/emulator.md: a cancelled one is refused)
    status, data = api.call("POST", f"/subscriptions/{sid}/reactivate")
    assert (status, data["code"]) == (400, 1004)
    assert api.call("GET", "/subscriptions/0") == (404, {"code": 1002, "message": "Subscription ID does not exist."})


def test_invoice_totals_vat_per_line_to_the_cent(api):
    product, _ = make_catalog(api)
    c = make_customer(api)
    items = [
        {"product_id": product["product_id"], "name": "a", "price": 99.99, "quantity": 3, "tax_id": VAT},
        {"product_id": product["product_id"], "name": "b", "price": 0.1, "quantity": 1, "tax_id": VAT},
        {"product_id": product["product_id"], "name": "c", "price": 33.33, "quantity": 1},
    ]
    inv = make_invoice(api, c, product, items, reference_number="INV-SRC-1")
    # 299.97 * 15% = 44.9955 -> 45.00 ; 0.10 * 15% = 0.015 -> 0.02 ; untaxed line
    assert [i["item_total"] for i in inv["invoice_items"]] == [299.97, 0.1, 33.33]
    assert inv["sub_total"] == 333.40 and inv["tax_total"] == 45.02 and inv["total"] == 378.42
    assert inv["balance"] == 378.42 and inv["taxes"] == [{"tax_name": "VAT", "tax_amount": 45.02}]
    assert (
        inv["status"] == "overdue" and inv["invoice_number"] == "INV-000001"
    )  # due 2024-03-15, long past and inv["price_precision"] == 2
    assert make_invoice(api, c, product)["invoice_number"] == "INV-000002"
    bad_product = [{"product_id": "42", "price": 1, "quantity": 1}]
    status, data = api.call("POST", "/invoices", {"customer_id": c["customer_id"], "invoice_items": bad_product})
    assert (status, data["code"]) == (400, 2006)
    bad_tax = [{"product_id": product["product_id"], "price": 1, "quantity": 1, "tax_id": "42"}]
    assert api.call("POST", "/invoices", {"customer_id": c["customer_id"], "invoice_items": bad_tax})[0] == 400
    listed = api.ok("GET", "/invoices", reference_number="INV-SRC-1")["invoices"]
    assert [(i["invoice_id"], i["number"], i["invoice_date"]) for i in listed] == [
        (inv["invoice_id"], "INV-000001", "2024-03-01")
    ]
    assert len(api.ok("GET", "/invoices", customer_id=c["customer_id"])["invoices"]) == 2
    assert api.call("GET", "/invoices/0") == (404, {"code": 1002, "message": "Invoice does not exist."})


def test_payments_move_balances_and_refuse_over_application(api, emulator):
    product, _ = make_catalog(api)
    c = make_customer(api)
    inv = make_invoice(api, c, product)  # 100 + 15 VAT
    iid = inv["invoice_id"]
    status, data = api.call(
        "POST",
        "/payments",
        {
            "customer_id": c["customer_id"],
            "payment_mode": "banktransfer",
            "amount": 50,
            "date": "2024-03-02",
            "reference_number": "PAY-1",
            "invoices": [{"invoice_id": iid, "amount_applied": 50}],
        },
    )
    assert status == 201
    p1 = data["payment"]
    got = api.ok("GET", f"/invoices/{iid}")["invoice"]
    assert (got["status"], got["balance"], got["payment_made"]) == ("partially_paid", 65.0, 50.0)
    status, data = api.call(
        "POST",
        "/payments",
        {
            "customer_id": c["customer_id"],
            "payment_mode": "cash",
            "amount": 100,
            "invoices": [{"invoice_id": iid, "amount_applied": 65.01}],
        },
    )
    assert status == 400 and data["code"] != 0 and "exceeds" in data["message"]
    assert api.ok("GET", f"/invoices/{iid}")["invoice"]["balance"] == 65.0  # nothing moved
    assert (
        api.call("POST", "/payments", {"customer_id": c["customer_id"], "payment_mode": "bitcoin", "amount": 1})[0]
        == 400
    )
    assert (
        api.call(
            "POST",
            "/payments",
            {
                "customer_id": c["customer_id"],
                "payment_mode": "cash",
                "amount": 10,
                "invoices": [{"invoice_id": iid, "amount_applied": 20}],
            },
        )[0]
        == 400
    )
    p2 = api.ok(
        "POST",
        "/payments",
        {
            "customer_id": c["customer_id"],
            "payment_mode": "cash",
            "amount": 80,
            "reference_number": "PAY-2",
            "invoices": [{"invoice_id": iid, "amount_applied": 65}],
        },
    )["payment"]
    got = api.ok("GET", f"/invoices/{iid}")["invoice"]
    assert (got["status"], got["balance"]) == ("paid", 0.0)
    assert api.ok("GET", f"/customers/{c['customer_id']}")["customer"]["unused_credits"] == 15.0
    assert [p["payment_id"] for p in api.ok("GET", "/payments", reference_number="PAY-2")["payments"]] == [
        p2["payment_id"]
    ]
    assert len(api.ok("GET", "/payments", customer_id=c["customer_id"])["payments"]) == 2
    api.ok("PUT", f"/payments/{p1['payment_id']}", {"description": "fixed"})
    assert api.ok("GET", f"/payments/{p1['payment_id']}")["payment"]["description"] == "fixed"
    api.ok("DELETE", f"/payments/{p1['payment_id']}")
    got = api.ok("GET", f"/invoices/{iid}")["invoice"]
    assert (got["status"], got["balance"]) == ("partially_paid", 50.0)
    assert api.call("GET", f"/payments/{p1['payment_id']}")[0] == 404
    # other customer's invoice is refused
    other = make_customer(api, email="x@y.co")
    assert api.call(
        "POST",
        "/payments",
        {
            "customer_id": other["customer_id"],
            "payment_mode": "cash",
            "amount": 1,
            "invoices": [{"invoice_id": iid, "amount_applied": 1}],
        },
    )[0] in (400, 404)
    # void: applied payments become customer credit
    voided = api.ok("POST", f"/invoices/{iid}/void")["invoice"]
    assert voided["status"] == "void"
    assert api.ok("GET", f"/customers/{c['customer_id']}")["customer"]["unused_credits"] == 80.0
    assert api.ok("GET", "/invoices", filter_by="Status.Void")["invoices"][0]["invoice_id"] == iid
    assert emulator.store.payments[p2["payment_id"]]["invoices"] == []


def test_creditnotes_and_refunds(api):
    _, plan = make_catalog(api)
    c = make_customer(api)
    status, data = api.call(
        "POST",
        "/creditnotes",
        {
            "customer_id": c["customer_id"],
            "date": "2024-03-01",
            "creditnote_items": [{"code": plan["plan_code"], "quantity": 1, "price": 100, "tax_id": VAT}],
        },
    )
    assert status == 201
    note = data["creditnote"]
    assert note["total"] == 115.0 and note["status"] == "open" and note["creditnote_number"].startswith("CN-")
    assert api.ok("GET", f"/creditnotes/{note['creditnote_id']}")["creditnote"]["total"] == 115.0
    assert len(api.ok("GET", "/creditnotes")["creditnotes"]) == 1
    status, data = api.call("POST", f"/creditnotes/{note['creditnote_id']}/refunds", {"amount": 15})
    assert status == 201
    rid = data["refund"]["refund_id"]
    assert api.ok("GET", f"/creditnotes/refunds/{rid}")["refund"]["amount"] == 15.0
    assert api.call("POST", f"/creditnotes/{note['creditnote_id']}/refunds", {"amount": 1000})[0] == 400
    assert api.ok("POST", f"/creditnotes/{note['creditnote_id']}/void")["creditnote"]["status"] == "void"
    pay = api.ok("POST", "/payments", {"customer_id": c["customer_id"], "payment_mode": "cash", "amount": 30})[
        "payment"
    ]
    assert api.call("POST", f"/payments/{pay['payment_id']}/refunds", {"amount": 10})[0] == 201
    assert api.ok("GET", f"/payments/{pay['payment_id']}")["payment"]["amount_refunded"] == 10.0


def test_addons_crud(api):
    product, _ = make_catalog(api)
    status, data = api.call(
        "POST",
        "/addons",
        {
            "addon_code": "static-ip",
            "name": "Static IP",
            "product_id": product["product_id"],
            "type": "recurring",
            "price_brackets": [{"price": 50}],
        },
    )
    assert status == 201 and data["addon"]["price_brackets"] == [{"price": 50.0}]
    assert api.ok("PUT", "/addons/static-ip", {"name": "Static IPv4"})["addon"]["name"] == "Static IPv4"
    assert len(api.ok("GET", "/addons")["addons"]) == 1
    api.ok("DELETE", "/addons/static-ip")
    assert api.call("GET", "/addons/static-ip") == (400, {"code": 102001, "message": "Invalid AddonCode."})


# limits -----------------------------------------------------------------------------------------------------------


def test_per_minute_limit_429_and_lockout():
    with emu(rate_limit_per_minute=5, lockout_seconds=2) as h:
        api = Api(h)
        assert [api.call("GET", "/customers")[0] for _ in range(5)] == [200] * 5
        r = api.s.get(f"{h.url}/billing/v1/customers", headers=api.headers(), timeout=5)
        assert r.status_code == 429 and r.json()["code"] == 44
        assert "maximum number of requests per minute" in r.json()["message"]
        assert int(r.headers["Retry-After"]) == 2
        h.set_faults(rate_limit_per_minute=1000)  # a higher limit does not lift a lockout in progress
        r = api.s.get(f"{h.url}/billing/v1/customers", headers=api.headers(), timeout=5)
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 2
        assert h.stats()["rate_limited"] == 2 and h.stats()["limits"]["lockout_remaining_s"] > 1
    with emu(rate_limit_per_minute=2, lockout_seconds=0.2, retry_after=False) as h:
        api = Api(h)
        assert [api.call("GET", "/customers")[0] for _ in range(3)] == [200, 200, 429]
        r = api.s.get(f"{h.url}/billing/v1/customers", headers=api.headers(), timeout=5)
        assert r.status_code == 429 and "Retry-After" not in r.headers
        time.sleep(0.25)
        h.set_faults(rate_limit_per_minute=100)
        assert api.call("GET", "/customers")[0] == 200


def test_daily_limit():
    with emu(daily_limit=3) as h:
        api = Api(h)
        assert [api.call("GET", "/products")[0] for _ in range(4)] == [200, 200, 200, 429]
        r = api.s.get(f"{h.url}/billing/v1/products", headers=api.headers(), timeout=5)
        assert r.json()["code"] == 44 and int(r.headers["Retry-After"]) > 0


def test_concurrency_limit():
    with emu(max_concurrency=2, latency_ms=300) as h:
        api = Api(h)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        requests.get(f"{h.url}/billing/v1/products", headers=api.headers(), timeout=10).status_code
                    ),
                    range(8),
                )
            )
        assert statuses.count(200) >= 2 and statuses.count(429) >= 1 and set(statuses) <= {200, 429}


def test_storm_cuts_the_limit_for_a_while():
    with emu(storm_rate_limit_per_minute=2, storm_seconds=30) as h:
        api = Api(h)
        assert [api.call("GET", "/products")[0] for _ in range(3)] == [200, 200, 429]
        h.set_faults(storm_seconds=0)
        assert api.call("GET", "/products")[0] == 200


# faults -------------------------------------------------------------------------------------------------------------


def test_fail_rate_answers_500_without_acting(emulator, api):
    emulator.set_faults(fail_rate=1.0)
    status, data = api.call("POST", "/customers", {"display_name": "A", "email": "a@b.co"})
    assert (status, data) == (500, {"code": 1000, "message": "Internal error"})
    assert emulator.store.customers == {}
    emulator.set_faults(fail_rate=0.0)
    assert api.ok("GET", "/customers")["customers"] == []
    assert emulator.stats()["failed_injected"] == 1


def test_drop_rate_acts_then_loses_the_response(emulator, api):
    emulator.set_faults(drop_rate=1.0)
    assert api.call("GET", "/customers")[0] == 200  # reads are never dropped
    with pytest.raises(requests.ConnectionError):
        api.call("POST", "/customers", {"display_name": "A", "email": "dropped@b.co"})
    emulator.set_faults(drop_rate=0.0)
    found = api.ok("GET", "/customers", email="dropped@b.co")["customers"]
    assert len(found) == 1 and emulator.stats()["dropped"] == 1


def test_faults_are_deterministic_under_a_seed():
    def run(seed):
        with emu(seed=seed, fail_rate=0.5) as h:
            api = Api(h)
            return [api.call("GET", "/products")[0] for _ in range(24)]

    a, b = run(42), run(42)
    assert a == b and {200, 500} == set(a)
    assert run(43) != a


def test_latency_is_added(emulator, api):
    emulator.set_faults(latency_ms=120, jitter_ms=20)
    t0 = time.monotonic()
    api.call("GET", "/products")
    assert time.monotonic() - t0 >= 0.1


# state, admin, CLI ----------------------------------------------------------------------------------------------


def test_state_file_shared_by_successive_instances(tmp_path):
    path = str(tmp_path / "zoho.json")
    with emu(state_file=path) as a:
        api = Api(a)
        cid = make_customer(api)["customer_id"]
        token = api.token
    assert os.path.exists(path)
    with emu(state_file=path) as b:
        api2 = Api(b)
        assert api2.ok("GET", f"/customers/{cid}")["customer"]["customer_id"] == cid
        api2.token = token  # a cached token from the first process still works
        assert api2.call("GET", f"/customers/{cid}")[0] == 200
        assert int(make_customer(api2, email="new@x.co")["customer_id"]) > int(cid)


def test_admin_stats_faults_reset_health(emulator, api):
    make_customer(api)
    api.ok("GET", "/customers/" + next(iter(emulator.store.customers)))
    api.call("GET", "/customers/0")
    stats = requests.get(f"{emulator.url}/__emulator__/stats", timeout=5).json()
    assert stats == {**emulator.stats(), "limits": stats["limits"]}
    assert stats["by_route"]["POST /customers"] == 1
    assert stats["by_route"]["GET /customers/{customer_id}"] == 2
    assert stats["by_route"]["POST /oauth/v2/token"] == 1
    assert stats["by_status"]["400"] == 1 and stats["tokens_minted"] == 1 and stats["requests"] == 4
    assert stats["entities"]["customers"] == 1
    r = requests.put(f"{emulator.url}/__emulator__/faults", json={"fail_rate": 0.25}, timeout=5)
    assert r.status_code == 200 and r.json()["fail_rate"] == 0.25
    assert requests.get(f"{emulator.url}/__emulator__/faults", timeout=5).json()["fail_rate"] == 0.25
    assert requests.put(f"{emulator.url}/__emulator__/faults", json={"nope": 1}, timeout=5).status_code == 400
    assert requests.post(f"{emulator.url}/__emulator__/reset", timeout=5).status_code == 200
    after = emulator.stats()
    assert after["requests"] == 0 and after["entities"]["customers"] == 0 and after["entities"]["taxes"] == 1
    assert emulator.faults()["fail_rate"] == 0.25  # config kept
    assert requests.get(f"{emulator.url}/__emulator__/health", timeout=5).status_code == 200


def test_keep_alive_pooling_many_requests(api):
    for _ in range(50):
        assert api.call("GET", "/products")[0] == 200


def test_cli_prints_url_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zoho_pipeline.emulator",
            "--port",
            "0",
            "--seed",
            "1",
            "--state-file",
            str(tmp_path / "s.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ZOHO Billing emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert requests.get(f"{url}/__emulator__/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_help():
    from zoho_pipeline.emulator.__main__ import _parser

    text = _parser().format_help()
    for flag in (
        "--host",
        "--port",
        "--client-id",
        "--client-secret",
        "--refresh-token",
        "--organization-id",
        "--rate-limit-per-minute",
        "--daily-limit",
        "--max-concurrency",
        "--lockout-seconds",
        "--token-lifetime",
        "--latency-ms",
        "--jitter-ms",
        "--fail-rate",
        "--drop-rate",
        "--seed",
        "--state-file",
    ):
        assert flag in text
    assert json.dumps  # keep json imported for debugging helpers


def test_drop_mode_hang_then_close():
    with emu(drop_rate=1.0, drop_mode="hang", drop_hang_s=0.3) as h:
        api = Api(h)
        t0 = time.monotonic()
        with pytest.raises(requests.ConnectionError):
            api.call("POST", "/products", {"name": "slow"})
        assert time.monotonic() - t0 >= 0.25 and len(h.store.products) == 1


def test_parallel_writes_are_safe(emulator, api):
    def create(i):
        return api.s.post(
            f"{emulator.url}/billing/v1/customers",
            json={"display_name": f"P{i}", "email": f"p{i}@x.co"},
            headers=api.headers(),
            timeout=10,
        ).json()["customer"]["customer_id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(40)))
    assert len(set(ids)) == 40 and len(emulator.store.customers) == 40


def test_emulator_imports_nothing_from_client_or_engine():
    import ast
    import pathlib

    import zoho_pipeline.emulator as pkg

    for path in pathlib.Path(pkg.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                assert not name.startswith(("zoho_pipeline.zoho", "zoho_pipeline.sync")), (path, name)
