"""Subscription terms: where they start and end, what ZOHO does at each boundary, and the invoices it raises.

`store.schedule[subscription_id]` keeps what the subscription fields do not: the billing `anchor` (a date) and the
`index` of the next boundary (boundary k = anchor + k intervals, so a term that started on the 31st ends on the
last day of a shorter month and the next one on the 31st again), and `change`, the plan and addons of an
end-of-term PUT, applied at the next renewal. ``schedule.advance`` walks the boundaries in time order; each
function here is one step of it, or of a request (create, immediate change).

Every invoice raised here names its subscription and is dated on the first day of the term it bills (see
``invoices``); its line says the period. Due date: the invoice date + the subscription's payment terms.
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

from ..clock import add_days, days_between
from . import creditnotes, invoices, pricing
from .common import Ctx, cents, num
from .money import D


def add_interval(start: str, count: int, unit: str) -> str:
    d = dt.date.fromisoformat(start)
    if unit in ("days", "weeks"):
        return (d + dt.timedelta(days=count * (7 if unit == "weeks" else 1))).isoformat()
    months = count * (12 if unit == "years" else 1)
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1])).isoformat()


def _entry(ctx: Ctx, sub: dict) -> dict:
    return ctx.store.schedule.setdefault(sub["subscription_id"], {"anchor": sub["current_term_starts_at"], "index": 1})


def _terms_after(sub: dict, day: str, count: int = 1) -> str:
    """The day `count` of the subscription's terms after `day`."""
    return add_interval(day, count * max(1, int(sub["interval"])), sub["interval_unit"])


def _boundary(sub: dict, entry: dict) -> str:
    return _terms_after(sub, entry["anchor"], entry["index"])


def _enter_term(sub: dict, starts: str, ends: str) -> None:
    sub.update(current_term_starts_at=starts, current_term_ends_at=ends, last_billing_at=starts, next_billing_at=ends)


def start(ctx: Ctx, sub: dict, starts_at: str, backdated_invoice: bool) -> None:
    """A new subscription's first term: `future` until `starts_at`; live from today with its first invoice at once;
    or backdated: live in the term that holds today, invoiced only with `create_backdated_invoice` (subscription.yml:
    "creation of invoice for current billing cycle for back dated subscriptions"; earlier terms never are)."""
    today = ctx.today()
    sub["starts_at"] = starts_at
    if starts_at > today:
        ctx.store.schedule[sub["subscription_id"]] = {"anchor": starts_at, "index": 1}
        ends = _terms_after(sub, starts_at)
        sub.update(
            status="future",
            activated_at="",
            current_term_starts_at=starts_at,
            current_term_ends_at=ends,
            last_billing_at="",
            next_billing_at=starts_at,
        )
        return
    if starts_at == today:
        activate(ctx, sub, today)
        return
    entry = {"anchor": starts_at, "index": 1}
    while _boundary(sub, entry) <= today:
        entry["index"] += 1
    ctx.store.schedule[sub["subscription_id"]] = entry
    term_start = _terms_after(sub, starts_at, entry["index"] - 1)
    sub.update(status="live", activated_at=starts_at)
    _enter_term(sub, term_start, _boundary(sub, entry))
    if backdated_invoice:
        raise_invoice(ctx, sub, term_start, "new")


def activate(ctx: Ctx, sub: dict, day: str) -> dict:
    """`future` → `live` on its start day (or a live start today): the first term and its invoice."""
    entry = {"anchor": day, "index": 1}
    ctx.store.schedule[sub["subscription_id"]] = entry
    sub.update(status="live", activated_at=day, starts_at=day)
    _enter_term(sub, day, _boundary(sub, entry))
    return raise_invoice(ctx, sub, day, "new")


def renew(ctx: Ctx, sub: dict, day: str) -> dict:
    """A live subscription reaches `next_billing_at`: its end-of-term change applies, the next term starts and its
    invoice is raised at the (possibly new) price."""
    entry = _entry(ctx, sub)
    change = entry.pop("change", None)
    if change:
        interval = (sub["interval"], sub["interval_unit"])
        pricing.price(ctx, sub, change["plan"], change.get("addons"))
        if (sub["interval"], sub["interval_unit"]) != interval:  # a new billing period counts from this renewal
            entry.update(anchor=day, index=0)
    entry["index"] += 1
    _enter_term(sub, day, _boundary(sub, entry))
    sub["updated_time"] = ctx.timestamp()
    return raise_invoice(ctx, sub, day, "renewal")


def end_term(ctx: Ctx, sub: dict, day: str) -> None:
    """A `non_renewing` subscription reaches the end of its term: it is cancelled, with no further invoice."""
    ctx.store.schedule.get(sub["subscription_id"], {}).pop("change", None)
    sub.update(status="cancelled", cancelled_at=day, next_billing_at="", updated_time=ctx.timestamp())


