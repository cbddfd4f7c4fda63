"""Payments and their refunds."""

from __future__ import annotations

import copy
from decimal import Decimal

from ..errors import bad, not_found
from . import creditnotes
from . import customers as customers_mod
from .common import Ctx, cents, created, custom_fields, dec, num, ok, page, stored, text, timestamp, valid_date
from .invoices import find_invoice, settle
from .money import ZERO, D, positive_amount

PAYMENT_MODES = ("check", "cash", "creditcard", "banktransfer", "bankremittance", "autotransaction", "others")


def _find_payment(ctx: Ctx) -> dict:
    return stored(ctx.store.payments, ctx.params["payment_id"], not_found, 1002, "Payment does not exist.")


def _unapply(ctx: Ctx, payment: dict) -> None:
    for applied in payment["invoices"]:
        invoice = ctx.store.invoices.get(applied["invoice_id"])
        if invoice is None or invoice["status"] == "void":
            continue
        amount = D(applied["amount_applied"])
        invoice["balance"] = num(D(invoice["balance"]) + amount)
        invoice["payment_made"] = num(D(invoice["payment_made"]) - amount)
        invoice["payments"] = [p for p in invoice["payments"] if p["payment_id"] != payment["payment_id"]]
        settle(invoice)
    customer = ctx.store.customers.get(payment["customer_id"])
    if customer is not None:
        customer["unused_credits"] = num(max(ZERO, D(customer["unused_credits"]) - D(payment["unused_amount"])))
    payment["invoices"] = []


def _apply(ctx: Ctx, payment: dict, customer: dict, amount: Decimal, requested) -> None:
    """Validate every application first, then move balances (all or nothing)."""
    plan, total = [], ZERO
    for item in requested or []:
        if not isinstance(item, dict):
            raise bad(4, "Invalid value passed for invoices")
        invoice = find_invoice(ctx, item.get("invoice_id"))
        if invoice["customer_id"] != customer["customer_id"]:
            raise bad(1002, "Invoice does not exist.")
        if invoice["status"] in ("void", "draft"):
            raise bad(
                24013, f"Payments cannot be applied to the {invoice['status']} invoice {invoice['invoice_number']}."
            )
        applied = cents(dec(item.get("amount_applied", 0), "amount_applied"))
        if applied < 0:
            raise bad(4, "Invalid value passed for amount_applied")
        if applied > D(invoice["balance"]):
            raise bad(
                24016,
                f"The amount applied ({applied}) exceeds the balance due "
                f"({invoice['balance']}) of invoice {invoice['invoice_number']}.",
            )
        plan.append((invoice, applied))
        total += applied
    if total > amount:
        raise bad(24017, "The amount applied to invoices exceeds the amount received.")
    payment["invoices"] = []
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
        invoice["updated_time"] = timestamp()
        settle(invoice)
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
    unused = amount - total
    payment["unused_amount"] = num(unused)
    customer["unused_credits"] = num(D(customer["unused_credits"]) + unused)


def _payment_fields(payment: dict, body: dict) -> None:
    if "payment_mode" in body:
        if body["payment_mode"] not in PAYMENT_MODES:
            raise bad(4, "Invalid value passed for payment_mode")
        payment["payment_mode"] = body["payment_mode"]
    if "date" in body:
        payment["date"] = valid_date(body["date"], "date")
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
    now, pid = timestamp(), ctx.store.new_id()
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
    _payment_fields(payment, {"date": None, **body})
    _apply(ctx, payment, customer, amount, body.get("invoices"))
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
    payment = _find_payment(ctx)
    body = ctx.body
    customer = customers_mod.find(ctx, payment["customer_id"])
    if "amount" in body or "invoices" in body:
        saved = {k: copy.deepcopy(getattr(ctx.store, k)) for k in ("invoices", "customers", "payments")}
        try:
            amount = positive_amount(body) if "amount" in body else D(payment["amount"])
            requested = (
                body["invoices"]
                if "invoices" in body
                else [
                    {"invoice_id": a["invoice_id"], "amount_applied": a["amount_applied"]} for a in payment["invoices"]
                ]
            )
            _unapply(ctx, payment)
            customer = ctx.store.customers[payment["customer_id"]]
            _payment_fields(payment, body)
            payment["amount"] = num(amount)
            _apply(ctx, payment, customer, amount, requested)
        except Exception:
            for k, v in saved.items():
                setattr(ctx.store, k, v)
            raise
    else:
        _payment_fields(payment, body)
    payment["updated_time"] = timestamp()
    return ok("The payment details have been updated.", payment=payment)


def delete_payment(ctx: Ctx):
    payment = _find_payment(ctx)
    _unapply(ctx, payment)
    del ctx.store.payments[payment["payment_id"]]
    return ok("The payment has been deleted.")


def refund_payment(ctx: Ctx):
    payment = _find_payment(ctx)
    amount = positive_amount(ctx.body)
    if amount > D(payment["unused_amount"]):
        raise bad(24018, "The refund amount exceeds the unused amount of the payment.")
    payment["unused_amount"] = num(D(payment["unused_amount"]) - amount)
    payment["amount_refunded"] = num(D(payment["amount_refunded"]) + amount)
    customer = customers_mod.find(ctx, payment["customer_id"])
    refund = creditnotes.record_refund(ctx, customer, ctx.body, {"payment_id": payment["payment_id"]})
    return created("The refund information has been saved.", refund=refund)
