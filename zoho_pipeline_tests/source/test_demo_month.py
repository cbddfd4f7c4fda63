"""One month of business played on a demo database (source/demo_month.py), on SQLite and Postgres, and ZOHO's
clock moved with it over the emulator's admin API (source/demo_clock.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.source.demo_clock import CaughtUp, ClockError, clock_now, move_clock, play_demo_month
from zoho_pipeline.source.demo_month import first_month, months_before, next_billing_month, play_month
from zoho_pipeline.source.migrate import create_demo

TODAY = dt.date(2026, 3, 17)


def _demo(url: str) -> sa.Engine:
    create_demo(url, customers=80, seed=9, today=TODAY)
    return make_engine(url)


def _rows(engine, table, *where):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).where(*where)).mappings()]


def test_a_month_of_business(db_url):
    engine = _demo(db_url)
    before = {t.name: len(_rows(engine, t)) for t in (T.customers, T.customer_invoices, T.payment_transactions)}
    assert next_billing_month(engine) == dt.date(2026, 4, 1)
    played = play_month(engine, seed=1)
    assert played.month == dt.date(2026, 4, 1)
    assert played.period_start.date() >= TODAY

    # new customers, each with an active service activated in the month and its installation invoice, paid
    new = _rows(engine, T.customers, T.customers.c.created_at >= played.period_start)
    assert len(new) == played.new_customers >= 2
    assert len(_rows(engine, T.customers)) == before["customers"] + played.new_customers
    for cust in new:
        services = _rows(engine, T.customer_services, T.customer_services.c.customer_id == cust["id"])
        assert [s["status"] for s in services] == ["active"]
        kinds = {
            i["invoice_type"]
            for i in _rows(engine, T.customer_invoices, T.customer_invoices.c.customer_id == cust["id"])
        }
        assert {"installation", "recurring"} <= kinds

    # the billing run: one recurring invoice per active or suspended service, dated the 1st, sent, totals right
    recurring = _rows(
        engine,
        T.customer_invoices,
        T.customer_invoices.c.invoice_date == played.month,
        T.customer_invoices.c.invoice_type == "recurring",
    )
    billable = _rows(engine, T.customer_services, T.customer_services.c.status.in_(("active", "suspended")))
    assert len(recurring) == played.recurring_invoices == len(billable)
    assert {i["service_id"] for i in recurring} == {s["id"] for s in billable}
    for inv in recurring:
        assert inv["status"] == "sent" and inv["due_date"] == dt.date(2026, 4, 8)
        assert Decimal(inv["total_amount"]) == Decimal(inv["subtotal"]) + Decimal(inv["vat_amount"])

    # payments: on time and late, every one completed in the month, no invoice paid beyond its total
    pay = T.payment_transactions.c
    month_payments = _rows(
        engine, T.payment_transactions, pay.completed_at >= played.period_start, pay.status == "completed"
    )
    assert played.payments_on_time > 0 and played.payments_late > 0
    # the month's invoice payments and each new customer's installation payment
    assert len(month_payments) == played.payments_on_time + played.payments_late + played.new_customers
    assert all(p["completed_at"].date() < played.month for p in month_payments)
    with engine.connect() as conn:
        over = conn.execute(
            sa.select(T.customer_invoices.c.invoice_number)
            .join(T.payment_transactions, pay.invoice_id == T.customer_invoices.c.id)
            .where(pay.status == "completed")
            .group_by(T.customer_invoices.c.invoice_number, T.customer_invoices.c.total_amount)
            .having(sa.func.sum(pay.amount) > T.customer_invoices.c.total_amount + 0.005)  # SQLite sums floats
        ).all()
    assert over == []
    # changes of accounts, refunds and bounces: a few of each, as counted
    assert played.upgrades >= 1 and played.cancellations >= 1 and played.closures >= 1
    assert played.refunds >= 1
    refunded = _rows(engine, T.payment_transactions, pay.status == "refunded", pay.updated_at >= played.period_start)
    assert len(refunded) == played.refunds

    # playing again plays the next month
    assert next_billing_month(engine) == dt.date(2026, 5, 1)
    assert play_month(engine, seed=1).month == dt.date(2026, 5, 1)
    assert first_month(engine) <= dt.date(2025, 10, 1)


def test_the_same_seed_plays_the_same_month(tmp_path):
    played = []
    for name in ("a", "b"):
        engine = _demo(f"sqlite:///{tmp_path / name}.db")
        played.append(
            (
                play_month(engine, seed=3).as_dict(),
                sorted(r["invoice_number"] for r in _rows(engine, T.customer_invoices)),
            )
        )
    assert played[0] == played[1]


def test_a_billing_day_is_the_first(sqlite_url):
    with pytest.raises(ValueError, match="1st of a month"):
        play_month(_demo(sqlite_url), month=dt.date(2026, 4, 2))


def test_zoho_clock_moves_first_and_only_forward(sqlite_url):
    from zoho_pipeline_tests.support.emulator import start_emulator

    engine = _demo(sqlite_url)
    emulator = start_emulator(start_time="2026-03-17T06:00:00Z")
    try:
        played, now = play_demo_month(engine, emulator.url, seed=2)
        assert played.month == dt.date(2026, 4, 1)
        assert now == clock_now(emulator.url) == dt.datetime(2026, 4, 1, 6, tzinfo=dt.UTC)
        # a clock already later stays where it is (ZOHO's time never goes back)
        emulator.move_clock(now="2026-06-01T00:00:00Z")
        assert move_clock(emulator.url, dt.datetime(2026, 5, 1, 6, tzinfo=dt.UTC)) == dt.datetime(
            2026, 6, 1, tzinfo=dt.UTC
        )
    finally:
        emulator.stop()
    with pytest.raises(ClockError, match="not reachable .* is `make dev` running"):
        clock_now(emulator.url)


def test_the_demo_never_runs_ahead_of_today(sqlite_url):
    engine = _demo(sqlite_url)
    with pytest.raises(CaughtUp, match="caught up with today: its next billing day, 2026-04-01, is after 2026-03-31"):
        play_demo_month(engine, "http://127.0.0.1:9", today=dt.date(2026, 3, 31))  # refused before any call


@pytest.mark.parametrize(
    "day, months, expected",
    [("2026-12-02", 6, "2026-06-02"), ("2026-03-31", 1, "2026-02-28"), ("2026-01-15", 1, "2025-12-15")],
)
def test_months_before(day, months, expected):
    assert months_before(dt.date.fromisoformat(day), months) == dt.date.fromisoformat(expected)