def postpone(ctx: Ctx, sub: dict, renewal_at: str) -> None:
    """The current term runs until `renewal_at`; later terms count from it."""
    entry = _entry(ctx, sub)
    entry.update(anchor=renewal_at, index=0)
    sub.update(current_term_ends_at=renewal_at, next_billing_at=renewal_at, updated_time=ctx.timestamp())


def schedule_change(ctx: Ctx, sub: dict, plan_body: dict, addons_body) -> None:
    """An end-of-term PUT: checked now (a bad plan code is refused at once), applied at the next renewal."""
    preview = dict(sub)
    pricing.price(ctx, preview, plan_body, addons_body)
    change = {"plan": {**plan_body, "plan_code": preview["plan"]["plan_code"]}}
    if addons_body is not None:
        change["addons"] = addons_body
    _entry(ctx, sub)["change"] = change


def scheduled(ctx: Ctx, sub: dict) -> dict | None:
    """The subscription as it will be after its end-of-term change, or None when none is scheduled."""
    change = ctx.store.schedule.get(sub["subscription_id"], {}).get("change")
    if not change:
        return None
    preview = dict(sub)
    pricing.price(ctx, preview, change["plan"], change.get("addons"))
    return preview


def drop_change(ctx: Ctx, sub: dict) -> bool:
    return ctx.store.schedule.get(sub["subscription_id"], {}).pop("change", None) is not None


def raise_invoice(ctx: Ctx, sub: dict, term_start: str, kind: str) -> dict:
    """The invoice for the term starting `term_start`: plan price × quantity (+ recurring addons), the plan's tax."""
    term_end = _term_end(sub, term_start)
    period = f"Charges for this duration (from {term_start} to {add_days(term_end, -1)})"
    plan = sub["plan"]
    items = [_item(sub["product_id"], plan["name"], period, plan["price"], plan["quantity"], plan["tax_id"])]
    for addon in sub["addons"]:
        if addon.get("type", "recurring") == "recurring":
            product_id = ctx.store.addons.get(addon["addon_code"], {}).get("product_id") or sub["product_id"]
            items.append(_item(product_id, addon["name"], period, addon["price"], addon["quantity"], addon["tax_id"]))
    codes = [plan["plan_code"]] + [a["addon_code"] for a in sub["addons"] if a.get("type", "recurring") == "recurring"]
    return _subscription_invoice(ctx, sub, term_start, items, kind, codes)


def prorate(ctx: Ctx, sub: dict, old_amount: Decimal) -> None:
    """An immediate change with the organization's Prorated Billing on (the emulator's --prorate): the unused part
    of the current term is charged (upgrade: an invoice) or credited (downgrade: a credit note) at the new rate."""
    today, starts, ends = ctx.today(), sub["current_term_starts_at"], sub["current_term_ends_at"]
    left, length = days_between(today, ends), days_between(starts, ends)
    if sub["status"] not in ("live", "non_renewing") or left <= 0 or length <= 0:
        return
    difference = cents((D(sub["sub_total"]) - old_amount) * left / length)
    if difference == 0:
        return
    plan = sub["plan"]
    period = f"Prorated {'charges' if difference > 0 else 'credit'} for {plan['name']} (from {today} to {add_days(ends, -1)})"
    if difference > 0:
        item = _item(sub["product_id"], plan["name"], period, num(difference), 1, plan["tax_id"])
        _subscription_invoice(ctx, sub, today, [item], "upgrade", [plan["plan_code"]])
        return
    customer = ctx.store.customers[sub["customer_id"]]
    line = {
        "code": plan["plan_code"],
        "name": plan["name"],
        "description": period,
        "price": num(-difference),
        "quantity": 1,
        "tax_id": plan["tax_id"],
    }
    creditnotes.new_creditnote(
        ctx, customer, {"creditnote_items": [line], "date": today, "reference_number": sub["reference_id"]}
    )


def _term_end(sub: dict, term_start: str) -> str:
    if sub["current_term_starts_at"] == term_start:
        return sub["current_term_ends_at"]
    return _terms_after(sub, term_start)


def _item(product_id, name, description, price, quantity, tax_id) -> dict:
    return {
        "product_id": product_id,
        "name": name,
        "description": description,
        "price": price,
        "quantity": quantity,
        "tax_id": tax_id or None,
    }


def _subscription_invoice(ctx: Ctx, sub: dict, day: str, items: list, kind: str, codes: list) -> dict:
    customer = ctx.store.customers[sub["customer_id"]]
    terms = int(sub.get("payment_terms") or 0)
    body = {
        "invoice_items": items,
        "payment_terms": terms,
        "payment_terms_label": sub.get("payment_terms_label") or "Due On Receipt",
    }
    invoice = invoices.new_invoice(
        ctx.with_body(body), customer, body, date=day, due=add_days(day, terms), subscription=sub, kind=kind
    )
    for line, code in zip(invoice["invoice_items"], codes):
        line["code"] = code
    sub["child_invoice_id"] = invoice["invoice_id"]
    return invoice
