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
    assert writes(calls) == {ACTIVE: 1, "POST /subscriptions": 2} and calls[LIST_SUBS] == 0  # the services back
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
    world.sync_with_answers_lost()
    row = world.row(CUSTOMERS, customer)
    assert row["zoho_sync_status"] == "retrying" and row["zoho_create_in_doubt"]
    world.change(CUSTOMERS, customer, status="closed")  # due now, not after the backoff
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "inactive"
    # the lost answer was the cancel's: in doubt, ZOHO's state is read (the PUT's answer, the list), and the
    # subscription it shows cancelled is not cancelled again
    assert writes(calls) == {PUT: 1, INACTIVE: 1}


def test_a_reopening_after_a_closure_whose_answer_was_lost_marks_the_customer_active_again(world):
    """The closure's markasinactive acted and its answer was lost: the row is in doubt, its hash still the open
    account's, ZOHO's customer inactive. Reopened in the source, the payload's hash is that one again: the row in
    doubt is sent anyway and ZOHO's state read from the PUT's answer (no `retry --force`)."""
    customer, _ = account(world, services=0)
    world.change(CUSTOMERS, customer, status="closed")
    world.sync_with_answers_lost()
    row = world.row(CUSTOMERS, customer)
    assert row["zoho_sync_status"] == "retrying" and row["zoho_create_in_doubt"]
    assert zoho(world, customer)["status"] == "inactive", "ZOHO acted; the pipeline never learned it"
    world.change(CUSTOMERS, customer, status="active")
    dry, calls = world.sync(dry_run=True)
    assert dry.entities["customers"].would_update == 1 and not calls, "the dry run counts it the same way"

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "active"
    assert writes(calls) == {PUT: 1, ACTIVE: 1}
    assert world.row(CUSTOMERS, customer)["zoho_sync_status"] == "synced"
    assert status_differences(world, "customers") == []
    _, calls = world.sync()
    assert writes(calls) == {}


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


SERVICES = T.customer_services
CREATE_SUB = "POST /subscriptions"
GET_SUB = "GET /subscriptions/{subscription_id}"


def live_subscriptions(world, service) -> list[dict]:
    return [
        s
        for s in world.store.subscriptions.values()
        if s["reference_id"] == str(service) and s["status"] not in ("cancelled", "expired")
    ]


def closed_then_reopened(world, services=1):
    """An account with live services, closed (its subscriptions cancelled in ZOHO), then reopened in the source."""
    customer, subs = account(world, services=services)
    world.change(CUSTOMERS, customer, status="closed")
    report, _ = world.sync()
    assert report.exit_code == 0, report.failures
    old = {svc: world.row(SERVICES, svc)["zoho_subscription_id"] for svc in subs}
    assert all(world.store.subscriptions[o]["status"] == "cancelled" for o in old.values())
    world.change(CUSTOMERS, customer, status="active")
    return customer, subs, old


def test_reopening_gives_the_live_services_their_subscriptions_back_in_the_same_sync(world):
    """Issue 14: the closure cancelled the subscriptions; the reopening's own run marks the customer active and,
    by the reactivation policy (a cancelled subscription cannot be reactivated), gives each service the source
    shows live a new one — the runbook's `retry subscriptions ID --force` is no longer needed."""
    customer, subs, old = closed_then_reopened(world, services=2)
    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "active"
    assert writes(calls) == {ACTIVE: 1, CREATE_SUB: 2}
    assert calls[GET_SUB] == 2, "one read each: ZOHO's status decides reactivate or replace"
    for svc in subs:
        new = world.row(SERVICES, svc)["zoho_subscription_id"]
        assert new != old[svc] and world.store.subscriptions[old[svc]]["status"] == "cancelled"
        assert [s["subscription_id"] for s in live_subscriptions(world, svc)] == [new]
    assert status_differences(world, "subscriptions") == [] and status_differences(world, "customers") == []
    _, calls = world.sync()
    assert writes(calls) == {}


def test_reopening_leaves_a_service_cancelled_meanwhile_alone(world):
    customer, (kept, gone), old = closed_then_reopened(world, services=2)
    world.change(SERVICES, gone, status="cancelled")  # while the account was closed
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert writes(calls) == {ACTIVE: 1, CREATE_SUB: 1}
    assert live_subscriptions(world, gone) == [] and len(live_subscriptions(world, kept)) == 1
    assert status_differences(world, "subscriptions") == []


def test_a_reopening_whose_answers_are_lost_makes_one_subscription_per_service(world):
    """Every write of the reopening's run acts and loses its answer; the next runs read ZOHO before acting again."""
    customer, subs, _ = closed_then_reopened(world, services=2)
    world.sync_with_answers_lost()
    for _ in range(3):  # the customer first (its reopening known only now), then the services it woke
        for table, row_id in [(CUSTOMERS, customer), *((SERVICES, s) for s in subs)]:
            if world.row(table, row_id)["zoho_sync_status"] == "retrying":
                world.change(table, row_id)  # due now, not after the backoff
        report, _ = world.sync()
    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "active"
    for svc in subs:
        (live,) = live_subscriptions(world, svc)
        assert world.row(SERVICES, svc)["zoho_subscription_id"] == live["subscription_id"]
    assert status_differences(world, "subscriptions") == []


