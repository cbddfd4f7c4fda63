"""Subscription actions: cancel (now or at the end of the term), reactivate, postpone, scheduled changes."""

from __future__ import annotations

from ..errors import bad, refuse
from . import terms
from .common import Ctx, ok, valid_date
from .subscriptions import ENDED, find


def cancel_subscription(ctx: Ctx):
    """`cancel_at_end` in the query (subscription.yml) or the body (some clients send it there).
    true: `non_renewing` until the term ends, then `cancelled` (the clock does it); false: `cancelled` today.
    A `future` subscription has no term to finish: it is cancelled at once either way."""
    sub = find(ctx)
    if sub["status"] in ENDED:
        raise refuse("subscription_already_cancelled")
    at_end = str(ctx.query.get("cancel_at_end", ctx.body.get("cancel_at_end", "false"))).lower() == "true"
    if at_end and sub["status"] != "future":
        sub.update(status="non_renewing", expires_at=sub["current_term_ends_at"], end_of_term=True)
        message = "Your subscription will be canceled at the end of this term."
    else:
        terms.drop_change(ctx, sub)
        sub.update(status="cancelled", cancelled_at=ctx.today(), expires_at="", next_billing_at="", end_of_term=False)
        message = "Your subscription has been canceled."
    sub.update(source="user", updated_time=ctx.timestamp())
    return ok(message, subscription=sub)


def reactivate_subscription(ctx: Ctx):
    """subscription.yml: "You can reactivate a subscription only if the status of the subscription is
    non-renewing." The product can also reactivate a `cancelled` one (events, help pages), but what the API does
    then is unknown, so the emulator keeps to the OAS and refuses: a cancelled service comes back as a new
    subscription (../shared/reference/zoho-billing-lifecycle.md §3.2, "Fallback")."""
    sub = find(ctx)
    if sub["status"] != "non_renewing":
        raise refuse("subscription_not_non_renewing", status=sub["status"])
    sub.update(
        status="live",
        expires_at="",
        end_of_term=False,
        next_billing_at=sub["current_term_ends_at"],
        updated_time=ctx.timestamp(),
    )
    return ok("Subscription has been reactivated successfully.", subscription=sub)


def postpone_subscription(ctx: Ctx):
    """POST /subscriptions/{id}/postpone {renewal_at}: the renewal moves later ("can only be postponed and not
    preponed"); the current term lasts until then."""
    sub = find(ctx)
    if ctx.body.get("renewal_at") in (None, ""):
        raise bad(4, "Please enter renewal_at. renewal_at is mandatory.")
    renewal_at = valid_date(ctx.body["renewal_at"], "renewal_at")
    if sub["status"] != "live":
        raise refuse("postpone_not_live", status=sub["status"])
    if renewal_at <= sub["next_billing_at"]:
        raise refuse("postpone_not_later", renewal_at=renewal_at, next_billing_at=sub["next_billing_at"])
    terms.postpone(ctx, sub, renewal_at)
    return ok("Billing date of the subscription has been changed.", subscription=sub)


def get_scheduled_changes(ctx: Ctx):
    """The subscription as its next renewal will make it (plan, addons, amount), from an end-of-term PUT."""
    sub = find(ctx)
    preview = terms.scheduled(ctx, sub)
    if preview is None:
        raise refuse("no_scheduled_changes")
    return ok("success", subscription=preview)


def delete_scheduled_changes(ctx: Ctx):
    """Not in the OAS; seen in client code (BS, DP): drops the end-of-term change."""
    sub = find(ctx)
    if not terms.drop_change(ctx, sub):
        raise refuse("no_scheduled_changes")
    return ok("The scheduled changes have been deleted.")
