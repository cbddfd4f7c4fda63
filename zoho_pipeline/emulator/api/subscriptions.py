"""Subscriptions."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

from ..errors import bad, not_found
from . import customers as customers_mod
from .common import Ctx, cents, created, custom_fields, dec, num, ok, page, qty, tax_of, text, timestamp, today
from .common import stored, valid_date

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


def _add_interval(start: str, interval: int, unit: str) -> str:
    d = dt.date.fromisoformat(start)
    if unit in ("days", "weeks"):
        return (d + dt.timedelta(days=interval * (7 if unit == "weeks" else 1))).isoformat()
    months = interval * (12 if unit == "years" else 1)
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1])).isoformat()


def _find(ctx: Ctx) -> dict:
    return stored(
        ctx.store.subscriptions, ctx.params["subscription_id"], not_found, 1002, "Subscription ID does not exist."
    )


def _customer_block(customer: dict) -> dict:
    keys = (
        "customer_id",
        "display_name",
        "company_name",
        "first_name",
        "last_name",
        "email",
        "website",
        "zcrm_account_id",
        "zcrm_contact_id",
        "billing_address",
        "shipping_address",
        "payment_terms",
        "payment_terms_label",
    )
    return {k: customer.get(k, "") for k in keys}


def _price(ctx: Ctx, sub: dict, plan_body: dict, addons_body) -> None:
    """(Re)compute the plan line, addons and amounts from a request's plan and addons."""
    code = str(plan_body.get("plan_code") or sub.get("plan", {}).get("plan_code") or "")
    plan = ctx.store.plans.get(code)
    if plan is None:
        raise bad(101002, "Invalid PlanCode.")
    old = sub.get("plan", {}) if sub.get("plan", {}).get("plan_code") == code else {}
    price = dec(plan_body.get("price", old.get("price", plan["recurring_price"])), "price")
    quantity = qty(plan_body.get("quantity", old.get("quantity", 1)) or 1)
    tax = tax_of(ctx, plan_body.get("tax_id", old.get("tax_id", plan.get("tax_id"))))
    total = cents(price * dec(quantity, "quantity"))
    line = {
        "plan_code": code,
        "name": plan["name"],
        "description": text(plan_body, "plan_description", plan["description"]),
        "price": num(price),
        "quantity": quantity,
        "discount": 0.0,
        "total": num(total),
        "setup_fee": 0.0,
        "tax_id": tax["tax_id"] if tax else "",
        "tax_name": tax["tax_name"] if tax else "",
        "tax_percentage": tax["tax_percentage"] if tax else "",
        "tax_type": tax["tax_type"] if tax else "",
        "setup_fee_tax_id": "",
        "setup_fee_tax_name": "",
        "setup_fee_tax_percentage": "",
        "setup_fee_tax_type": "",
    }
    taxes: dict[str, Decimal] = {}
    if tax:
        taxes[tax["tax_name"]] = cents(total * Decimal(str(tax["tax_percentage"])) / 100)
    addons = sub.get("addons", []) if addons_body is None else []
    for item in addons_body or []:
        if not isinstance(item, dict) or not item.get("addon_code"):
            continue
        addon = ctx.store.addons.get(str(item["addon_code"]))
        if addon is None:
            raise bad(102001, "Invalid AddonCode.")
        a_price = dec(item.get("price", addon["price_brackets"][0]["price"]), "price")
        a_qty = qty(item.get("quantity") or 1)
        addons.append(
            {
                "addon_code": addon["addon_code"],
                "name": addon["name"],
                "description": text(item, "addon_description", addon["description"]),
                "price": num(a_price),
                "quantity": a_qty,
                "total": num(cents(a_price * dec(a_qty, "quantity"))),
                "tax_id": "",
                "type": addon["type"],
            }
        )
    sub_total = total + sum((Decimal(str(a["total"])) for a in addons), Decimal(0))
    sub.update(
        plan=line,
        addons=addons,
        sub_total=num(sub_total),
        amount=num(sub_total),
        taxes=[{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        name=f"{ctx.store.products.get(plan['product_id'], {}).get('name', '')}-{plan['name']}",
        product_id=plan["product_id"],
        product_name=ctx.store.products.get(plan["product_id"], {}).get("name", ""),
        interval=plan["interval"],
        interval_unit=plan["interval_unit"],
    )


def create_subscription(ctx: Ctx):
    body = ctx.body
    if body.get("customer_id") not in (None, ""):
        customer = customers_mod.find(ctx, body["customer_id"])
    elif isinstance(body.get("customer"), dict):
        sub_ctx = Ctx(ctx.store, ctx.config, {}, {}, body["customer"], ctx.base_url)
        customer = customers_mod.create_customer(sub_ctx)[1]["customer"]
    else:
        raise bad(3004, "Please enter a valid reference for the customer")
    if not isinstance(body.get("plan"), dict):
        raise bad(4, "Please enter plan. plan is mandatory.")
    now, sid = timestamp(), ctx.store.new_id()
    starts = valid_date(body.get("starts_at"), "starts_at")
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
        "customer": _customer_block(customer),
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
    _price(ctx, sub, body["plan"], body.get("addons") or [])
    _term(sub, starts)
    ctx.store.subscriptions[sid] = sub
    return created("Subscription has been created successfully.", subscription=sub)


def _term(sub: dict, starts: str) -> None:
    ends = _add_interval(starts, sub["interval"], sub["interval_unit"])
    live = starts <= today()
    sub.update(
        status="live" if live else "future",
        starts_at=starts,
        activated_at=starts if live else "",
        current_term_starts_at=starts,
        current_term_ends_at=ends,
        last_billing_at=starts if live else "",
        next_billing_at=ends if live else starts,
    )


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
    return ok("success", subscription=_find(ctx))


def update_subscription(ctx: Ctx):
    sub = _find(ctx)
    body = ctx.body
    if sub["status"] in ("cancelled", "expired"):
        raise bad(1003, "A cancelled subscription cannot be updated.")
    if "plan" in body or "addons" in body:
        plan_body = body.get("plan") if isinstance(body.get("plan"), dict) else {}
        _price(ctx, sub, plan_body, body.get("addons"))
    if "reference_id" in body:
        sub["reference_id"] = text(body, "reference_id")
    if "auto_collect" in body:
        sub["auto_collect"] = bool(body["auto_collect"])
    if "custom_fields" in body:
        sub["custom_fields"] = custom_fields(body["custom_fields"])
    if body.get("starts_at") and sub["status"] == "future":
        _term(sub, valid_date(body["starts_at"], "starts_at"))
    sub["updated_time"] = timestamp()
    return ok("Subscription has been updated successfully.", subscription=sub)


def delete_subscription(ctx: Ctx):
    sub = _find(ctx)
    del ctx.store.subscriptions[sub["subscription_id"]]
    return ok("The subscription has been deleted.")


def cancel_subscription(ctx: Ctx):
    sub = _find(ctx)
    if sub["status"] in ("cancelled", "expired"):
        raise bad(1003, "The subscription has already been cancelled.")
    at_end = str(ctx.query.get("cancel_at_end", ctx.body.get("cancel_at_end", "false"))).lower() == "true"
    if at_end:
        sub.update(status="non_renewing", expires_at=sub["current_term_ends_at"], end_of_term=True)
        message = "Your subscription will be cancelled at the end of the current term."
    else:
        sub.update(status="cancelled", cancelled_at=today(), expires_at="", next_billing_at="", end_of_term=False)
        message = "Your subscription has been canceled."
    sub["updated_time"] = timestamp()
    return ok(message, subscription=sub)


def reactivate_subscription(ctx: Ctx):
    sub = _find(ctx)
    if sub["status"] not in ("cancelled", "non_renewing", "expired"):
        raise bad(1004, "The subscription is already active.")
    if sub["status"] == "non_renewing":
        sub.update(status="live", expires_at="", end_of_term=False)
    else:
        _term(sub, today())
        sub.pop("cancelled_at", None)
        sub.update(expires_at="", end_of_term=False)
    sub["updated_time"] = timestamp()
    return ok("Subscription has been reactivated successfully.", subscription=sub)
