"""Credit notes: create, list, get, void / reopen, delete, apply to invoices, refund; and refunds.

A credit note's `balance` is what the customer may still use: total - applied to invoices - refunded. Its open
balance is part of the customer's `unused_credits`. A refund of a payment goes through a credit note ZOHO raises
for it (refunds.yml `POST /payments/{payment_id}/refunds`), so every refund names a credit note.
"""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad, not_found, refuse
from . import customers as customers_mod
from .common import Ctx, cents, created, custom_fields, dec, num, ok, page, stored, text
from .invoices import find_invoice, settle
from .money import ZERO, D, positive_amount, price_lines

STATUS_FILTERS = {"open": {"open"}, "closed": {"closed"}, "void": {"void"}}


def find_creditnote(ctx: Ctx, creditnote_id) -> dict:
    return stored(ctx.store.creditnotes, str(creditnote_id), not_found, 1002, "Credit note does not exist.")


def _note(ctx: Ctx) -> dict:
    return find_creditnote(ctx, ctx.params["creditnote_id"])


def _cn(note: dict) -> dict:
    return {"creditnote": note, "credit_note": note}  # the OAS key, and the one DP reads


def _refunds_of(ctx: Ctx, note: dict) -> list[dict]:
    return [r for r in ctx.store.refunds.values() if r["creditnote"]["creditnote_id"] == note["creditnote_id"]]


def _rebalance(ctx: Ctx, note: dict) -> None:
    if note["status"] == "void":
        note["balance"] = 0.0
        return
    used = sum((D(a["amount"]) for a in note["invoices"]), ZERO)
    refunded = sum((D(r["amount"]) for r in _refunds_of(ctx, note)), ZERO)
    note["balance"] = num(D(note["total"]) - used - refunded)
    note["status"] = "closed" if D(note["balance"]) <= 0 else "open"
    note["updated_time"] = ctx.timestamp()


