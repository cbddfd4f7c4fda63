"""A year of an account on ZOHO's clock (issue 15): every month ZOHO raises the subscriptions' invoices, the
provider bills its own recurring copies and collects; the pipeline links and pays. At the end the three figures
finance asks for are 0: no payment on a recurring invoice left as credit while ZOHO holds the invoice, every
customer's balance in ZOHO equal to the source's to the cent, every ZOHO subscription invoice paid in the source
paid in ZOHO. Along the way: two services of one customer at one price, a service started mid-year (its part month
a pro_rata invoice), a re-priced service (ZOHO takes the price at the next renewal), a late payment, a partial one,
a month left unpaid, and months billed before go-live (pushed as plain invoices)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from zoho_pipeline.monitor import ledger
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.emulator import clocked_world

FAST = SyncSettings(
    max_workers=4, backoff_base_s=0.05, in_run_retry_window_s=1.0, recurring_recheck_min=0
)  # ZOHO's clock moves days in seconds: look again every run


def bill(price: Decimal) -> str:
    return str((price * Decimal("1.15")).quantize(Decimal("0.01")))


def first_of_months(start: date, n: int) -> list[date]:
    out, m = [], start
    for _ in range(n):
        out.append(m)
        m = (m + timedelta(days=32)).replace(day=1)
    return out


@pytest.fixture
def world(sqlite_url):
    with clocked_world(sqlite_url) as made:
        yield made


def set_price(engine, service_id, price: Decimal) -> None:
    with engine.begin() as conn:
        conn.execute(
            T.customer_services.update()
            .where(T.customer_services.c.id == service_id)
            .values(monthly_price=price, updated_at=R.ts(engine, R.now()))
        )


def test_a_year_on_zohos_clock_ends_with_the_three_figures_at_zero(world):
    engine, client, handle = world
    fibre, lte = R.add_package(engine, "Fibre 100", "799.00"), R.add_package(engine, "LTE 50", "449.00")
    thandi, sipho, lindi = (R.add_customer(engine, first) for first in ("Thandi", "Sipho", "Lindi"))
    live = {  # service → (customer, price)
        R.add_service(engine, thandi, fibre, activation_date=date(2024, 11, 20)): (thandi, Decimal("799.00")),
        R.add_service(engine, thandi, fibre, activation_date=date(2025, 1, 6)): (thandi, Decimal("799.00")),
        R.add_service(engine, sipho, lte, price="449.00", activation_date=date(2025, 1, 3)): (sipho, Decimal("449.00")),
    }
    old = next(iter(live))
    december = R.add_invoice(
        engine,
        thandi,
        invoice_type="recurring",
        service_id=old,
        invoice_date=date(2024, 12, 1),
        total=bill(live[old][1]),
    )
    january = R.add_invoice(
        engine,
        thandi,
        invoice_type="recurring",
        service_id=old,
        invoice_date=date(2025, 1, 1),
        total=bill(live[old][1]),
    )
    for inv in (december, january):  # billed (and paid) before go-live: ZOHO never bills these terms
        R.add_payment(engine, thandi, inv, amount=bill(live[old][1]))
    run_sync(engine, client, FAST)
    late, unpaid = [], 0
    for n, month in enumerate(first_of_months(date(2025, 2, 1), 12)):
        handle.move_clock(now=f"{month.isoformat()}T09:00:00Z")
        if n == 3:  # Lindi starts on the 15th: her part month is a pro_rata invoice, ZOHO bills from the 1st after
            svc = R.add_service(engine, lindi, fibre, activation_date=month + timedelta(days=14))
            live[svc] = (lindi, Decimal("799.00"))
            day = month + timedelta(days=14)
            R.add_invoice(
                engine, lindi, invoice_type="pro_rata", service_id=svc, invoice_date=day, due_date=day, total="459.52"
            )
        if n == 5:  # Sipho's LTE is re-priced from next month: ZOHO takes it at the next renewal
            sipho_svc = next(s for s, (c, _) in live.items() if c == sipho)
            set_price(engine, sipho_svc, Decimal("399.00"))
            live[sipho_svc] = (sipho, Decimal("399.00"))
            run_sync(engine, client, FAST, entities=["subscriptions"])
            continue_month = True
        else:
            continue_month = False
        for svc, (cust, price) in live.items():
            started = R.row(engine, T.customer_services, svc)["activation_date"]
            if month <= started:
                continue
            if continue_month and cust == sipho:
                price = Decimal("449.00")  # the month already running is still billed at the old price
            inv = R.add_invoice(
                engine,
                cust,
                invoice_type="recurring",
                service_id=svc,
                invoice_date=month,
                due_date=month + timedelta(days=7),
                total=bill(price),
            )
            if cust == sipho and n == 8:
                unpaid += 1  # Sipho does not pay September: owed in both ledgers
            elif cust == lindi and n == 6:
                R.add_payment(engine, cust, inv, amount="500.00")  # part of it
            elif cust == thandi and n == 2:
                late.append((cust, inv, bill(price)))  # paid next month
            else:
                R.add_payment(engine, cust, inv, amount=bill(price))
        if n == 3:
            for cust, inv, amount in late:
                R.add_payment(engine, cust, inv, amount=amount)
        run_sync(engine, client, FAST)

    with engine.connect() as conn:
        states = dict(
            conn.execute(
                sa.select(T.zoho_recurring_links.c.state, sa.func.count()).group_by(T.zoho_recurring_links.c.state)
            ).all()
        )
    assert states.get("history") == 2  # December and January of the service that predates go-live
    assert states["linked"] >= 30 and set(states) <= {"linked", "history"}, states
    check = ledger.ledger(engine, client)
    assert check.ok, check.errors.to_string()
    figures = ledger.finance_figures(engine, client)
    assert (
        figures["recurring_payments_left_as_credit"],
        figures["customers_balance_differs"],
        figures["subscription_invoices_paid_in_source_not_in_zoho"],
    ) == (0, 0, 0)
    assert figures["customers_compared"] == 3 and unpaid == 1
    assert check.differences.empty  # nothing listed beside the money either: every month linked or pushed
    zoho_sipho = client.get(f"/customers/{R.row(engine, T.customers, sipho)['zoho_billing_customer_id']}")["customer"]
    assert Decimal(str(zoho_sipho["outstanding_receivable_amount"])) == Decimal(bill(Decimal("399.00")))  # October