def test_a_run_killed_after_creating_the_new_subscription_does_not_create_another(world):
    customer, (svc,), old = closed_then_reopened(world)
    world.sync(entities=["customers"])  # the reopening recorded: the service is due
    zoho_customer = world.row(CUSTOMERS, customer)["zoho_billing_customer_id"]
    world.die_mid_attempt(SERVICES, svc)  # the killed run's create reached ZOHO, its answer never recorded
    plan = world.store.subscriptions[old[svc]]["plan"]
    body = {"customer_id": zoho_customer, "plan": {"plan_code": plan["plan_code"]}, "reference_id": str(svc)}
    made = world.client.post("/subscriptions", json=body)["subscription"]["subscription_id"]

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert CREATE_SUB not in writes(calls), "looked up, found, not created again"
    assert world.row(SERVICES, svc)["zoho_subscription_id"] == made
    assert [s["subscription_id"] for s in live_subscriptions(world, svc)] == [made]


@pytest.fixture
def refuse_markasinactive():
    """refuse(status): ZOHO answers every `markasinactive` with `status` (400: refused; 500: failed), acting on
    nothing; refuse(None): ZOHO takes it again (also after the test)."""
    from zoho_pipeline.emulator import api
    from zoho_pipeline.emulator.errors import ApiError

    (i,) = [i for i, r in enumerate(api.ROUTES) if r[:2] == ("POST", "/customers/{customer_id}/markasinactive")]
    original = api.ROUTES[i]

    def refuse(status: int | None) -> None:
        def handler(ctx):
            raise ApiError(status, 4 if status == 400 else 9, "markasinactive refused for the test")

        api.ROUTES[i] = original if status is None else (*original[:2], handler)

    try:
        yield refuse
    finally:
        api.ROUTES[i] = original


def closed_half_way(world, refuse_markasinactive, status, services=2):
    """A closure whose subscriptions ZOHO cancelled and whose `markasinactive` it then refused or failed."""
    customer, subs = account(world, services=services)
    old = {svc: world.row(SERVICES, svc)["zoho_subscription_id"] for svc in subs}
    world.change(CUSTOMERS, customer, status="closed")
    refuse_markasinactive(status)
    report, calls = world.sync(NO_RETRY)
    refuse_markasinactive(None)  # ZOHO takes markasinactive again from here on
    assert report.exit_code != 0 and calls[CANCEL] == len(subs)
    assert world.row(CUSTOMERS, customer)["zoho_sync_status"] in ("failed", "retrying")
    assert zoho(world, customer)["status"] == "active"
    assert all(world.store.subscriptions[o]["status"] == "cancelled" for o in old.values())
    return customer, subs, old


@pytest.mark.parametrize("status", [400, 500])
def test_a_reopening_after_a_closure_that_failed_half_way_gives_the_services_their_subscriptions_back(
    world, refuse_markasinactive, status
):
    """The closure cancelled the subscriptions, then ZOHO refused (or failed) `markasinactive`: the customer is
    active in ZOHO, its services' rows never changed. Reopened in the source, its live services get one new live
    subscription each, without `retry --force`."""
    customer, subs, old = closed_half_way(world, refuse_markasinactive, status)
    world.change(CUSTOMERS, customer, status="active")

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "active"
    assert writes(calls) == {PUT: 1, CREATE_SUB: 2}, "in doubt: the PUT's answer shows it active, no markas*"
    for svc in subs:
        new = world.row(SERVICES, svc)["zoho_subscription_id"]
        assert new != old[svc] and world.row(SERVICES, svc)["zoho_sync_status"] == "synced"
        assert [s["subscription_id"] for s in live_subscriptions(world, svc)] == [new]
    assert world.row(CUSTOMERS, customer)["zoho_sync_status"] == "synced"
    assert status_differences(world, "subscriptions") == [] and status_differences(world, "customers") == []
    _, calls = world.sync()
    assert writes(calls) == {}


@pytest.mark.parametrize("status", [400, 500])
def test_a_closure_that_failed_half_way_and_is_retried_closed_recreates_no_subscription(
    world, refuse_markasinactive, status
):
    customer, subs, old = closed_half_way(world, refuse_markasinactive, status)
    world.change(CUSTOMERS, customer, status="closed")  # due now, not after the backoff

    report, calls = world.sync()

    assert report.exit_code == 0, report.failures
    assert zoho(world, customer)["status"] == "inactive"
    assert CREATE_SUB not in writes(calls) and CANCEL not in writes(calls)
    assert all(live_subscriptions(world, svc) == [] for svc in subs)
    assert status_differences(world, "subscriptions") == [] and status_differences(world, "customers") == []
    _, calls = world.sync()
    assert writes(calls) == {}
    world.change(CUSTOMERS, customer, status="active")  # reopened after the closure finished: the usual path
    report, calls = world.sync()
    assert report.exit_code == 0, report.failures
    assert writes(calls) == {ACTIVE: 1, CREATE_SUB: 2}
    assert all(len(live_subscriptions(world, svc)) == 1 for svc in subs)
