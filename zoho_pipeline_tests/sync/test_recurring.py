"""Recurring invoices linked to the invoices ZOHO raised, and their payments applied there (issue 15).

Real HTTP to the emulator on its clock; the source on SQLite and on Postgres. A wrong link would put money on the
wrong invoice: each scenario checks the link against the emulator's own record of which subscription raised it.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from zoho_pipeline.monitor import ledger
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.entities import recurring, recurring_estimate, recurring_zoho
from zoho_pipeline.sync.entities.subscriptions import starts_on
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.emulator import clocked_world

FAST = SyncSettings(
    max_workers=4, backoff_base_s=0.05, in_run_retry_window_s=1.0, run_stale_after_s=5.0, recurring_recheck_min=0
)  # ZOHO's clock moves days in seconds: look again every run
MONTHLY = Decimal("799.00")
BILL = str((MONTHLY * Decimal("1.15")).quantize(Decimal("0.01")))  # 918.85


@pytest.fixture
def world(db_url):
    with clocked_world(db_url) as made:
        yield made


def recurring_invoice(engine, customer, service, day: date, total=BILL, **kw) -> str:
    return R.add_invoice(
        engine,
        customer,
        invoice_type="recurring",
        service_id=service,
        invoice_date=day,
        due_date=day,
        total=total,
        **kw,
    )


def row(engine, table, row_id) -> dict:
    return R.row(engine, table, row_id)


def link(engine, invoice_id) -> dict | None:
    with engine.connect() as conn:
        found = conn.execute(sa.select(T.zoho_recurring_links).where(T.zoho_recurring_links.c.invoice_id == invoice_id))
        found = found.mappings().first()
    return dict(found) if found else None


def zoho_invoice_of(store, subscription_id: str, day: date) -> dict:
    found = [
        i for i in store.invoices.values() if i["subscription_id"] == subscription_id and i["date"] == day.isoformat()
    ]
    assert len(found) == 1, found
    return found[0]


def test_subscriptions_start_on_the_first_after_activation():
    assert starts_on(date(2025, 1, 5)) == date(2025, 2, 1)
    assert starts_on(date(2025, 1, 1)) == date(2025, 2, 1)  # the provider bills no recurring activation month
    assert starts_on(date(2025, 1, 31)) == date(2025, 2, 1)
    assert starts_on(date(2024, 12, 31)) == date(2025, 1, 1)


def test_two_services_same_price_each_linked_to_its_own_subscription_and_paid_there(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc_a = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    svc_b = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 8))
    run_sync(engine, client, FAST)
    sub_a, sub_b = (row(engine, T.customer_services, s)["zoho_subscription_id"] for s in (svc_a, svc_b))
    assert handle.store.subscriptions[sub_a]["status"] == "future"  # starts on Feb 1: ZOHO's terms = months

    handle.move_clock(now="2025-02-01T09:00:00Z")  # ZOHO raises both February invoices, same price, same day
    inv_a = recurring_invoice(engine, cust, svc_a, date(2025, 2, 1))
    inv_b = recurring_invoice(engine, cust, svc_b, date(2025, 2, 1))
    pay_a = R.add_payment(engine, cust, inv_a, amount=BILL)
    pay_b = R.add_payment(engine, cust, inv_b, amount=BILL)
    calls_before = client.stats.api_calls
    report = run_sync(engine, client, FAST, entities=["invoices", "payments"])

    links = report.entities["invoices"].before_sync
    assert (links["linked"], links["waiting"], links["unmatched"], links["ambiguous"]) == (2, 0, 0, 0)
    assert links["list_pages"] == 2 and links["detail_reads"] == 0  # a page of invoices, one of subscriptions
    twin_a, twin_b = (
        zoho_invoice_of(handle.store, sub_a, date(2025, 2, 1)),
        zoho_invoice_of(handle.store, sub_b, date(2025, 2, 1)),
    )
    assert row(engine, T.customer_invoices, inv_a)["zoho_billing_invoice_id"] == twin_a["invoice_id"]
    assert row(engine, T.customer_invoices, inv_b)["zoho_billing_invoice_id"] == twin_b["invoice_id"]
    assert link(engine, inv_a)["zoho_total"] == Decimal(BILL)
    for pay, twin in ((pay_a, twin_a), (pay_b, twin_b)):
        payment = handle.store.payments[row(engine, T.payment_transactions, pay)["zoho_payment_id"]]
        assert [(a["invoice_id"], a["amount_applied"]) for a in payment["invoices"]] == [
            (twin["invoice_id"], float(BILL))
        ]
        assert handle.store.invoices[twin["invoice_id"]]["status"] == "paid"
    assert client.stats.api_calls - calls_before == 2 + 2  # two list pages, two payments

    check = ledger.ledger(engine, client)
    assert check.ok, check.differences
    assert ledger.finance_figures(engine, client) == dict(
        recurring_payments_left_as_credit=0,
        customers_balance_differs=0,
        subscription_invoices_paid_in_source_not_in_zoho=0,
        customers_compared=1,
        recurring_linked=2,
        recurring_not_linked=0,
        api_calls=2,  # one customer page, one page of unpaid invoices
    )
    # ZOHO loses the application (edited by hand): the money sits as credit while ZOHO holds the invoice
    client.put(f"/payments/{row(engine, T.payment_transactions, pay_b)['zoho_payment_id']}", json={"invoices": []})
    check = ledger.ledger(engine, client)
    figures = check.figures()
    assert (
        figures["recurring_payments_left_as_credit"],
        figures["customers_balance_differs"],
        figures["subscription_invoices_paid_in_source_not_in_zoho"],
    ) == (1, 1, 1)
    kinds = sorted(check.errors["kind"])
    assert kinds == ["receivable", "recurring_unpaid", "unused_credits"]
    owed = check.errors[check.errors["kind"] == "receivable"].iloc[0]
    assert (owed["source"], owed["zoho"]) == (Decimal("0.00"), Decimal(BILL))


def test_list_rows_without_subscription_are_decided_by_reading_the_candidates(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc_a = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    svc_b = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 8))
    run_sync(engine, client, FAST)
    handle.move_clock(now="2025-02-01T09:00:00Z")
    inv_a = recurring_invoice(engine, cust, svc_a, date(2025, 2, 1))
    inv_b = recurring_invoice(engine, cust, svc_b, date(2025, 2, 1))

    class ListWithoutSubscription:  # ZOHO's list schema does not promise `subscription_id`
        def __init__(self, inner):
            self.inner, self.stats = inner, inner.stats

        def get(self, path, params=None):
            body = self.inner.get(path, params=params)
            if path == "/invoices":
                body["invoices"] = [{k: v for k, v in i.items() if k != "subscription_id"} for i in body["invoices"]]
            return body

    report = recurring.link_recurring(engine, ListWithoutSubscription(client))
    assert (report.linked, report.ambiguous, report.detail_reads) == (2, 0, 4)  # each candidate read, per row
    for inv, svc in ((inv_a, svc_a), (inv_b, svc_b)):
        sub = row(engine, T.customer_services, svc)["zoho_subscription_id"]
        twin = zoho_invoice_of(handle.store, sub, date(2025, 2, 1))
        assert row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"] == twin["invoice_id"]


def test_two_candidates_for_one_term_fail_the_row_naming_both(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    run_sync(engine, client, FAST)
    handle.move_clock(now="2025-02-01T09:00:00Z")
    sub = row(engine, T.customer_services, svc)["zoho_subscription_id"]
    twin = zoho_invoice_of(handle.store, sub, date(2025, 2, 1))
    copy = dict(twin, invoice_id="99990001", invoice_number="INV-COPY")  # a second bill for the same term
    with handle.store.lock:
        handle.store.invoices[copy["invoice_id"]] = copy
    inv = recurring_invoice(engine, cust, svc, date(2025, 2, 1))
    pay = R.add_payment(engine, cust, inv, amount=BILL)

    report = run_sync(engine, client, FAST, entities=["invoices", "payments"])
    links = report.entities["invoices"].before_sync
    assert links["ambiguous"] == 1 and links["linked"] == 0
    reason = link(engine, inv)["reason"]
    assert twin["invoice_id"] in reason and "99990001" in reason
    assert row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"] is None
    paid = row(engine, T.payment_transactions, pay)
    assert (paid["zoho_sync_status"], paid["zoho_error_code"], paid["zoho_payment_id"]) == ("retrying", "waiting", None)
    assert paid["zoho_attempts"] == 0  # waiting charges no attempt: never dead-lettered for it
    assert report.entities["payments"].waiting == 1 and not handle.store.payments


def test_re_priced_month_links_by_term_and_never_applies_more_than_zoho_billed(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    run_sync(engine, client, FAST)
    handle.move_clock(now="2025-02-01T09:00:00Z")
    repriced = "1033.85"  # the provider billed 899 + VAT; ZOHO billed the subscription's 799 + VAT
    inv = recurring_invoice(engine, cust, svc, date(2025, 2, 1), total=repriced)
    pay = R.add_payment(engine, cust, inv, amount=repriced)
    report = run_sync(engine, client, FAST, entities=["invoices", "payments"])

    links = report.entities["invoices"].before_sync
    assert (links["linked"], links["amount_differences"]) == (1, 1)
    assert "918.85" in links["rows"][0]["reason"] and repriced in links["rows"][0]["reason"]
    sub = row(engine, T.customer_services, svc)["zoho_subscription_id"]
    twin = zoho_invoice_of(handle.store, sub, date(2025, 2, 1))
    payment = handle.store.payments[row(engine, T.payment_transactions, pay)["zoho_payment_id"]]
    assert payment["invoices"] == [dict(payment["invoices"][0], invoice_id=twin["invoice_id"], amount_applied=918.85)]
    assert payment["unused_amount"] == pytest.approx(115.0)  # the rest is the customer's credit, not lost
    assert handle.store.invoices[twin["invoice_id"]]["balance"] == 0


def test_prorated_first_month_and_reactivated_mid_month_are_never_linked_to_another_term(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 20))
    back = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 6))
    run_sync(engine, client, FAST)
    handle.move_clock(now="2025-02-15T09:00:00Z")
    # `back` was cancelled and comes back mid-month: ZOHO refuses to reactivate a cancelled subscription, so a
    # new one starts today and raises its invoice dated the 15th
    old_sub = row(engine, T.customer_services, back)["zoho_subscription_id"]
    client.post(f"/subscriptions/{old_sub}/cancel", params={"cancel_at_end": "false"})
    body = {
        "customer_id": row(engine, T.customers, cust)["zoho_billing_customer_id"],
        "plan": {"plan_code": row(engine, T.service_packages, pkg)["zoho_plan_code"], "price": 799.0},
        "reference_id": back,
        "starts_at": "2025-02-15",
    }
    new_sub = client.post("/subscriptions", json=body)["subscription"]["subscription_id"]
    with engine.begin() as conn:
        conn.execute(
            T.customer_services.update().where(T.customer_services.c.id == back).values(zoho_subscription_id=new_sub)
        )
    prorated = recurring_invoice(engine, cust, svc, date(2025, 1, 20), total="355.69")  # 12 days of January
    before_return = recurring_invoice(engine, cust, back, date(2025, 2, 1))  # billed by the old subscription
    report = recurring.link_recurring(engine, client)

    assert (report.linked, report.unmatched, report.history) == (1, 1, 0)
    assert row(engine, T.customer_invoices, prorated)["zoho_billing_invoice_id"] is None
    assert "2025-01-20" in link(engine, prorated)["reason"] and "first ZOHO invoice" in link(engine, prorated)["reason"]
    # February was billed by the subscription the service had then, not by the one started on the 15th
    assert (
        row(engine, T.customer_invoices, before_return)["zoho_billing_invoice_id"]
        == zoho_invoice_of(handle.store, old_sub, date(2025, 2, 1))["invoice_id"]
    )
    assert zoho_invoice_of(handle.store, new_sub, date(2025, 2, 15))  # raised, and linked to nothing
    # the term after the return is linked to the new subscription's next renewal, not to the old one's
    handle.move_clock(now="2025-03-15T09:00:00Z")
    march = recurring_invoice(engine, cust, back, date(2025, 3, 15))
    assert recurring.link_recurring(engine, client).linked == 1
    assert (
        row(engine, T.customer_invoices, march)["zoho_billing_invoice_id"]
        == zoho_invoice_of(handle.store, new_sub, date(2025, 3, 15))["invoice_id"]
    )


def test_a_payment_waits_for_its_link_and_is_applied_when_zoho_raises_the_invoice(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    no_service = recurring_invoice(engine, cust, None, date(2025, 2, 1))
    run_sync(engine, client, FAST)
    inv = recurring_invoice(engine, cust, svc, date(2025, 2, 1))  # the provider bills before ZOHO has
    pay = R.add_payment(engine, cust, inv, amount=BILL)
    first = run_sync(engine, client, FAST, entities=["invoices", "payments"])
    links = first.entities["invoices"].before_sync
    assert (links["waiting"], links["unmatched"]) == (1, 1)
    reasons = {r["invoice_number"]: r["reason"] for r in links["rows"]}
    assert "names no service" in reasons[row(engine, T.customer_invoices, no_service)["invoice_number"]]
    waiting = row(engine, T.payment_transactions, pay)
    assert (waiting["zoho_sync_status"], waiting["zoho_error_code"]) == ("retrying", "waiting")
    assert "not linked yet" in waiting["zoho_last_sync_error"] and not handle.store.payments

    handle.move_clock(now="2025-02-01T09:00:00Z")
    second = run_sync(engine, client, FAST, entities=["invoices", "payments"])
    assert second.entities["invoices"].before_sync["linked"] == 1
    done = row(engine, T.payment_transactions, pay)
    assert done["zoho_sync_status"] == "synced"
    twin = zoho_invoice_of(
        handle.store, row(engine, T.customer_services, svc)["zoho_subscription_id"], date(2025, 2, 1)
    )
    assert handle.store.payments[done["zoho_payment_id"]]["invoices"][0]["invoice_id"] == twin["invoice_id"]
    assert handle.store.invoices[twin["invoice_id"]]["status"] == "paid"


def test_after_the_wait_a_payment_goes_as_credit_and_is_applied_once_when_the_link_appears(world):
    engine, client, handle = world
    settings = dataclasses.replace(FAST, recurring_link_wait_h=0)
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    run_sync(engine, client, settings)
    inv = recurring_invoice(engine, cust, svc, date(2025, 2, 1))
    pay = R.add_payment(engine, cust, inv, amount=BILL)
    run_sync(engine, client, settings, entities=["invoices", "payments"])
    credit = row(engine, T.payment_transactions, pay)
    payment = handle.store.payments[credit["zoho_payment_id"]]
    assert credit["zoho_sync_status"] == "synced" and payment["invoices"] == []
    assert "customer credit" in payment["description"]

    handle.move_clock(now="2025-02-01T09:00:00Z")
    run_sync(engine, client, settings, entities=["invoices", "payments"])
    twin = zoho_invoice_of(
        handle.store, row(engine, T.customer_services, svc)["zoho_subscription_id"], date(2025, 2, 1)
    )
    payment = handle.store.payments[credit["zoho_payment_id"]]
    assert [a["invoice_id"] for a in payment["invoices"]] == [twin["invoice_id"]]
    assert payment["unused_amount"] == 0 and handle.store.invoices[twin["invoice_id"]]["status"] == "paid"
    assert len(handle.store.payments) == 1
    puts = payment_puts(handle)
    run_sync(engine, client, settings, entities=["invoices", "payments"])  # once: nothing more to send
    assert payment_puts(handle) == puts == 1


def payment_puts(handle) -> int:
    return sum(n for route, n in handle.stats()["by_route"].items() if route.startswith("PUT") and "payments" in route)


def test_months_before_the_subscription_reached_zoho_are_pushed_once_as_plain_invoices_and_paid(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2024, 10, 20))
    december = recurring_invoice(engine, cust, svc, date(2024, 12, 1), status="paid")
    january = recurring_invoice(engine, cust, svc, date(2025, 1, 1))  # the term holding go-live (Jan 10)
    pay = R.add_payment(engine, cust, december, amount=BILL)
    report = run_sync(engine, client, FAST)  # go-live: subscriptions first, then the links, then these invoices
    links = report.entities["invoices"].before_sync
    assert links["history"] == 2 and links["linked"] == 0
    for inv in (december, january):
        assert link(engine, inv)["state"] == "history"
        pushed = handle.store.invoices[row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"]]
        assert pushed["subscription_id"] == "" and pushed["total"] == float(BILL)
    payment = handle.store.payments[row(engine, T.payment_transactions, pay)["zoho_payment_id"]]
    assert payment["invoices"][0]["invoice_id"] == row(engine, T.customer_invoices, december)["zoho_billing_invoice_id"]

    handle.move_clock(now="2025-02-01T09:00:00Z")  # ZOHO's first own invoice: February, linked, never pushed
    february = recurring_invoice(engine, cust, svc, date(2025, 2, 1))
    run_sync(engine, client, FAST)
    assert link(engine, february)["state"] == "linked"
    assert len(handle.store.invoices) == 3
    check = ledger.ledger(engine, client)
    assert check.ok, check.errors


def test_reconcile_ledger_prints_the_figures_and_writes_the_csv(world, db_url, monkeypatch, capsys, tmp_path):
    from zoho_pipeline.cli import reconcile as reconcile_cmd
    from zoho_pipeline_tests.support.emulator import TEST_CREDENTIALS

    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    run_sync(engine, client, FAST)
    handle.move_clock(now="2025-02-01T09:00:00Z")
    inv = recurring_invoice(engine, cust, svc, date(2025, 2, 1))
    pay = R.add_payment(engine, cust, inv, amount=BILL)
    run_sync(engine, client, FAST, entities=["invoices", "payments"])
    for key, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(f"ZOHO_{key.upper()}", value)
    monkeypatch.setenv("ZOHO_API_BASE_URL", handle.url + "/billing/v1")
    monkeypatch.setenv("ZOHO_ACCOUNTS_URL", handle.url)
    assert reconcile_cmd.main(["--database-url", db_url, "--ledger"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "ledger matches the source" in out and "payments on recurring invoices left as credit" in out

    client.put(f"/payments/{row(engine, T.payment_transactions, pay)['zoho_payment_id']}", json={"invoices": []})
    csv = tmp_path / "ledger.csv"
    assert reconcile_cmd.main(["--database-url", db_url, "--ledger", "--csv", str(csv)]) == 1
    out = capsys.readouterr().out
    assert "3 ledger difference(s)" in out and str(csv) in out
    text = csv.read_text()
    assert text.splitlines()[0] == "kind,label,source_id,zoho_id,source,zoho,difference,detail"
    assert "recurring_unpaid" in text and "918.85" in text


def test_payments_pushed_as_credit_before_this_change_are_applied_once(world):
    """The backfill: before issue 15 a payment on a recurring invoice went unapplied. The first linking pass after
    the upgrade makes those payments due again; each is re-mapped and updated once with its invoice (a history
    month's invoice is pushed first), and a later run sends nothing."""
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2024, 11, 20))
    run_sync(engine, client, FAST, entities=["subscriptions"])
    handle.move_clock(now="2025-02-01T09:00:00Z")  # ZOHO's first own invoice of the backdated subscription
    january = recurring_invoice(engine, cust, svc, date(2025, 1, 1))  # before it reached ZOHO: history
    february = recurring_invoice(engine, cust, svc, date(2025, 2, 1))  # ZOHO's own: linked
    zoho_customer = row(engine, T.customers, cust)["zoho_billing_customer_id"]
    old = {}
    for inv in (january, february):  # as the pipeline pushed them before: unapplied, marked synced
        pay = R.add_payment(engine, cust, inv, amount=BILL)
        ref = row(engine, T.payment_transactions, pay)["transaction_id"]
        body = {
            "customer_id": zoho_customer,
            "payment_mode": "autotransaction",
            "amount": float(BILL),
            "date": "2025-02-01",
            "reference_number": ref,
        }
        zoho_id = client.post("/payments", json=body)["payment"]["payment_id"]
        with engine.begin() as conn:
            conn.execute(
                T.payment_transactions.update()
                .where(T.payment_transactions.c.id == pay)
                .values(
                    zoho_payment_id=zoho_id,
                    zoho_sync_status="synced",
                    zoho_payload_hash="before-issue-15",
                    zoho_source_version=row(engine, T.payment_transactions, pay)["updated_at"],
                )
            )
        old[inv] = (pay, zoho_id)
    assert all(p["unused_amount"] == float(BILL) for p in handle.store.payments.values())

    report = run_sync(engine, client, FAST)
    assert report.entities["invoices"].before_sync["history"] == 1
    assert report.entities["invoices"].before_sync["linked"] == 1
    assert report.entities["payments"].updated == 2 and report.entities["payments"].created == 0
    for inv, (_pay, zoho_id) in old.items():
        target = row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"]
        payment = handle.store.payments[zoho_id]
        assert [a["invoice_id"] for a in payment["invoices"]] == [target] and payment["unused_amount"] == 0
        assert handle.store.invoices[target]["status"] == "paid"
    assert len(handle.store.payments) == 2
    puts = payment_puts(handle)
    again = run_sync(engine, client, FAST)
    assert payment_puts(handle) == puts == 2 and again.entities["payments"].updated == 0
    assert ledger.ledger(engine, client).ok


