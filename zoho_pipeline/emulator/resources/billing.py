"""Invoices, payments, credit notes and refunds."""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad, not_found
from . import customers as customers_mod
from .common import Ctx, cents, created, custom_fields, dec, num, ok, page, qty, tax_of, text, timestamp
from .common import stored, valid_date

PAYMENT_MODES = ("check", "cash", "creditcard", "banktransfer", "bankremittance", "autotransaction", "others")
ZERO = Decimal(0)


def D(x) -> Decimal:
    return Decimal(str(x))


def _lines(ctx: Ctx, items, key_field: str) -> tuple[list[dict], dict, Decimal, Decimal]:
    """Price line items: per line item_total and its tax, rounded half up to the cent."""
    if not isinstance(items, list) or not items:
        raise bad(4, f"Please enter {key_field}. {key_field} is mandatory.")
    lines, taxes, sub_total, tax_total = [], {}, ZERO, ZERO
    for order, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise bad(4, f"Invalid value passed for {key_field}")
        line = {"item_id": ctx.store.new_id(), "name": text(item, "name"), "description": text(item, "description"),
                "item_order": order, "unit": text(item, "unit"), "discount_amount": 0.0, "discount": 0.0}
        if key_field == "invoice_items":
            product = ctx.store.products.get(str(item.get("product_id") or ""))
            if product is None:
                raise bad(2006, "Invalid Product ID.")
            line.update(product_id=product["product_id"], name=line["name"] or product["name"],
                        item_type="service", product_type="service", code="")
        else:
            code = str(item.get("code") or "")
            known = ctx.store.plans.get(code) or ctx.store.addons.get(code)
            if code and known is None:
                raise bad(101002, "Invalid PlanCode.")
            line.update(code=code, name=line["name"] or (known or {}).get("name", ""))
        price = dec(item.get("price", 0) or 0, "price")
        quantity = qty(item.get("quantity", 1) if item.get("quantity") is not None else 1)
        total = cents(price * D(quantity))
        tax = tax_of(ctx, item.get("tax_id"))
        tax_amount = cents(total * D(tax["tax_percentage"]) / 100) if tax else ZERO
        if tax:
            taxes[tax["tax_name"]] = taxes.get(tax["tax_name"], ZERO) + tax_amount
        line.update(price=num(price), bcy_rate=num(price), quantity=quantity, item_total=num(total),
                    tax_id=tax["tax_id"] if tax else "", tax_name=tax["tax_name"] if tax else "",
                    tax_type=tax["tax_type"] if tax else "", tax_percentage=tax["tax_percentage"] if tax else 0,
                    tax_amount=num(tax_amount))
        lines.append(line)
        sub_total += total
        tax_total += tax_amount
    return lines, taxes, sub_total, tax_total


# invoices -------------------------------------------------------------------------------------------------------

def find_invoice(ctx: Ctx, invoice_id) -> dict:
    invoice = ctx.store.invoices.get(str(invoice_id))
    if invoice is None:
        raise not_found(1002, "Invoice does not exist.")
    return invoice


def _settle(invoice: dict) -> None:
    total, balance = D(invoice["total"]), D(invoice["balance"])
    if invoice["status"] in ("void", "draft"):
        return
    invoice["status"] = "paid" if balance <= 0 else ("partially_paid" if balance < total else "sent")


