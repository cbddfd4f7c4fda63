"""Subscriptions: create, list, get, update (now or at the end of the term), delete.

Their life over time (activation, renewals and the invoices they raise, the end of a term) is ``terms``; the
actions (cancel, reactivate, postpone, scheduled changes) are ``subscription_actions``.
"""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad, not_found, refuse
from . import customers as customers_mod
from . import pricing, terms
from .common import Ctx, created, custom_fields, ok, page, stored, text

ENDED = ("cancelled", "expired")

STATUS_FILTERS = {
    "all": None,
    "active": {"live", "non_renewing", "trial", "future", "unpaid"},
    "live": {"live"},
    "future": {"future"},
    "trial": {"trial"},
    "unpaid": {"unpaid"},
    "non_renewing": {"non_renewing"},
    "cancelled": {"cancelled"},
    "expired": {"expired"},
    "past_due": {"past_due"},
}


def find(ctx: Ctx) -> dict:
    return stored(
        ctx.store.subscriptions, ctx.params["subscription_id"], not_found, 1002, "Subscription ID does not exist."
    )


def create_subscription(ctx: Ctx):
    body = ctx.body
    if body.get("customer_id") not in (None, ""):
        customer = customers_mod.find(ctx, body["customer_id"])
    elif isinstance(body.get("customer"), dict):
        customer = customers_mod.create_customer(ctx.with_body(body["customer"]))[1]["customer"]
        customer = ctx.store.customers[customer["customer_id"]]
    else:
        raise bad(3004, "Please enter a valid reference for the customer")
    if not isinstance(body.get("plan"), dict):
        raise bad(4, "Please enter plan. plan is mandatory.")
    now, sid = ctx.timestamp(), ctx.store.new_id()
    starts = ctx.date(body.get("starts_at"), "starts_at")
    sub = {
        "subscription_id": sid,
        "customer_id": customer["customer_id"],
        "status": "",
        "source": "api",
        "reference_id": text(body, "reference_id"),
        "auto_collect": bool(body.get("auto_collect", True)),
        "salesperson_id": "",
        "salesperson_name": text(body, "salesperson_name"),
        "child_invoice_id": "",
        "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"],
        "end_of_term": False,
        "expires_at": "",
        "payment_terms": customer.get("payment_terms", 0),
        "payment_terms_label": customer.get("payment_terms_label", ""),
        "created_time": now,
        "updated_time": now,
        "custom_fields": custom_fields(body.get("custom_fields")),
        "customer": pricing.customer_block(customer),
        "contactpersons": [
            {
                "contactperson_id": customer["customer_id"],
                "email": customer["email"],
                "phone": customer.get("phone", ""),
                "mobile": customer.get("mobile", ""),
                "zcrm_contact_id": "",
            }
        ],
    }
    pricing.price(ctx, sub, body["plan"], body.get("addons") or [])
    ctx.store.subscriptions[sid] = sub
    terms.start(ctx, sub, starts, bool(body.get("create_backdated_invoice")))
    return created("Subscription has been created successfully.", subscription=sub)


def list_subscriptions(ctx: Ctx):
    flt = ctx.query.get("filter_by", "SubscriptionStatus.All")
    wanted = STATUS_FILTERS.get(flt.split(".")[-1].lower())
    items = list(ctx.store.subscriptions.values())
    if wanted is not None:
        items = [s for s in items if s["status"] in wanted]
    if ctx.query.get("customer_id"):
        items = [s for s in items if s["customer_id"] == ctx.query["customer_id"]]
    if ctx.query.get("plan_code"):
        items = [s for s in items if s["plan"]["plan_code"] == ctx.query["plan_code"]]
    if ctx.query.get("reference_contains"):
        items = [s for s in items if ctx.query["reference_contains"] in s["reference_id"]]
    if ctx.query.get("reference_id"):
        items = [s for s in items if s["reference_id"] == ctx.query["reference_id"]]
    listed = (
        "customer_id",
        "customer_name",
        "email",
        "subscription_id",
        "name",
        "status",
        "sub_total",
        "amount",
        "activated_at",
        "current_term_starts_at",
        "current_term_ends_at",
        "last_billing_at",
        "next_billing_at",
        "expires_at",
        "interval",
        "interval_unit",
        "auto_collect",
        "created_time",
        "updated_time",
        "reference_id",
        "salesperson_id",
        "salesperson_name",
        "currency_code",
        "currency_symbol",
        "plan_code",
        "plan_name",
        "product_id",
        "product_name",
    )
    rows = []
    for s in items:
        row = {k: s.get(k, "") for k in listed}
        row.update(
            plan_code=s["plan"]["plan_code"],
            plan_name=s["plan"]["name"],
            customer_name=s["customer"]["display_name"],
            email=s["customer"]["email"],
        )
        rows.append(row)
    return page(ctx, rows, "subscriptions", flt)


def get_subscription(ctx: Ctx):
    return ok("success", subscription=find(ctx))


def update_subscription(ctx: Ctx):
    """PUT /subscriptions/{id}. A plan or addon change with `end_of_term: true` waits for the next renewal (see
    GET .../scheduledchanges); otherwise it applies now, and with the organization's Prorated Billing on (--prorate)
    ZOHO raises a prorated invoice (upgrade) or credit note (downgrade). Without `end_of_term` the change is
    immediate. Reference, auto-collect and custom fields always change at once."""
    sub = find(ctx)
    body = ctx.body
    if sub["status"] in ENDED:
        raise refuse("subscription_ended_update", status=sub["status"])
    if "plan" in body or "addons" in body:
        plan_body = body.get("plan") if isinstance(body.get("plan"), dict) else {}
        if str(body.get("end_of_term", False)).lower() == "true" and sub["status"] != "future":
            terms.schedule_change(ctx, sub, plan_body, body.get("addons"))
        else:
            before = Decimal(str(sub["sub_total"]))
            pricing.price(ctx, sub, plan_body, body.get("addons"))
            if ctx.config.prorate:
                terms.prorate(ctx, sub, before)
    if "reference_id" in body:
        sub["reference_id"] = text(body, "reference_id")
    if "auto_collect" in body:
        sub["auto_collect"] = bool(body["auto_collect"])
    if "custom_fields" in body:
        sub["custom_fields"] = custom_fields(body["custom_fields"])
    if body.get("starts_at") and sub["status"] == "future":
        terms.start(ctx, sub, ctx.date(body["starts_at"], "starts_at"), False)
    sub["updated_time"] = ctx.timestamp()
    return ok("Subscription has been updated successfully.", subscription=sub)


def delete_subscription(ctx: Ctx):
    sub = find(ctx)
    del ctx.store.subscriptions[sub["subscription_id"]]
    ctx.store.schedule.pop(sub["subscription_id"], None)
    return ok("The subscription has been deleted.")
