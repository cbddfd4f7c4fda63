"""Faults while linking recurring invoices and paying them (issue 15): 5xx without acting and writes that act and
then lose their answer. However often a run is cut short, no payment reaches ZOHO twice, none is applied to an
invoice of another subscription or term, and every paid ZOHO invoice is paid once. Real HTTP, SQLite and Postgres.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from zoho_pipeline.monitor import ledger
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.emulator import clocked_world

FAST = SyncSettings(
    max_workers=4,
    backoff_base_s=0.02,
    backoff_max_s=0.2,
    in_run_retry_window_s=1.0,
    max_attempts=50,
    recurring_recheck_min=0,
)  # ZOHO's clock moves days in seconds: look again every run
PRICES = ("799.00", "799.00", "499.00")  # two services of one customer at the same price, one cheaper


def bill(price: str) -> str:
    return str((Decimal(price) * Decimal("1.15")).quantize(Decimal("0.01")))


@pytest.fixture
def world(db_url):
    with clocked_world(db_url, seed=3) as made:
        yield made


def test_faults_while_linking_and_paying_never_pay_twice_nor_the_wrong_invoice(world):
    engine, client, handle = world
    services = []
    for n in range(4):
        cust = R.add_customer(engine)
        for price in PRICES:
            pkg = R.add_package(engine, name=f"Fibre {n}-{price}", price=price)
            services.append((cust, R.add_service(engine, cust, pkg, price=price, activation_date=date(2025, 1, 6))))
    run_sync(engine, client, FAST)
    payments = {}
    for month in (date(2025, 2, 1), date(2025, 3, 1)):
        handle.move_clock(now=f"{month.isoformat()}T09:00:00Z")
        for (cust, svc), price in zip(services, PRICES * 4, strict=True):
            inv = R.add_invoice(
                engine,
                cust,
                invoice_type="recurring",
                service_id=svc,
                invoice_date=month,
                due_date=month,
                total=bill(price),
            )
            payments[R.add_payment(engine, cust, inv, amount=bill(price))] = (svc, month, inv)
        handle.set_faults(fail_rate=0.25, drop_rate=0.25)
        for _ in range(12):  # cut short again and again, until nothing is due
            report = run_sync(engine, client, FAST, entities=["invoices", "payments"])
            if not report.entities["payments"].backlog and not report.entities["invoices"].backlog:
                break
        handle.set_faults(fail_rate=0.0, drop_rate=0.0)
        run_sync(engine, client, FAST, entities=["invoices", "payments"])
    assert handle.stats()["dropped"] > 0

    store = handle.store
    assert max(Counter(p["reference_number"] for p in store.payments.values()).values()) == 1, "a payment twice"
    for pay_id, (svc, month, inv) in payments.items():
        sub = R.row(engine, T.customer_services, svc)["zoho_subscription_id"]
        (twin,) = [i for i in store.invoices.values() if i["subscription_id"] == sub and i["date"] == month.isoformat()]
        assert R.row(engine, T.customer_invoices, inv)["zoho_billing_invoice_id"] == twin["invoice_id"], "wrong link"
        paid = R.row(engine, T.payment_transactions, pay_id)
        assert paid["zoho_sync_status"] == "synced", paid["zoho_last_sync_error"]
        applied = store.payments[paid["zoho_payment_id"]]["invoices"]
        assert [a["invoice_id"] for a in applied] == [twin["invoice_id"]], "applied to the wrong invoice"
        assert twin["status"] == "paid" and len(twin["payments"]) == 1
    check = ledger.ledger(engine, client)
    assert check.ok, check.errors
    assert check.figures()["recurring_payments_left_as_credit"] == 0
