"""Credit notes and refunds."""

from __future__ import annotations

from ..errors import bad, not_found
from . import customers as customers_mod
from .common import Ctx, created, custom_fields, num, ok, page, stored, text, timestamp, valid_date
from .money import ZERO, D, positive_amount, price_lines


def _find_creditnote(ctx: Ctx) -> dict:
    return stored(ctx.store.creditnotes, ctx.params["creditnote_id"], not_found, 1002, "Credit note does not exist.")


def _cn(note: dict) -> dict:
    return {"creditnote": note, "credit_note": note}


def create_creditnote(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    lines, taxes, sub_total, tax_total = price_lines(ctx, body.get("creditnote_items"), "creditnote_items")
    total = sub_total + tax_total
    now, cid = timestamp(), ctx.store.new_id()
    note = {
        "creditnote_id": cid,
        "creditnote_number": ctx.store.next_number("creditnote", "CN-", 5),
        "date": valid_date(body.get("date"), "date"),
        "status": "open",
        "customer_id": customer["customer_id"],
        "customer_name": customer["display_name"],
        "email": customer["email"],
        "reference_number": text(body, "reference_number"),
        "custom_fields": custom_fields(body.get("custom_fields")),
        "creditnote_items": lines,
        "invoices": [],
        "sub_total": num(sub_total),
        "tax_total": num(tax_total),
        "total": num(total),
        "balance": num(total),
        "taxes": [{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"],
        "notes": text(body, "notes"),
        "terms": text(body, "terms"),
        "created_time": now,
        "updated_time": now,
    }
    ctx.store.creditnotes[cid] = note
    customer["unused_credits"] = num(D(customer["unused_credits"]) + total)
    return created("Credit Note created successfully.", **_cn(note))


def list_creditnotes(ctx: Ctx):
    items = list(ctx.store.creditnotes.values())
    for key in ("customer_id", "reference_number"):
        if ctx.query.get(key):
            items = [n for n in items if n[key] == ctx.query[key]]
    return page(ctx, items, "creditnotes", ctx.query.get("filter_by", "Status.All"))


def get_creditnote(ctx: Ctx):
    return ok("success", **_cn(_find_creditnote(ctx)))


def void_creditnote(ctx: Ctx):
    note = _find_creditnote(ctx)
    if note["status"] == "void":
        raise bad(1005, "The credit note has already been voided.")
    customer = ctx.store.customers.get(note["customer_id"])
    if customer is not None:
        customer["unused_credits"] = num(max(ZERO, D(customer["unused_credits"]) - D(note["balance"])))
    note.update(status="void", balance=0.0, updated_time=timestamp())
    return ok("The credit note has been voided.", **_cn(note))


def record_refund(ctx: Ctx, customer: dict, body: dict, source: dict) -> dict:
    amount = positive_amount(body)
    rid = ctx.store.new_id()
    refund = {
        "refund_id": rid,
        "date": valid_date(body.get("date"), "date"),
        "amount": num(amount),
        "description": text(body, "description"),
        "reference_number": text(body, "reference_number"),
        "refund_mode": text(body, "refund_mode", "cash"),
        "status": "success",
        "customer_id": customer["customer_id"],
        "email": customer["email"],
        **source,
        "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"],
        "created_time": timestamp(),
    }
    ctx.store.refunds[rid] = refund
    customer["unused_credits"] = num(max(ZERO, D(customer["unused_credits"]) - amount))
    return refund


def refund_creditnote(ctx: Ctx):
    note = _find_creditnote(ctx)
    amount = positive_amount(ctx.body)
    if note["status"] == "void" or amount > D(note["balance"]):
        raise bad(24018, "The refund amount exceeds the balance of the credit note.")
    note["balance"] = num(D(note["balance"]) - amount)
    note["status"] = "closed" if D(note["balance"]) <= 0 else "open"
    customer = customers_mod.find(ctx, note["customer_id"])
    refund = record_refund(
        ctx,
        customer,
        ctx.body,
        {
            "creditnote": {
                "creditnote_id": note["creditnote_id"],
                "creditnote_number": note["creditnote_number"],
                "date": note["date"],
                "amount": note["total"],
                "refund_amount": num(amount),
                "balance_amount": note["balance"],
            }
        },
    )
    return created("The refund information has been saved.", refund=refund)


def get_refund(ctx: Ctx):
    return ok(
        "success", refund=stored(ctx.store.refunds, ctx.params["refund_id"], not_found, 1002, "Refund does not exist.")
    )