def test_a_waiting_invoice_is_looked_for_again_only_after_the_recheck_interval(world):
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc = R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5))
    run_sync(engine, client, FAST)
    inv = recurring_invoice(engine, cust, svc, date(2025, 2, 1))  # ZOHO raises it on the 1st
    assert recurring.link_recurring(engine, client).waiting == 1
    handle.move_clock(now="2025-02-01T09:00:00Z")
    quiet = recurring.link_recurring(engine, client)  # looked at a moment ago: no list pages read
    assert (quiet.considered, quiet.api_calls, quiet.linked) == (1, 0, 0)
    later = recurring.link_recurring(engine, client, now=R.now() + timedelta(minutes=61))
    assert later.linked == 1 and later.api_calls == 2
    assert row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"]


class IgnoresSorting:
    """A ZOHO that does not sort on request (the parameters are not among GET /invoices' documented ones)."""

    def __init__(self, inner):
        self.inner, self.stats = inner, inner.stats

    def get(self, path, params=None):
        params = {k: v for k, v in (params or {}).items() if k not in recurring_zoho.NEWEST_FIRST}
        return self.inner.get(path, params=params)


def test_linking_reads_newest_first_and_stops_before_the_oldest_term_it_needs(world, monkeypatch):
    engine, client, handle = world
    monkeypatch.setattr(recurring_zoho, "PER_PAGE", 1)  # a page per invoice: where the pass stops shows
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    services = [R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5)) for _ in "ab"]
    run_sync(engine, client, FAST)

    def bill(day: date, zoho_client) -> recurring.LinkReport:
        handle.move_clock(now=f"{day.isoformat()}T09:00:00Z")
        invoices = {svc: recurring_invoice(engine, cust, svc, day) for svc in services}
        report = recurring.link_recurring(engine, zoho_client)
        assert report.linked == 2, report.rows
        for svc, inv in invoices.items():
            twin = zoho_invoice_of(handle.store, row(engine, T.customer_services, svc)["zoho_subscription_id"], day)
            assert row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"] == twin["invoice_id"]
        return report

    for month in (2, 3):
        bill(date(2025, month, 1), client)
    april = bill(date(2025, 4, 1), client)
    # April's two invoices (the oldest term needed runs over a page boundary), one of March: older ones unread
    assert (april.list_pages - 2, april.invoices_from, april.order_unconfirmed) == (3, "2025-04-01", False)

    may = bill(date(2025, 5, 1), IgnoresSorting(client))  # the order not shown: every page, the same links
    assert (may.list_pages - 2, may.invoices_from, may.order_unconfirmed) == (8, None, True)


