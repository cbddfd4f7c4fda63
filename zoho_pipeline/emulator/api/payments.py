"""Payments: create, list, get, update (re-apply), delete, refund, list refunds.

A payment's `unused_amount` (part of the customer's `unused_credits`) is what neither an invoice nor a refund took:
amount - applied - refunded, never below zero. A refund draws on it first; a refund beyond it is still accepted,
as ZOHO documents ("A new credit note is created for the amount to be refund"): the invoices it paid stay paid.
"""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad, not_found, refuse
from . import creditnotes
from . import customers as customers_mod
from .common import Ctx, cents, created, custom_fields, dec, num, ok, page, stored, text
from .invoices import find_invoice, settle
from .money import ZERO, D, positive_amount

PAYMENT_MODES = ("check", "cash", "creditcard", "banktransfer", "bankremittance", "autotransaction", "others")


def _find_payment(ctx: Ctx) -> dict:
    return stored(ctx.store.payments, ctx.params["payment_id"], not_found, 1002, "Payment does not exist.")


def _recount(payment: dict) -> None:
    applied = sum((D(a["amount_applied"]) for a in payment["invoices"]), ZERO)
    payment["unused_amount"] = num(max(ZERO, D(payment["amount"]) - applied - D(payment["amount_refunded"])))


def _unapply(ctx: Ctx, payment: dict) -> None:
    for applied in payment["invoices"]:
        invoice = ctx.store.invoices.get(applied["invoice_id"])
        if invoice is None:
            continue
        amount = D(applied["amount_applied"])
        invoice["balance"] = num(D(invoice["balance"]) + amount)
        invoice["payment_made"] = num(D(invoice["payment_made"]) - amount)
        invoice["payments"] = [p for p in invoice["payments"] if p["payment_id"] != payment["payment_id"]]
        invoice["updated_time"] = ctx.timestamp()
        settle(ctx, invoice)
    payment["invoices"] = []
    _recount(payment)


def _plan(ctx: Ctx, payment: dict, customer: dict, amount: Decimal, requested) -> list[tuple[dict, Decimal]]:
    """Check a whole application before anything moves. An invoice's room counts what this payment already pays."""
    plan, total = [], ZERO
    mine = {a["invoice_id"]: D(a["amount_applied"]) for a in payment["invoices"]}
    for item in requested or []:
        if not isinstance(item, dict):
            raise bad(4, "Invalid value passed for invoices")
        invoice = find_invoice(ctx, item.get("invoice_id"))
        number = invoice["invoice_number"]
        if invoice["customer_id"] != customer["customer_id"]:
            raise not_found(1002, "Invoice does not exist.")
        if invoice["status"] in ("void", "draft"):
            raise refuse("payment_to_closed_invoice", status=invoice["status"], number=number)
        applied = cents(dec(item.get("amount_applied", 0), "amount_applied"))
        if applied < 0:
            raise bad(4, "Invalid value passed for amount_applied")
        room = D(invoice["balance"]) + mine.get(invoice["invoice_id"], ZERO)
        if applied > room:
            raise refuse("payment_exceeds_balance", amount=applied, balance=num(room), number=number)
        plan.append((invoice, applied))
        total += applied
    if total > amount:
        raise refuse("applied_exceeds_payment")
    return plan


def _apply(ctx: Ctx, payment: dict, plan: list[tuple[dict, Decimal]]) -> None:
    for invoice, applied in plan:
        invoice["balance"] = num(D(invoice["balance"]) - applied)
        invoice["payment_made"] = num(D(invoice["payment_made"]) + applied)
        invoice["last_payment_date"] = payment["date"]
        invoice["payments"].append(
            {
                "payment_id": payment["payment_id"],
                "amount": num(applied),
                "date": payment["date"],
                "payment_mode": payment["payment_mode"],
                "reference_number": payment["reference_number"],
            }
        )
        invoice["updated_time"] = ctx.timestamp()
        settle(ctx, invoice)
        payment["invoices"].append(
            {
                "invoice_id": invoice["invoice_id"],
                "invoice_number": invoice["invoice_number"],
                "date": invoice["date"],
                "invoice_amount": invoice["total"],
                "amount_applied": num(applied),
                "balance_amount": invoice["balance"],
            }
        )
    _recount(payment)


def _payment_fields(ctx: Ctx, payment: dict, body: dict) -> None:
    if "payment_mode" in body:
        if body["payment_mode"] not in PAYMENT_MODES:
            raise bad(4, "Invalid value passed for payment_mode")
        payment["payment_mode"] = body["payment_mode"]
    if "date" in body:
        payment["date"] = ctx.date(body["date"], "date")
    for key in ("reference_number", "description"):
        if key in body:
            payment[key] = text(body, key)
    if "bank_charges" in body:
        payment["bank_charges"] = num(dec(body["bank_charges"] or 0, "bank_charges"))
    if "custom_fields" in body:
        payment["custom_fields"] = custom_fields(body["custom_fields"])


