"""Invoices."""

from __future__ import annotations

from ..errors import bad, not_found
from . import customers as customers_mod
from .common import Ctx, created, custom_fields, num, ok, page, text, timestamp, valid_date
from .money import ZERO, D, price_lines


def find_invoice(ctx: Ctx, invoice_id) -> dict:
    invoice = ctx.store.invoices.get(str(invoice_id))
    if invoice is None:
        raise not_found(1002, "Invoice does not exist.")
    return invoice


def settle(invoice: dict) -> None:
    total, balance = D(invoice["total"]), D(invoice["balance"])
    if invoice["status"] in ("void", "draft"):
        return
    invoice["status"] = "paid" if balance <= 0 else ("partially_paid" if balance < total else "sent")


def create_invoice(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    lines, taxes, sub_total, tax_total = price_lines(ctx, body.get("invoice_items"), "invoice_items")
    date = valid_date(body.get("date"), "date")
    due = valid_date(body.get("due_date") or date, "due_date")
    if due < date:
        raise bad(4, "Due date cannot be earlier than the invoice date.")
    total = sub_total + tax_total
    number = (
        text(body, "invoice_number")
        if str(ctx.query.get("ignore_auto_number_generation")).lower() == "true"
        else ctx.store.next_number("invoice", "INV-", 6)
    )
    if not number or any(i["invoice_number"] == number for i in ctx.store.invoices.values()):
        raise bad(1001, "Invoice number already exists.")
    now, iid = timestamp(), ctx.store.new_id()
    invoice = {
        "invoice_id": iid,
        "invoice_number": number,
        "status": "sent",
        "date": date,
        "due_date": due,
        "payment_terms": int(body.get("payment_terms") or 0),
        "payment_terms_label": text(body, "payment_terms_label", "Due On Receipt"),
        "reference_number": text(body, "reference_number"),
        "customer_id": customer["customer_id"],
        "customer_name": customer["display_name"],
        "email": customer["email"],
        "currency_id": customer["currency_id"],
        "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"],
        "exchange_rate": 1.0,
        "discount": 0.0,
        "is_discount_before_tax": True,
        "discount_type": "item_level",
        "is_inclusive_tax": False,
        "invoice_items": lines,
        "shipping_charge": 0.0,
        "adjustment": 0.0,
        "adjustment_description": "",
        "sub_total": num(sub_total),
        "tax_total": num(tax_total),
        "total": num(total),
        "taxes": [{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        "payment_reminder_enabled": True,
        "payment_made": 0.0,
        "credits_applied": 0.0,
        "tax_amount_withheld": 0.0,
        "balance": num(total),
        "write_off_amount": 0.0,
        "allow_partial_payments": True,
        "price_precision": 2,
        "is_emailed": False,
        "reminders_sent": 0,
        "last_payment_date": "",
        "billing_address": dict(customer["billing_address"]),
        "shipping_address": dict(customer["shipping_address"]),
        "notes": text(body, "notes"),
        "terms": text(body, "terms"),
        "custom_fields": custom_fields(body.get("custom_fields")),
        "subscriptions": [],
        "created_time": now,
        "updated_time": now,
        "last_modified_time": now,
        "salesperson_id": "",
        "salesperson_name": text(body, "salesperson_name"),
        "invoice_url": f"{ctx.base_url}/invoice/{iid}",
        "payments": [],
    }
    settle(invoice)
    ctx.store.invoices[iid] = invoice
    return created("The invoice has been created.", invoice=invoice)


def list_invoices(ctx: Ctx):
    flt = ctx.query.get("filter_by", "Status.All")
    status = flt.split(".")[-1].lower()
    items = list(ctx.store.invoices.values())
    named = {
        "sent": {"sent"},
        "draft": {"draft"},
        "paid": {"paid"},
        "partiallypaid": {"partially_paid"},
        "void": {"void"},
        "unpaid": {"sent", "partially_paid", "overdue"},
        "overdue": {"overdue"},
    }
    if status in named:
        items = [i for i in items if i["status"] in named[status]]
    for key in ("customer_id", "reference_number", "invoice_number"):
        if ctx.query.get(key):
            items = [i for i in items if i[key] == ctx.query[key]]
    if ctx.query.get("subscription_id"):
        items = [i for i in items if ctx.query["subscription_id"] in i.get("subscriptions", [])]
    keys = (
        "invoice_id",
        "customer_name",
        "customer_id",
        "email",
        "status",
        "invoice_number",
        "reference_number",
        "date",
        "due_date",
        "currency_code",
        "total",
        "balance",
        "payment_made",
        "created_time",
        "updated_time",
    )
    rows = [dict({k: i[k] for k in keys}, number=i["invoice_number"], invoice_date=i["date"]) for i in items]
    return page(ctx, rows, "invoices", flt, "created_time")


def get_invoice(ctx: Ctx):
    return ok("success", invoice=find_invoice(ctx, ctx.params["invoice_id"]))


def update_invoice(ctx: Ctx):
    """PUT /invoices/{id}: the create body; lines and totals recomputed, balance = total - payments - credits.
    A void invoice cannot be edited, and the new total may not fall below what is already paid or credited."""
    invoice = find_invoice(ctx, ctx.params["invoice_id"])
    if invoice["status"] == "void":
        raise bad(1020, f"Void invoice {invoice['invoice_number']} cannot be edited.")
    body = ctx.body
    paid, credits = D(invoice["payment_made"]), D(invoice["credits_applied"])
    customer = ctx.store.customers.get(invoice["customer_id"])
    if body.get("customer_id") not in (None, "") and str(body["customer_id"]) != invoice["customer_id"]:
        if paid or credits:
            raise bad(1021, "The customer cannot be changed on an invoice with payments or credits applied.")
        customer = customers_mod.find(ctx, body["customer_id"])
    if customer is None:
        customer = customers_mod.find(ctx, invoice["customer_id"])
    lines, taxes, sub_total, tax_total = price_lines(ctx, body.get("invoice_items"), "invoice_items")
    date = valid_date(body.get("date") or invoice["date"], "date")
    due = valid_date(body.get("due_date") or (invoice["due_date"] if not body.get("date") else date), "due_date")
    if due < date:
        raise bad(4, "Due date cannot be earlier than the invoice date.")
    total = sub_total + tax_total
    if total < paid + credits:
        raise bad(
            1022,
            f"The invoice total ({num(total)}) cannot be less than the amount already paid "
            f"or credited ({num(paid + credits)}) on invoice {invoice['invoice_number']}.",
        )
    number = invoice["invoice_number"]
    if str(ctx.query.get("ignore_auto_number_generation")).lower() == "true" and text(body, "invoice_number"):
        number = text(body, "invoice_number")
        if any(
            i["invoice_number"] == number and i["invoice_id"] != invoice["invoice_id"]
            for i in ctx.store.invoices.values()
        ):
            raise bad(1001, "Invoice number already exists.")
    now = timestamp()
    invoice.update(
        invoice_number=number,
        date=date,
        due_date=due,
        customer_id=customer["customer_id"],
        customer_name=customer["display_name"],
        email=customer["email"],
        invoice_items=lines,
        sub_total=num(sub_total),
        tax_total=num(tax_total),
        total=num(total),
        taxes=[{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        balance=num(total - paid - credits),
        updated_time=now,
        last_modified_time=now,
    )
    for key in ("reference_number", "notes", "terms", "salesperson_name", "payment_terms_label"):
        if key in body:
            invoice[key] = text(body, key)
    if "payment_terms" in body:
        invoice["payment_terms"] = int(body.get("payment_terms") or 0)
    if "custom_fields" in body:
        invoice["custom_fields"] = custom_fields(body.get("custom_fields"))
    for payment in ctx.store.payments.values():  # keep the payments' view of this invoice in step
        for applied in payment["invoices"]:
            if applied["invoice_id"] == invoice["invoice_id"]:
                applied.update(
                    invoice_number=number, date=date, invoice_amount=invoice["total"], balance_amount=invoice["balance"]
                )
    if invoice["status"] != "draft":
        invoice["status"] = "sent"
    settle(invoice)
    return ok("Invoice information has been updated.", invoice=invoice)


def delete_invoice(ctx: Ctx):
    """DELETE /invoices/{id}: refused while payments or credits are applied."""
    invoice = find_invoice(ctx, ctx.params["invoice_id"])
    if (
        D(invoice["payment_made"])
        or D(invoice["credits_applied"])
        or any(a["invoice_id"] == invoice["invoice_id"] for p in ctx.store.payments.values() for a in p["invoices"])
    ):
        raise bad(
            1023,
            f"Invoice {invoice['invoice_number']} cannot be deleted as payments or credits have been applied to it.",
        )
    del ctx.store.invoices[invoice["invoice_id"]]
    return ok("The invoice has been deleted.")


def void_invoice(ctx: Ctx):
    invoice = find_invoice(ctx, ctx.params["invoice_id"])
    if invoice["status"] == "void":
        raise bad(1005, "The invoice has already been voided.")
    freed = ZERO
    for payment in ctx.store.payments.values():
        for applied in payment["invoices"]:
            if applied["invoice_id"] == invoice["invoice_id"]:
                amount = D(applied["amount_applied"])
                freed += amount
                payment["unused_amount"] = num(D(payment["unused_amount"]) + amount)
        payment["invoices"] = [a for a in payment["invoices"] if a["invoice_id"] != invoice["invoice_id"]]
    customer = ctx.store.customers.get(invoice["customer_id"])
    if customer is not None and freed:
        customer["unused_credits"] = num(D(customer["unused_credits"]) + freed)
    invoice.update(status="void", payment_made=0.0, balance=0.0, payments=[], updated_time=timestamp())
    return ok("Invoice status has been changed to Void.", invoice=invoice)