def create_invoice(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    lines, taxes, sub_total, tax_total = _lines(ctx, body.get("invoice_items"), "invoice_items")
    date = valid_date(body.get("date"), "date")
    due = valid_date(body.get("due_date") or date, "due_date")
    if due < date:
        raise bad(4, "Due date cannot be earlier than the invoice date.")
    total = sub_total + tax_total
    number = text(body, "invoice_number") if str(ctx.query.get("ignore_auto_number_generation")).lower() == "true" \
        else ctx.store.next_number("invoice", "INV-", 6)
    if not number or any(i["invoice_number"] == number for i in ctx.store.invoices.values()):
        raise bad(1001, "Invoice number already exists.")
    now, iid = timestamp(), ctx.store.new_id()
    invoice = {
        "invoice_id": iid, "invoice_number": number, "status": "sent", "date": date,
        "due_date": due, "payment_terms": int(body.get("payment_terms") or 0),
        "payment_terms_label": text(body, "payment_terms_label", "Due On Receipt"),
        "reference_number": text(body, "reference_number"), "customer_id": customer["customer_id"],
        "customer_name": customer["display_name"], "email": customer["email"], "currency_id":
        customer["currency_id"], "currency_code": customer["currency_code"],
        "currency_symbol": customer["currency_symbol"], "exchange_rate": 1.0, "discount": 0.0,
        "is_discount_before_tax": True, "discount_type": "item_level", "is_inclusive_tax": False,
        "invoice_items": lines, "shipping_charge": 0.0, "adjustment": 0.0, "adjustment_description": "",
        "sub_total": num(sub_total), "tax_total": num(tax_total), "total": num(total),
        "taxes": [{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        "payment_reminder_enabled": True, "payment_made": 0.0, "credits_applied": 0.0, "tax_amount_withheld": 0.0,
        "balance": num(total), "write_off_amount": 0.0, "allow_partial_payments": True, "price_precision": 2,
        "is_emailed": False, "reminders_sent": 0, "last_payment_date": "",
        "billing_address": dict(customer["billing_address"]), "shipping_address": dict(customer["shipping_address"]),
        "notes": text(body, "notes"), "terms": text(body, "terms"), "custom_fields":
        custom_fields(body.get("custom_fields")), "subscriptions": [], "created_time": now,
        "updated_time": now, "last_modified_time": now, "salesperson_id": "",
        "salesperson_name": text(body, "salesperson_name"), "invoice_url": f"{ctx.base_url}/invoice/{iid}",
        "payments": [],
    }
    _settle(invoice)
    ctx.store.invoices[iid] = invoice
    return created("The invoice has been created.", invoice=invoice)


def list_invoices(ctx: Ctx):
    flt = ctx.query.get("filter_by", "Status.All")
    status = flt.split(".")[-1].lower()
    items = list(ctx.store.invoices.values())
    named = {"sent": {"sent"}, "draft": {"draft"}, "paid": {"paid"}, "partiallypaid": {"partially_paid"},
             "void": {"void"}, "unpaid": {"sent", "partially_paid", "overdue"}, "overdue": {"overdue"}}
    if status in named:
        items = [i for i in items if i["status"] in named[status]]
    for key in ("customer_id", "reference_number", "invoice_number"):
        if ctx.query.get(key):
            items = [i for i in items if i[key] == ctx.query[key]]
    if ctx.query.get("subscription_id"):
        items = [i for i in items if ctx.query["subscription_id"] in i.get("subscriptions", [])]
    keys = ("invoice_id", "customer_name", "customer_id", "email", "status", "invoice_number",
            "reference_number", "date", "due_date", "currency_code", "total", "balance", "payment_made",
            "created_time", "updated_time")
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
    lines, taxes, sub_total, tax_total = _lines(ctx, body.get("invoice_items"), "invoice_items")
    date = valid_date(body.get("date") or invoice["date"], "date")
    due = valid_date(body.get("due_date") or (invoice["due_date"] if not body.get("date") else date), "due_date")
    if due < date:
        raise bad(4, "Due date cannot be earlier than the invoice date.")
    total = sub_total + tax_total
    if total < paid + credits:
        raise bad(1022, f"The invoice total ({num(total)}) cannot be less than the amount already paid "
                        f"or credited ({num(paid + credits)}) on invoice {invoice['invoice_number']}.")
    number = invoice["invoice_number"]
    if str(ctx.query.get("ignore_auto_number_generation")).lower() == "true" and text(body, "invoice_number"):
        number = text(body, "invoice_number")
        if any(i["invoice_number"] == number and i["invoice_id"] != invoice["invoice_id"]
               for i in ctx.store.invoices.values()):
            raise bad(1001, "Invoice number already exists.")
    now = timestamp()
    invoice.update(
        invoice_number=number, date=date, due_date=due, customer_id=customer["customer_id"],
        customer_name=customer["display_name"], email=customer["email"], invoice_items=lines,
        sub_total=num(sub_total), tax_total=num(tax_total), total=num(total),
        taxes=[{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        balance=num(total - paid - credits), updated_time=now, last_modified_time=now)
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
                applied.update(invoice_number=number, date=date, invoice_amount=invoice["total"],
                               balance_amount=invoice["balance"])
    if invoice["status"] != "draft":
        invoice["status"] = "sent"
    _settle(invoice)
    return ok("Invoice information has been updated.", invoice=invoice)


def delete_invoice(ctx: Ctx):
    """DELETE /invoices/{id}: refused while payments or credits are applied."""
    invoice = find_invoice(ctx, ctx.params["invoice_id"])
    if D(invoice["payment_made"]) or D(invoice["credits_applied"]) or any(
            a["invoice_id"] == invoice["invoice_id"] for p in ctx.store.payments.values() for a in p["invoices"]):
        raise bad(1023, f"Invoice {invoice['invoice_number']} cannot be deleted as payments or credits "
                        "have been applied to it.")
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


# payments -------------------------------------------------------------------------------------------------------

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
        _settle(invoice)
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
            raise bad(24013, f"Payments cannot be applied to the {invoice['status']} invoice "
                             f"{invoice['invoice_number']}.")
        applied = cents(dec(item.get("amount_applied", 0), "amount_applied"))
        if applied < 0:
            raise bad(4, "Invalid value passed for amount_applied")
        if applied > D(invoice["balance"]):
            raise bad(24016, f"The amount applied ({applied}) exceeds the balance due "
                             f"({invoice['balance']}) of invoice {invoice['invoice_number']}.")
        plan.append((invoice, applied))
        total += applied
    if total > amount:
        raise bad(24017, "The amount applied to invoices exceeds the amount received.")
    payment["invoices"] = []
    for invoice, applied in plan:
        invoice["balance"] = num(D(invoice["balance"]) - applied)
        invoice["payment_made"] = num(D(invoice["payment_made"]) + applied)
        invoice["last_payment_date"] = payment["date"]
        invoice["payments"].append({"payment_id": payment["payment_id"], "amount": num(applied),
                                    "date": payment["date"], "payment_mode": payment["payment_mode"],
                                    "reference_number": payment["reference_number"]})
        invoice["updated_time"] = timestamp()
        _settle(invoice)
        payment["invoices"].append({"invoice_id": invoice["invoice_id"], "invoice_number": invoice["invoice_number"],
                                    "date": invoice["date"], "invoice_amount": invoice["total"],
                                    "amount_applied": num(applied), "balance_amount": invoice["balance"]})
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


def _amount(body: dict) -> Decimal:
    amount = cents(dec(body.get("amount"), "amount"))
    if amount <= 0:
        raise bad(4, "Invalid value passed for amount")
    return amount


def create_payment(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    if body.get("payment_mode") is None:
        raise bad(4, "Please enter payment_mode. payment_mode is mandatory.")
    amount = _amount(body)
    now, pid = timestamp(), ctx.store.new_id()
    payment = {"payment_id": pid, "payment_mode": "", "amount": num(amount), "amount_refunded": 0.0,
               "bank_charges": 0.0, "date": "", "status": "success", "reference_number": "", "description": "",
               "customer_id": customer["customer_id"], "customer_name": customer["display_name"],
               "email": customer["email"], "invoices": [], "unused_amount": 0.0,
               "currency_code": customer["currency_code"], "currency_symbol": customer["currency_symbol"],
               "custom_fields": [], "created_time": now, "updated_time": now}
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
        import copy
        saved = {k: copy.deepcopy(getattr(ctx.store, k)) for k in ("invoices", "customers", "payments")}
        try:
            amount = _amount(body) if "amount" in body else D(payment["amount"])
            requested = body["invoices"] if "invoices" in body else [
                {"invoice_id": a["invoice_id"], "amount_applied": a["amount_applied"]} for a in payment["invoices"]]
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


# credit notes and refunds -----------------------------------------------------------------------------------------

def _find_creditnote(ctx: Ctx) -> dict:
    return stored(ctx.store.creditnotes, ctx.params["creditnote_id"], not_found, 1002, "Credit note does not exist.")


def _cn(note: dict) -> dict:
    return {"creditnote": note, "credit_note": note}


def create_creditnote(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    lines, taxes, sub_total, tax_total = _lines(ctx, body.get("creditnote_items"), "creditnote_items")
    total = sub_total + tax_total
    now, cid = timestamp(), ctx.store.new_id()
    note = {"creditnote_id": cid, "creditnote_number": ctx.store.next_number("creditnote", "CN-", 5),
            "date": valid_date(body.get("date"), "date"), "status": "open", "customer_id": customer["customer_id"],
            "customer_name": customer["display_name"], "email": customer["email"],
            "reference_number": text(body, "reference_number"), "custom_fields":
            custom_fields(body.get("custom_fields")), "creditnote_items": lines, "invoices": [],
            "sub_total": num(sub_total), "tax_total": num(tax_total), "total": num(total), "balance": num(total),
            "taxes": [{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
            "currency_code": customer["currency_code"], "currency_symbol": customer["currency_symbol"],
            "notes": text(body, "notes"), "terms": text(body, "terms"), "created_time": now, "updated_time": now}
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


def _refund(ctx: Ctx, customer: dict, body: dict, source: dict) -> dict:
    amount = _amount(body)
    rid = ctx.store.new_id()
    refund = {"refund_id": rid, "date": valid_date(body.get("date"), "date"), "amount": num(amount),
              "description": text(body, "description"), "reference_number": text(body, "reference_number"),
              "refund_mode": text(body, "refund_mode", "cash"), "status": "success",
              "customer_id": customer["customer_id"], "email": customer["email"], **source,
              "currency_code": customer["currency_code"], "currency_symbol": customer["currency_symbol"],
              "created_time": timestamp()}
    ctx.store.refunds[rid] = refund
    customer["unused_credits"] = num(max(ZERO, D(customer["unused_credits"]) - amount))
    return refund


def refund_creditnote(ctx: Ctx):
    note = _find_creditnote(ctx)
    amount = _amount(ctx.body)
    if note["status"] == "void" or amount > D(note["balance"]):
        raise bad(24018, "The refund amount exceeds the balance of the credit note.")
    note["balance"] = num(D(note["balance"]) - amount)
    note["status"] = "closed" if D(note["balance"]) <= 0 else "open"
    customer = customers_mod.find(ctx, note["customer_id"])
    refund = _refund(ctx, customer, ctx.body, {"creditnote": {
        "creditnote_id": note["creditnote_id"], "creditnote_number": note["creditnote_number"],
        "date": note["date"], "amount": note["total"], "refund_amount": num(amount),
        "balance_amount": note["balance"]}})
    return created("The refund information has been saved.", refund=refund)


def refund_payment(ctx: Ctx):
    payment = _find_payment(ctx)
    amount = _amount(ctx.body)
    if amount > D(payment["unused_amount"]):
        raise bad(24018, "The refund amount exceeds the unused amount of the payment.")
    payment["unused_amount"] = num(D(payment["unused_amount"]) - amount)
    payment["amount_refunded"] = num(D(payment["amount_refunded"]) + amount)
    customer = customers_mod.find(ctx, payment["customer_id"])
    refund = _refund(ctx, customer, ctx.body, {"payment_id": payment["payment_id"]})
    return created("The refund information has been saved.", refund=refund)


def get_refund(ctx: Ctx):
    return ok("success", refund=stored(ctx.store.refunds, ctx.params["refund_id"], not_found, 1002,
                                       "Refund does not exist."))
