"""Issue 14 (c): a service cancelled, suspended, reactivated and re-priced after its subscription reached ZOHO,
through the emulator over real HTTP (its clock runs ZOHO's renewals), on SQLite and Postgres, under both policies."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.entities import subscription_lifecycle
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.lifecycle import FAST, World, writes

SERVICES = T.customer_services
GET = "GET /subscriptions/{subscription_id}"
PUT = "PUT /subscriptions/{subscription_id}"
CANCEL = "POST /subscriptions/{subscription_id}/cancel"
REACTIVATE = "POST /subscriptions/{subscription_id}/reactivate"
SCHEDULED = "GET /subscriptions/{subscription_id}/scheduledchanges"
CREATE = "POST /subscriptions"
AT_END = dataclasses.replace(FAST, cancel_at="end_of_term")
IMMEDIATE_PLAN = dataclasses.replace(FAST, plan_change_at="immediate")


@pytest.fixture
def world(db_url, emulator):
    w = World(db_url, emulator)
    yield w
    w.close()


def live_service(world, price="799.00"):
    package = R.add_package(world.engine, price=price)
    customer = R.add_customer(world.engine)
    service = R.add_service(world.engine, customer, package, price=price)
    report, _ = world.sync()
    assert report.exit_code == 0, report.failures
    return service


def sub(world, service) -> dict:
    return world.store.subscriptions[world.row(SERVICES, service)["zoho_subscription_id"]]


def test_a_cancelled_service_cancels_its_subscription_now_by_default(world):
    service = live_service(world)
    world.change(SERVICES, service, status="cancelled", cancellation_date=subscription_lifecycle.today())
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert sub(world, service)["status"] == "cancelled"
    assert writes(calls) == {CANCEL: 1} and calls[GET] == 1, "one read (still running?), one cancel"
    _, calls = world.sync()
    assert writes(calls) == {}


def test_cancel_at_end_of_term_leaves_it_non_renewing_until_zoho_ends_it(world):
    service = live_service(world)
    world.change(SERVICES, service, status="cancelled")
    report, calls = world.sync(AT_END)
    assert report.exit_code == 0, report.failures
    zoho = sub(world, service)
    assert zoho["status"] == "non_renewing" and writes(calls) == {CANCEL: 1}
    world.emulator.move_clock(now=zoho["current_term_ends_at"] + "T12:00:00Z")
    assert sub(world, service)["status"] == "cancelled"
    world.change(SERVICES, service, status="cancelled")  # an unrelated edit: nothing is sent again
    report, calls = world.sync(AT_END)
    assert report.exit_code == 0 and writes(calls) == {}


def test_a_future_cancellation_date_waits_for_that_day(world, monkeypatch):
    service = live_service(world)
    day = subscription_lifecycle.today() + timedelta(days=5)
    world.change(SERVICES, service, status="cancelled", cancellation_date=day)

    report, calls = world.sync()

    row = world.row(SERVICES, service)
    assert row["zoho_sync_status"] == "retrying" and row["zoho_error_code"] == "waiting"
    assert str(day) in row["zoho_last_sync_error"] and row["zoho_attempts"] == 0
    assert calls == {} and sub(world, service)["status"] == "live"
    assert report.entity("subscriptions").failed == 0, "waiting is not a failure"

    monkeypatch.setattr(subscription_lifecycle, "today", lambda: day)  # the day comes
    with world.engine.begin() as conn:
        conn.execute(
            SERVICES.update().where(SERVICES.c.id == service).values(zoho_next_attempt_at=R.ts(world.engine, R.now()))
        )
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert sub(world, service)["status"] == "cancelled" and writes(calls) == {CANCEL: 1}


def test_a_suspended_service_keeps_its_subscription_live_and_costs_no_call(world):
    service = live_service(world)
    world.change(SERVICES, service, status="suspended")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert sub(world, service)["status"] == "live" and calls == {}


def test_reactivation_of_a_non_renewing_subscription_reactivates_it(world):
    service = live_service(world)
    world.change(SERVICES, service, status="cancelled")
    world.sync(AT_END)
    zoho_id = world.row(SERVICES, service)["zoho_subscription_id"]
    world.change(SERVICES, service, status="active")
    report, calls = world.sync(AT_END)
    assert report.exit_code == 0, report.failures
    assert world.row(SERVICES, service)["zoho_subscription_id"] == zoho_id
    assert sub(world, service)["status"] == "live"
    assert writes(calls) == {REACTIVATE: 1} and calls[GET] == 1


def test_reactivation_of_a_cancelled_subscription_creates_a_new_one_and_never_adopts_the_old(world):
    service = live_service(world)
    old = world.row(SERVICES, service)["zoho_subscription_id"]
    world.change(SERVICES, service, status="cancelled")
    world.sync()
    world.change(SERVICES, service, status="active")
    world.sync_with_answers_lost()  # the new subscription is created, its answer lost
    assert world.row(SERVICES, service)["zoho_subscription_id"] == old
    world.change(SERVICES, service, status="active")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    new = world.row(SERVICES, service)["zoho_subscription_id"]
    assert new != old and world.store.subscriptions[old]["status"] == "cancelled"
    assert world.store.subscriptions[new]["status"] == "live"
    assert calls[CREATE] == 0, "the lost create was found by reference (the running one), not sent again"
    mine = [s for s in world.store.subscriptions.values() if s["reference_id"] == service]
    assert len(mine) == 2 and sum(s["status"] == "live" for s in mine) == 1


def test_reactivation_on_a_retired_package_fails_that_row_alone(world):
    service = live_service(world)
    world.change(SERVICES, service, status="cancelled")
    world.sync()
    package = world.row(SERVICES, service)["package_id"]
    world.change(T.service_packages, package, is_active=False)
    world.change(SERVICES, service, status="active")
    other = R.add_service(world.engine, R.add_customer(world.engine), R.add_package(world.engine, name="Fibre 50"))
    world.sync()
    row = world.row(SERVICES, service)
    assert row["zoho_sync_status"] == "failed" and row["zoho_last_sync_error"].startswith("package_id:")
    assert "retired" in row["zoho_last_sync_error"]
    assert world.row(SERVICES, other)["zoho_sync_status"] == "synced"


def test_a_cancellation_date_before_activation_fails_naming_the_field(world):
    service = live_service(world)
    world.change(SERVICES, service, status="cancelled", cancellation_date=R.now().date().replace(year=2024))
    world.sync()
    row = world.row(SERVICES, service)
    assert row["zoho_sync_status"] == "failed" and row["zoho_last_sync_error"].startswith("cancellation_date:")
    assert sub(world, service)["status"] == "live"


def test_a_price_change_reaches_zoho_at_the_next_renewal_by_default(world):
    service = live_service(world)
    world.change(SERVICES, service, monthly_price=Decimal("899.00"))
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert writes(calls) == {PUT: 1} and calls[GET] == 0, "one PUT; what was sent last is known without a read"
    zoho = sub(world, service)
    assert zoho["plan"]["price"] == 799.0, "not prorated now: the provider raises its own pro_rata invoice"
    scheduled = world.client.get(f"/subscriptions/{zoho['subscription_id']}/scheduledchanges")["subscription"]
    assert scheduled["plan"]["price"] == 899.0
    world.emulator.move_clock(now=zoho["next_billing_at"] + "T12:00:00Z")
    assert sub(world, service)["plan"]["price"] == 899.0


def test_a_price_change_under_the_immediate_policy_applies_now(world):
    service = live_service(world)
    world.change(SERVICES, service, monthly_price=Decimal("899.00"))
    report, calls = world.sync(IMMEDIATE_PLAN)
    assert report.exit_code == 0, report.failures
    assert writes(calls) == {PUT: 1}
    assert sub(world, service)["plan"]["price"] == 899.0


def test_a_scheduled_change_whose_answer_was_lost_is_not_sent_again(world):
    service = live_service(world)
    world.change(SERVICES, service, monthly_price=Decimal("899.00"))
    world.sync_with_answers_lost()
    world.change(SERVICES, service, monthly_price=Decimal("899.00"))
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert writes(calls) == {} and calls[SCHEDULED] == 1, "read back: ZOHO holds it as a scheduled change"


def test_a_re_send_reads_zoho_and_restores_a_price_edited_there(world):
    """mode `all` (or a drift repair): nothing changed in the source, so ZOHO's own state is read and compared."""
    service = live_service(world)
    zoho = sub(world, service)
    zoho["plan"]["price"] = 1.0  # edited by hand in ZOHO
    report, calls = world.sync(IMMEDIATE_PLAN, mode="all")
    assert report.exit_code == 0, report.failures
    assert calls[GET] == 1 and writes(calls)[PUT] == 1
    assert sub(world, service)["plan"]["price"] == 799.0
