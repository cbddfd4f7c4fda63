"""A customer's later life in ZOHO: an account `closed` in the source → its subscriptions that have not ended are
cancelled (ZOHO marks a customer inactive only without active subscriptions), then `markasinactive`; reopened →
`markasactive`, and its live services are sent again in the same run (their subscriptions come back by the
reactivation policy). `suspended` keeps the ZOHO customer active: ZOHO's customer is only active or inactive, and a
suspended service keeps its subscription live (docs/runbook.md). Edits of mapped fields and of the email update
the same ZOHO customer: the anchor is its id (found again by the provider-id custom field, never the email).

Whether a `markas*` call is due: a change of the account's state alone is known from the accepted payload (what
was sent last), so a closure or a reopening sends no `PUT`; when fields changed too, after doubt, or with nothing
kept, ZOHO's own state is read from the answer of the `PUT` that is sent anyway, so a repeated attempt sends only
what ZOHO does not show yet.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from zoho_pipeline.source.tables import customer_services as services
from zoho_pipeline.sync import payloads
from zoho_pipeline.sync.entities.base import known_previous, public

log = logging.getLogger("zoho_pipeline.sync.lifecycle")

CLOSED = "closed"
LIVE_SERVICES = ("active", "suspended")  # subscriptions.LIVE_STATUSES: the services that keep a live subscription
INACTIVE = "_inactive"  # private payload key: the customer must be inactive in ZOHO
# ZOHO statuses of a subscription that has ended; every other one blocks `markasinactive` (conservative reading,
# ../shared/reference/zoho-billing-lifecycle.md §3.1: which statuses count as "active" is uncertain)
ENDED = {"cancelled", "expired", "cancelled_from_dunning", "trial_expired", "creation_failed"}


def mark(payload: dict, row) -> dict:
    """The closed state in the payload, so a closure and a reopening are changes of the hash. Only for a closed
    account: an active customer's hash stays what it was before lifecycles."""
    if row["status"] == CLOSED:
        payload[INACTIVE] = True
    return payload


def after_create(client, zoho_id: str, payload: dict, row) -> None:
    """A customer first pushed when already closed (its invoices and payments still need it in ZOHO)."""
    if payload.get(INACTIVE):
        client.post(f"/customers/{zoho_id}/markasinactive")
        log.info("marked inactive entity=customers id=%s zoho_id=%s (created closed)", row["id"], zoho_id)


def update(client, zoho_id: str, payload: dict, row, ctx) -> None:
    previous = known_previous(ctx, payload)
    if previous is None or public(previous) != public(payload) or ctx.in_doubt or ctx.adopted:
        current = client.put(f"/customers/{zoho_id}", json=public(payload)).get("customer") or {}
        status = (current.get("status") or "").lower()
    else:  # only the account's state moved: ZOHO is where we left it (the markas* calls converge if not)
        status = "inactive" if previous.get(INACTIVE) else "active"
    if payload.get(INACTIVE) and status != "inactive":
        cancelled = _end_subscriptions(client, zoho_id, ctx)
        client.post(f"/customers/{zoho_id}/markasinactive")
        log.info(
            "closed entity=customers id=%s zoho_id=%s: %d subscription(s) cancelled, marked inactive",
            row["id"],
            zoho_id,
            cancelled,
        )
    elif not payload.get(INACTIVE) and status == "inactive":
        client.post(f"/customers/{zoho_id}/markasactive")
        log.info("reopened entity=customers id=%s zoho_id=%s: marked active", row["id"], zoho_id)


def resend_reopened_services(conn, before: dict, now: dict) -> None:
    """A reopened account (ZOHO last accepted it closed, now open): its services the source shows live are sent
    again in full in this run, in the transaction that records the reopening. The closure cancelled their
    subscriptions in ZOHO, and a service's own payload does not change with its account, so nothing else would make
    them due. Sent again like `retry subscriptions ID --force` (hash and accepted payload forgotten), the
    subscription's update reads ZOHO's status and follows the reactivation policy (subscription_lifecycle: a
    cancelled one is replaced by a new subscription, a non_renewing one reactivated, a running one left as it is),
    looking its replacement up after any doubt, so a retry never makes a second one."""
    reopened = [row_id for row_id, payload in now.items() if not payload.get(INACTIVE) and _was_closed(before, row_id)]
    if not reopened:
        return
    c = services.c
    live = sa.and_(
        c.customer_id.in_(reopened),
        c.status.in_(LIVE_SERVICES),
        c.zoho_subscription_id.is_not(None),
        sa.or_(c.zoho_sync_status.is_(None), c.zoho_sync_status != "syncing"),  # a live run owns those
    )
    ids = list(conn.execute(sa.select(c.id).where(live)).scalars())
    if not ids:
        return
    payloads.forget(conn, "subscriptions", ids)
    conn.execute(
        services.update()
        .where(c.id.in_(ids))
        .values(
            zoho_sync_status="pending",
            zoho_payload_hash=None,
            zoho_attempts=0,
            zoho_next_attempt_at=None,
            zoho_dead_lettered=False,
        )
    )
    log.info("reopened entity=customers ids=%s: %d live service(s) sent again", reopened, len(ids))


def _was_closed(before: dict, row_id) -> bool:
    return bool((before.get(str(row_id)) or {}).get(INACTIVE))


def _end_subscriptions(client, customer_id: str, ctx) -> int:
    """Cancel now every subscription of the customer that has not ended: the closure is today, whatever
    ZOHO_CANCEL_AT says, since ZOHO refuses `markasinactive` while one is still running. Once a cancel is sent
    the closure is under way (ctx.acted): if `markasinactive` then fails, the closed payload is kept as the last
    accepted, so a reopening after it is one (resend_reopened_services), not a skip."""
    open_ones = [
        s["subscription_id"]
        for s in client.iter_list(
            "/subscriptions",
            "subscriptions",
            params={"customer_id": customer_id, "filter_by": "SubscriptionStatus.All"},
        )
        if (s.get("status") or "").lower() not in ENDED
    ]
    for subscription_id in open_ones:
        ctx.acted = True
        client.post(f"/subscriptions/{subscription_id}/cancel", params={"cancel_at_end": "false"})
    return len(open_ones)


def compare_status(row, remote) -> list[tuple]:
    """Reconciliation: a closed account is inactive in ZOHO; any other (active, suspended) is active."""
    status = (remote.get("status") or "").lower()
    if not status or (row.get("status") == CLOSED) == (status == "inactive"):
        return []
    return [("status", row.get("status"), status, "a closed account is inactive in ZOHO, any other active")]


def calls(payload: dict, creating: bool) -> int:
    """The dry run's estimate: a closed account's create is marked inactive (+1); an update of a closed one may
    list and cancel its subscriptions and mark it (+2, at least: the cancels are not known without a read)."""
    if not payload.get(INACTIVE):
        return 1
    return 2 if creating else 3