def new_creditnote(ctx: Ctx, customer: dict, body: dict) -> dict:
    lines, taxes, sub_total, tax_total = price_lines(ctx, body.get("creditnote_items"), "creditnote_items")
    total = sub_total + tax_total
    now, cid = ctx.timestamp(), ctx.store.new_id()
    note = {
        "creditnote_id": cid,
        "creditnote_number": ctx.store.next_number("creditnote", "CN-", 5),
        "date": ctx.date(body.get("date"), "date"),
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
    return note


def create_creditnote(ctx: Ctx):
    customer = customers_mod.find(ctx, ctx.body.get("customer_id"))
    return created("Credit Note created successfully.", **_cn(new_creditnote(ctx, customer, ctx.body)))


def list_creditnotes(ctx: Ctx):
    flt = ctx.query.get("filter_by", "Status.All")
    wanted = STATUS_FILTERS.get(flt.split(".")[-1].lower())
    items = [n for n in ctx.store.creditnotes.values() if wanted is None or n["status"] in wanted]
    for key in ("customer_id", "reference_number"):
        if ctx.query.get(key):
            items = [n for n in items if n[key] == ctx.query[key]]
    return page(ctx, items, "creditnotes", flt)


def get_creditnote(ctx: Ctx):
    return ok("success", **_cn(_note(ctx)))


def void_creditnote(ctx: Ctx):
    """Like an invoice's void: its applications are undone (the invoices owe them again); refunds stay made."""
    note = _note(ctx)
    if note["status"] == "void":
        raise refuse("creditnote_already_void")
    for applied in note["invoices"]:
        invoice = ctx.store.invoices.get(applied["invoice_id"])
        if invoice is not None:
            _unapply_from(ctx, invoice, note["creditnote_id"])
    note.update(status="void", invoices=[])
    _rebalance(ctx, note)
    return ok("The credit note has been marked as void.", **_cn(note))


def open_creditnote(ctx: Ctx):
    note = _note(ctx)
    if note["status"] != "void":
        raise refuse("creditnote_not_void", number=note["creditnote_number"], status=note["status"])
    note["status"] = "open"
    _rebalance(ctx, note)
    return ok("Status of the credit note has been changed to open.", **_cn(note))


def delete_creditnote(ctx: Ctx):
    note = _note(ctx)
    if note["invoices"] or _refunds_of(ctx, note):
        raise refuse("creditnote_delete_used", number=note["creditnote_number"])
    del ctx.store.creditnotes[note["creditnote_id"]]
    return ok("The credit note has been deleted.")


# applying credit to invoices ----------------------------------------------------------------------------------------


def apply(ctx: Ctx, pairs: list[tuple[dict, dict, Decimal]]) -> list[tuple[dict, dict, Decimal]]:
    """Apply (credit note, invoice, amount) triples: every one is checked first, then all move (all or nothing)."""
    left_on_note: dict[str, Decimal] = {}
    left_on_invoice: dict[str, Decimal] = {}
    for note, invoice, amount in pairs:
        number = note["creditnote_number"]
        if note["status"] != "open":
            raise refuse("creditnote_not_open", number=number, status=note["status"])
        if invoice["customer_id"] != note["customer_id"]:
            raise not_found(1002, "Invoice does not exist.")
        if invoice["status"] in ("void", "draft"):
            raise refuse("credit_to_closed_invoice", status=invoice["status"], number=invoice["invoice_number"])
        if amount <= 0:
            raise bad(4, "Invalid value passed for amount_applied")
        note_left = left_on_note.setdefault(note["creditnote_id"], D(note["balance"]))
        invoice_left = left_on_invoice.setdefault(invoice["invoice_id"], D(invoice["balance"]))
        if amount > note_left:
            raise refuse("credit_exceeds_creditnote", amount=num(amount), balance=num(note_left), number=number)
        if amount > invoice_left:
            raise refuse(
                "credit_exceeds_balance",
                amount=num(amount),
                balance=num(invoice_left),
                number=invoice["invoice_number"],
            )
        left_on_note[note["creditnote_id"]] -= amount
        left_on_invoice[invoice["invoice_id"]] -= amount
    for note, invoice, amount in pairs:
        invoice["credits_applied"] = num(D(invoice["credits_applied"]) + amount)
        invoice["balance"] = num(D(invoice["balance"]) - amount)
        invoice["credits"].append(
            {
                "creditnote_id": note["creditnote_id"],
                "creditnotes_number": note["creditnote_number"],
                "credited_date": ctx.today(),
                "credited_amount": num(amount),
            }
        )
        invoice["updated_time"] = ctx.timestamp()
        settle(ctx, invoice)
        note["invoices"].append(
            {"invoice_id": invoice["invoice_id"], "invoice_number": invoice["invoice_number"], "amount": num(amount)}
        )
        _rebalance(ctx, note)
    return pairs


def requested(body: dict, key: str, id_key: str) -> list[tuple[str, Decimal]]:
    """The (id, amount_applied) pairs of a credit request's `key` list, e.g. invoices[{invoice_id, ...}]."""
    items = body.get(key)
    if not isinstance(items, list) or not items:
        raise bad(4, f"Please enter {key}. {key} is mandatory.")
    if not all(isinstance(item, dict) for item in items):
        raise bad(4, f"Invalid value passed for {key}")
    return [(item.get(id_key), cents(dec(item.get("amount_applied", 0), "amount_applied"))) for item in items]


def apply_to_invoices(ctx: Ctx):
    """POST /creditnotes/{id}/invoices {invoices:[{invoice_id, amount_applied}]}."""
    note = _note(ctx)
    pairs = [(note, find_invoice(ctx, i), amount) for i, amount in requested(ctx.body, "invoices", "invoice_id")]
    apply(ctx, pairs)
    rows = [{"invoice_id": inv["invoice_id"], "amount_applied": num(amount)} for _, inv, amount in pairs]
    return ok("Credits have been applied to the invoice(s).", invoices=rows)


def _unapply_from(ctx: Ctx, invoice: dict, creditnote_id: str) -> None:
    gone = sum((D(c["credited_amount"]) for c in invoice["credits"] if c["creditnote_id"] == creditnote_id), ZERO)
    invoice["credits"] = [c for c in invoice["credits"] if c["creditnote_id"] != creditnote_id]
    invoice["credits_applied"] = num(D(invoice["credits_applied"]) - gone)
    if invoice["status"] != "void":
        invoice["balance"] = num(D(invoice["balance"]) + gone)
        settle(ctx, invoice)


def detach_invoice(ctx: Ctx, invoice: dict) -> None:
    """An invoice is voided: the credit applied to it goes back to its credit notes."""
    for creditnote_id in {c["creditnote_id"] for c in invoice["credits"]}:
        note = ctx.store.creditnotes.get(creditnote_id)
        _unapply_from(ctx, invoice, creditnote_id)
        if note is not None:
            note["invoices"] = [a for a in note["invoices"] if a["invoice_id"] != invoice["invoice_id"]]
            _rebalance(ctx, note)


# refunds --------------------------------------------------------------------------------------------------------


def record_refund(ctx: Ctx, note: dict, body: dict, extra: dict | None = None) -> dict:
    """Refund `body.amount` of `note`'s balance (the money goes back to the customer)."""
    amount = positive_amount(body)
    number = note["creditnote_number"]
    if note["status"] != "open":
        raise refuse("creditnote_not_open", number=number, status=note["status"])
    if amount > D(note["balance"]):
        raise refuse("refund_exceeds_creditnote", amount=num(amount), balance=note["balance"], number=number)
    customer = customers_mod.find(ctx, note["customer_id"])
    rid = ctx.store.new_id()
    refund = {
        "refund_id": rid,
        "date": ctx.date(body.get("date"), "date"),
        "amount": num(amount),
        "description": text(body, "description"),
        "reference_number": text(body, "reference_number"),
        "refund_mode": text(body, "refund_mode", "cash"),
        "status": "success",
        "customer_id": customer["customer_id"],
        "email": customer["email"],
        **(extra or {}),
        "creditnote": {"creditnote_id": note["creditnote_id"]},
        "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"],
        "created_time": ctx.timestamp(),
    }
    ctx.store.refunds[rid] = refund
    _rebalance(ctx, note)
    refund["creditnote"].update(
        creditnote_number=number,
        date=note["date"],
        amount=note["total"],
        refund_amount=num(amount),
        balance_amount=note["balance"],
    )
    return refund


def refund_creditnote(ctx: Ctx):
    return created("The refund information has been saved.", refund=record_refund(ctx, _note(ctx), ctx.body))


def list_creditnote_refunds(ctx: Ctx):
    return ok("success", creditnote_refunds=_refunds_of(ctx, _note(ctx)))


def get_refund(ctx: Ctx):
    refund = stored(ctx.store.refunds, ctx.params["refund_id"], not_found, 1002, "Refund does not exist.")
    return ok("success", refund=refund)