def test_a_dry_run_estimates_the_links_from_the_source_and_reads_nothing(world):
    """`sync --dry-run` makes no call: what linking would do comes from the source and the links table, and the
    real pass then does that."""
    engine, client, handle = world
    pkg = R.add_package(engine, price=str(MONTHLY))
    cust = R.add_customer(engine)
    svc_a, svc_b = (
        R.add_service(engine, cust, pkg, price=str(MONTHLY), activation_date=date(2025, 1, 5)) for _ in "ab"
    )
    run_sync(engine, client, FAST)
    handle.move_clock(now="2025-02-01T09:00:00Z")
    for svc in (svc_a, svc_b):
        recurring_invoice(engine, cust, svc, date(2025, 2, 1))
    recurring_invoice(engine, cust, svc_a, date(2025, 3, 1))  # ZOHO raises it on 1 March
    R.add_invoice(engine, cust, invoice_type="recurring", invoice_date=date(2025, 2, 1), total=BILL)  # no service

    calls = client.stats.api_calls
    dry = run_sync(engine, client, FAST, entities=["invoices"], dry_run=True)
    assert client.stats.api_calls == calls
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.zoho_recurring_links)).scalar() == 0
    shown = dry.entities["invoices"].before_sync
    assert (shown["estimate"], shown["considered"], shown["unmatched"], shown["api_calls"]) == (True, 4, 1, 0)
    assert shown["would_link"] + shown["waiting"] == 3  # today, every term has begun

    on_zohos_day = R.now().replace(year=2025, month=2, day=1, hour=9)
    estimate = recurring_estimate.estimate_links(engine, now=on_zohos_day)
    real = recurring.link_recurring(engine, client, now=on_zohos_day)
    assert (estimate.would_link, estimate.waiting, estimate.unmatched, estimate.history) == (2, 1, 1, 0)
    assert (real.linked, real.waiting, real.unmatched, real.history) == (2, 1, 1, 0)
    assert estimate.list_pages == real.list_pages and estimate.estimated_calls == real.api_calls
