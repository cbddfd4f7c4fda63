"""Issue 14 (b): a customer's account closed, reopened, suspended and edited after it reached ZOHO, through the
emulator over real HTTP, on SQLite and Postgres."""

from __future__ import annotations

import pytest

from zoho_pipeline.monitor.reconcile import reconcile_entity
from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.lifecycle import NO_RETRY, World, writes

CUSTOMERS = T.customers
PUT = "PUT /customers/{customer_id}"
INACTIVE = "POST /customers/{customer_id}/markasinactive"
ACTIVE = "POST /customers/{customer_id}/markasactive"
CANCEL = "POST /subscriptions/{subscription_id}/cancel"
LIST_SUBS = "GET /subscriptions"


@pytest.fixture
def world(db_url, emulator):
    w = World(db_url, emulator)
    yield w
    w.close()


def account(world, services=1):
    """A customer with `services` live services, synced."""
    package = R.add_package(world.engine)
    customer = R.add_customer(world.engine)
    subs = [R.add_service(world.engine, customer, package) for _ in range(services)]
    report, _ = world.sync()
    assert report.exit_code == 0, report.failures
    return customer, subs


def zoho(world, customer) -> dict:
    return world.store.customers[world.row(CUSTOMERS, customer)["zoho_billing_customer_id"]]


def status_differences(world, entity):
    result = reconcile_entity(world.engine, world.client, entity)
    return [d for d in result.differences if "status" in str(d)]


def test_closing_cancels_the_live_subscriptions_then_marks_inactive_and_reopening_marks_active(world):
    customer, subs = account(world, services=2)
    world.change(CUSTOMERS, customer, status="closed")

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "inactive"
    for sub in subs:
        zoho_sub = world.store.subscriptions[world.row(T.customer_services, sub)["zoho_subscription_id"]]
        assert zoho_sub["status"] == "cancelled"
    assert writes(calls) == {CANCEL: 2, INACTIVE: 1}, "only the state moved: no PUT"
    assert calls[LIST_SUBS] == 1, "one read: which subscriptions ZOHO still runs"
    assert status_differences(world, "customers") == []

    world.change(CUSTOMERS, customer, status="active")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "active"
    assert writes(calls) == {ACTIVE: 1} and calls[LIST_SUBS] == 0
    assert status_differences(world, "customers") == []
    _, calls = world.sync()
    assert writes(calls) == {}


def test_an_edit_and_an_email_change_update_the_same_zoho_customer(world):
    customer, _ = account(world, services=0)
    zoho_id = world.row(CUSTOMERS, customer)["zoho_billing_customer_id"]
    world.change(CUSTOMERS, customer, email="thandi.new@example.co.za", last_name="Nkosi-Mokoena")

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert world.row(CUSTOMERS, customer)["zoho_billing_customer_id"] == zoho_id
    assert len(world.store.customers) == 1
    assert zoho(world, customer)["email"] == "thandi.new@example.co.za"
    assert zoho(world, customer)["last_name"] == "Nkosi-Mokoena"
    assert writes(calls) == {PUT: 1}, "an edit is one update; no markas call for an active customer"


def test_a_suspended_account_stays_active_in_zoho(world):
    customer, subs = account(world)
    world.change(CUSTOMERS, customer, status="suspended")

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "active"
    assert writes(calls) == {}, "nothing ZOHO holds changed: the payload's hash is the same, no call"
    zoho_sub = world.store.subscriptions[world.row(T.customer_services, subs[0])["zoho_subscription_id"]]
    assert zoho_sub["status"] == "live"
    assert status_differences(world, "customers") == []


def test_a_customer_first_pushed_closed_is_created_and_marked_inactive(world):
    customer = R.add_customer(world.engine)
    world.change(CUSTOMERS, customer, status="closed")
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "inactive"
    assert writes(calls) == {"POST /customers": 1, INACTIVE: 1}


def test_a_dropped_answer_on_closure_is_retried_to_one_inactive_customer(world):
    customer, subs = account(world)
    world.change(CUSTOMERS, customer, status="closed")
    world.emulator.set_faults(drop_rate=1.0)
    try:
        world.sync(NO_RETRY)
    finally:
        world.emulator.set_faults(drop_rate=0.0)
    row = world.row(CUSTOMERS, customer)
    assert row["zoho_sync_status"] == "retrying" and row["zoho_create_in_doubt"]
    world.change(CUSTOMERS, customer, status="closed")  # due now, not after the backoff
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "inactive"
    # the lost answer was the cancel's: in doubt, ZOHO's state is read (the PUT's answer, the list), and the
    # subscription it shows cancelled is not cancelled again
    assert writes(calls) == {PUT: 1, INACTIVE: 1}


@pytest.mark.parametrize("died_after", ["put", "cancel", "markasinactive"])
def test_a_run_killed_mid_closure_finishes_it_without_repeating_a_call(world, died_after):
    """What the killed run had sent is read back (the PUT's answer, the subscription list): only the rest is sent."""
    customer, subs = account(world)
    world.change(CUSTOMERS, customer, status="closed")
    zoho_id = world.row(CUSTOMERS, customer)["zoho_billing_customer_id"]
    sub_id = world.row(T.customer_services, subs[0])["zoho_subscription_id"]
    world.die_mid_attempt(CUSTOMERS, customer)
    world.client.put(f"/customers/{zoho_id}", json={"display_name": zoho(world, customer)["display_name"]})
    if died_after in ("cancel", "markasinactive"):
        world.client.post(f"/subscriptions/{sub_id}/cancel", params={"cancel_at_end": "false"})
    if died_after == "markasinactive":
        world.client.post(f"/customers/{zoho_id}/markasinactive")

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "inactive"
    assert world.store.subscriptions[sub_id]["status"] == "cancelled"
    expected = {"put": {PUT: 1, CANCEL: 1, INACTIVE: 1}, "cancel": {PUT: 1, INACTIVE: 1}, "markasinactive": {PUT: 1}}
    assert writes(calls) == expected[died_after]


def test_a_reopened_accounts_service_gets_a_new_subscription_when_resent(world):
    """The runbook's procedure: reconcile shows the service live and its subscription cancelled by the closure;
    a forced re-send (what `retry subscriptions ID --force` runs) replaces it with a live one."""
    customer, subs = account(world)
    world.change(CUSTOMERS, customer, status="closed")
    world.sync()
    world.change(CUSTOMERS, customer, status="active")
    world.sync()
    assert any(d.field == "status" for d in reconcile_entity(world.engine, world.client, "subscriptions").differences)
    old = world.row(T.customer_services, subs[0])["zoho_subscription_id"]

    report, calls = world.sync(mode="all", ids={"subscriptions": [subs[0]]}, entities=["subscriptions"])

    assert report.exit_code == 0, report.failures
    new = world.row(T.customer_services, subs[0])["zoho_subscription_id"]
    assert new != old and world.store.subscriptions[new]["status"] == "live"
    assert status_differences(world, "subscriptions") == []