def create_payment(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    if body.get("payment_mode") is None:
        raise bad(4, "Please enter payment_mode. payment_mode is mandatory.")
    amount = positive_amount(body)
    now, pid = ctx.timestamp(), ctx.store.new_id()
    payment = {
        "payment_id": pid,
        "payment_mode": "",
        "amount": num(amount),
        "amount_refunded": 0.0,
        "bank_charges": 0.0,
        "date": "",
        "status": "success",
        "reference_number": "",
        "description": "",
        "customer_id": customer["customer_id"],
        "customer_name": customer["display_name"],
        "email": customer["email"],
        "invoices": [],
        "unused_amount": 0.0,
        "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"],
        "custom_fields": [],
        "created_time": now,
        "updated_time": now,
    }
    _payment_fields(ctx, payment, {"date": None, **body})
    _apply(ctx, payment, _plan(ctx, payment, customer, amount, body.get("invoices")))
    ctx.store.payments[pid] = payment
    return created("The payment has been created.", payment=payment)


def list_payments(ctx: Ctx):
    items = list(ctx.store.payments.values())
    for key in ("customer_id", "reference_number", "payment_mode"):
        if ctx.query.get(key):
            items = [p for p in items if p[key] == ctx.query[key]]
    if ctx.query.get("invoice_id"):
        items = [p for p in items if any(a["invoice_id"] == ctx.query["invoice_id"] for a in p["invoices"])]
    return page(ctx, items, "payments", ctx.query.get("filter_by", "PaymentMode.All"), "date")


def get_payment(ctx: Ctx):
    return ok("success", payment=_find_payment(ctx))


def update_payment(ctx: Ctx):
    """PUT /payments/{id}: `invoices` is the whole new application (checked in full before anything moves)."""
    payment = _find_payment(ctx)
    body = ctx.body
    _payment_fields(ctx, dict(payment), body)  # every field is checked before anything moves
    if "amount" in body or "invoices" in body:
        customer = customers_mod.find(ctx, payment["customer_id"])
        amount = positive_amount(body) if "amount" in body else D(payment["amount"])
        requested = body.get("invoices", [dict(a) for a in payment["invoices"]])
        plan = _plan(ctx, payment, customer, amount, requested)
        _unapply(ctx, payment)
        _payment_fields(ctx, payment, body)
        payment["amount"] = num(amount)
        _apply(ctx, payment, plan)
    else:
        _payment_fields(ctx, payment, body)
    payment["updated_time"] = ctx.timestamp()
    return ok("The payment details have been updated.", payment=payment)


def delete_payment(ctx: Ctx):
    """ZOHO's way to take back a bounced payment: the invoices it paid owe that amount again."""
    payment = _find_payment(ctx)
    if D(payment["amount_refunded"]) > 0:
        raise refuse("payment_delete_refunded", payment_id=payment["payment_id"])
    _unapply(ctx, payment)
    del ctx.store.payments[payment["payment_id"]]
    return ok("The payment has been deleted.")


def detach_invoice(ctx: Ctx, invoice: dict) -> None:
    """An invoice is voided: what its payments applied to it becomes their unused amount."""
    for applied in invoice["payments"]:
        payment = ctx.store.payments.get(applied["payment_id"])
        if payment is not None:
            payment["invoices"] = [a for a in payment["invoices"] if a["invoice_id"] != invoice["invoice_id"]]
            _recount(payment)
    invoice.update(payments=[], payment_made=0.0)


def refund_payment(ctx: Ctx):
    """POST /payments/{id}/refunds {amount, description}: ZOHO raises a credit note for the amount and refunds it."""
    payment = _find_payment(ctx)
    amount = positive_amount(ctx.body)
    refundable = D(payment["amount"]) - D(payment["amount_refunded"])
    if amount > refundable:
        raise refuse(
            "refund_exceeds_payment", amount=num(amount), payment_id=payment["payment_id"], refundable=num(refundable)
        )
    customer = customers_mod.find(ctx, payment["customer_id"])
    reference = text(ctx.body, "reference_number") or payment["reference_number"]
    line = {
        "name": "Refund",
        "description": f"Refund of payment {reference or payment['payment_id']}",
        "price": num(amount),
        "quantity": 1,
    }
    note = creditnotes.new_creditnote(
        ctx, customer, {"creditnote_items": [line], "reference_number": reference, "date": ctx.body.get("date")}
    )
    refund = creditnotes.record_refund(ctx, note, ctx.body, {"payment_id": payment["payment_id"]})
    payment["amount_refunded"] = num(D(payment["amount_refunded"]) + amount)
    payment["updated_time"] = ctx.timestamp()
    _recount(payment)
    return created("The refund information has been saved.", refund=refund)


def list_payment_refunds(ctx: Ctx):
    payment = _find_payment(ctx)
    refunds = [r for r in ctx.store.refunds.values() if r.get("payment_id") == payment["payment_id"]]
    return ok("success", payment_refunds=refunds)
