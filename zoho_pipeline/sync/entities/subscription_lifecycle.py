"""A service's later life in ZOHO, once its subscription exists.

- `cancelled` → `POST /subscriptions/{id}/cancel`, `cancel_at_end` per ZOHO_CANCEL_AT (default immediate). A
  `cancellation_date` in the future waits for that day (ZOHO has no "cancel on date X"): the row is due again then.
  A service of a closed account is cancelled with it (customer_lifecycle cancels it in ZOHO first).
- `suspended` keeps the subscription live: ZOHO's documented API has no suspend (docs/runbook.md).
- reactivated (`cancelled` → `active`): a `non_renewing` subscription is reactivated; a `cancelled` one cannot be
  (ZOHO's OAS: "only if the status … is non-renewing"), so a new subscription replaces it, and the look-up by
  reference never adopts an ended one.
- package or price change → `PUT` with `end_of_term` per ZOHO_PLAN_CHANGE_AT (default end_of_term: the provider
  raises its own pro_rata invoices, so ZOHO prorating too would bill twice). `plan` is sent only when the code or
  price changed, and not again when ZOHO already holds it as a scheduled change.

What was sent last is the accepted payload (sync/payloads.py); ZOHO is read only where its state decides the action
(is the subscription still running before a cancel; non_renewing or cancelled before a reactivation), after doubt,
or when no accepted payload is kept for the row.
"""

from __future__ import annotations

import logging
from datetime import datetime, time
from zoneinfo import ZoneInfo

from zoho_pipeline.source.database import utcnow
from zoho_pipeline.sync.entities.base import InvalidRow, Waiting, known_previous, public
from zoho_pipeline.sync.settings import END_OF_TERM
from zoho_pipeline.zoho.errors import ZohoError

log = logging.getLogger("zoho_pipeline.sync.lifecycle")

LOCAL_TIME = ZoneInfo("Africa/Johannesburg")  # the provider's dates (cancellation_date) are its local days
ENDED = {"cancelled", "expired", "cancelled_from_dunning", "trial_expired", "creation_failed"}
NO_SCHEDULED_CHANGE = 1009  # the emulator's answer when nothing is scheduled (ZOHO's own is uncertain)


def today():
    return utcnow().astimezone(LOCAL_TIME).date()


def mark(payload: dict, row) -> dict:
    """The cancellation's day in the payload when it is still ahead (only then: other rows keep their hash)."""
    if not payload["_cancelled"] or row["status"] != "cancelled":
        return payload
    day, started = row.get("cancellation_date"), row.get("activation_date")
    if day is not None and started is not None and day < started:
        raise InvalidRow("cancellation_date", f"{day} is before the activation_date {started}")
    if day is not None and day > today():
        payload["_cancel_on"] = day.isoformat()
    return payload


def check_reactivation(row) -> None:
    """A service coming back on a package no longer offered cannot get a new subscription on it."""
    if row.get("package_active") is False:
        raise InvalidRow("package_id", f"package {row.get('package_name')!r} is retired (is_active false)")


def cancel(client, zoho_id: str, payload: dict, row, ctx) -> None:
    if payload.get("_cancel_on"):
        day = datetime.fromisoformat(payload["_cancel_on"]).date()
        raise Waiting(f"cancellation_date {day} is ahead: cancelled in ZOHO on that day", _local_midnight(day))
    status = _status(client, zoho_id)
    at_end = ctx.settings.cancel_at == END_OF_TERM and row.get("customer_status") != "closed"
    if status in ENDED or (status == "non_renewing" and at_end):
        return  # ZOHO already holds it (an earlier attempt, the clock, or the customer's closure)
    client.post(f"/subscriptions/{zoho_id}/cancel", params={"cancel_at_end": "true" if at_end else "false"})
    log.info("cancelled entity=subscriptions id=%s zoho_id=%s at_end=%s", row["id"], zoho_id, at_end)


def update(client, zoho_id: str, payload: dict, row, ctx, *, create, lookup) -> str | None:
    """A live service whose payload changed. Returns the new subscription's id when one replaced a cancelled one."""
    previous, current = known_previous(ctx, payload), None
    if previous is None or previous.get("_cancelled") or ctx.in_doubt or ctx.adopted:
        current = client.get(f"/subscriptions/{zoho_id}")["subscription"]
        status = (current.get("status") or "").lower()
        if status == "non_renewing":
            client.post(f"/subscriptions/{zoho_id}/reactivate")
            log.info("reactivated entity=subscriptions id=%s zoho_id=%s", row["id"], zoho_id)
        elif status in ENDED:
            return _replace(client, zoho_id, payload, row, ctx, create, lookup)
    body = public(payload, drop=("customer_id", "starts_at", "plan"))
    if _plan_changed(client, zoho_id, payload, previous, current, ctx):
        body["plan"] = payload["plan"]
        body["end_of_term"] = ctx.settings.plan_change_at == END_OF_TERM
    elif previous is not None and public(previous, drop=("plan",)) == public(payload, drop=("plan",)):
        return None  # only private state moved (suspended ↔ active, say): nothing ZOHO holds changed
    client.put(f"/subscriptions/{zoho_id}", json=body)
    return None


def _replace(client, old_id, payload, row, ctx, create, lookup) -> str:
    check_reactivation(row)
    found = lookup(client, payload, row, ctx) if (ctx.in_doubt or ctx.adopted) else None
    if found and found != old_id:
        log.info("replacement found entity=subscriptions id=%s zoho_id=%s: not created again", row["id"], found)
        return found
    body = public(payload)
    body.pop("starts_at", None)  # the service is back from today (ZOHO cannot backdate a reactivation)
    new_id = create(client, body)
    ctx.remember_zoho_id(new_id)
    log.info(
        "replaced entity=subscriptions id=%s old=%s new=%s (a cancelled one cannot be reactivated)",
        row["id"],
        old_id,
        new_id,
    )
    return new_id


def _plan_changed(client, zoho_id, payload, previous, current, ctx) -> bool:
    """The code or price differs from what was sent last; after doubt, or with nothing kept, from what ZOHO holds
    or will hold at renewal (a scheduled change counts)."""
    want = payload["plan"]
    if previous is not None and not (ctx.in_doubt or ctx.adopted):
        return _plan_key(previous.get("plan")) != _plan_key(want)
    current = current or client.get(f"/subscriptions/{zoho_id}")["subscription"]
    if _plan_key(current.get("plan")) == _plan_key(want):
        return False
    if ctx.settings.plan_change_at != END_OF_TERM:
        return True
    try:
        scheduled = client.get(f"/subscriptions/{zoho_id}/scheduledchanges")["subscription"]
    except ZohoError as exc:
        if exc.code == NO_SCHEDULED_CHANGE or exc.http_status == 404:
            return True
        raise
    return _plan_key(scheduled.get("plan")) != _plan_key(want)


def _plan_key(plan) -> tuple:
    plan = plan or {}
    price = plan.get("price")
    return plan.get("plan_code"), None if price is None else round(float(price), 2)


def _status(client, zoho_id: str) -> str:
    return (client.get(f"/subscriptions/{zoho_id}")["subscription"].get("status") or "").lower()


def _local_midnight(day):
    return datetime.combine(day, time.min, tzinfo=LOCAL_TIME)


def calls(payload: dict, creating: bool) -> int:
    """The dry run's estimate: a cancel reads the subscription first (is it still running?), then cancels."""
    if payload["_cancelled"]:
        return 0 if creating or payload.get("_cancel_on") else 2
    return 1
