"""Invoices: create, list, get, update, delete. The one place an invoice is built and its status derived.

ZOHO's own invoices (a subscription's first invoice, each renewal, a prorated change: ``api.terms``) are built by
`new_invoice` too and name their subscription: `subscription_id` (detail and list rows), `subscriptions[]`
(detail) and `transaction_type` (detail: "new", "renewal" or "upgrade"). Their `date` is the first day of the term
they bill (the day ZOHO raised them), so subscription + `date` names the term. docs/emulator.md has the contract.
"""

from __future__ import annotations

from decimal import Decimal

from ..clock import add_days
from ..errors import bad, not_found, refuse
from . import customers as customers_mod
from .common import Ctx, cents, created, custom_fields, dec, num, ok, page, sorted_by, text
from .money import ZERO, D, price_lines

STATUS_FILTERS = {
    "sent": {"sent"},
    "draft": {"draft"},
    "paid": {"paid"},
    "partiallypaid": {"partially_paid"},
    "void": {"void"},
    "unpaid": {"sent", "partially_paid", "overdue"},
    "overdue": {"overdue"},
}
LIST_KEYS = (
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
    "currency_symbol",
    "total",
    "balance",
    "payment_made",
    "adjustment",
    "write_off_amount",
    "last_payment_date",
    "subscription_id",
    "created_time",
    "updated_time",
)


# invoices.yml `sort_column`: "Allowed Values: customer_name, invoice_number, date, due_date, total, balance and
# created_time" (a schema of the list's page_context, not a parameter of GET /invoices: D for the values, U that the
# list honours them as a query parameter, as ZOHO Books' does, C). Ties keep creation order.
SORT_COLUMNS = {
    "customer_name": lambda i: i["customer_name"].lower(),
    "invoice_number": lambda i: i["invoice_number"],
    "date": lambda i: i["date"],
    "due_date": lambda i: i["due_date"],
    "total": lambda i: D(i["total"]),
    "balance": lambda i: D(i["balance"]),
    "created_time": lambda i: i["created_time"],
}


def find_invoice(ctx: Ctx, invoice_id) -> dict:
    invoice = ctx.store.invoices.get(str(invoice_id))
    if invoice is None:
        raise not_found(1002, "Invoice does not exist.")
    return invoice


def settle(ctx: Ctx, invoice: dict) -> None:
    """Derive the status from the balance, what was paid or credited, and the due date at ZOHO's today.

    invoices.yml `due_date`: not fully paid by the due date → `overdue`; only partly paid → `partially_paid`.
    A written-off invoice has no balance left and reads `paid` (KB "What is Void and Write Off?")."""
    if invoice["status"] in ("void", "draft"):
        return
    if D(invoice["balance"]) <= 0:
        invoice["status"] = "paid"
    elif D(invoice["payment_made"]) + D(invoice["credits_applied"]) > 0:
        invoice["status"] = "partially_paid"
    elif invoice["due_date"] < ctx.today():
        invoice["status"] = "overdue"
    else:
        invoice["status"] = "sent"


def _adjustment(body: dict, current=0.0) -> tuple[Decimal, str]:
    """ZOHO adds `adjustment` (e.g. "Rounding off") to the total after tax."""
    return cents(dec(body.get("adjustment", current) or 0, "adjustment")), text(body, "adjustment_description")


def _total(sub_total: Decimal, tax_total: Decimal, adjustment: Decimal) -> Decimal:
    total = sub_total + tax_total + adjustment
    if total < 0:
        raise bad(4, "Invalid value passed for adjustment: the invoice total cannot be negative.")
    return total


def _due(ctx: Ctx, due_date, date: str, terms: int) -> str:
    """The given due date, else the invoice date + the payment terms; never before the invoice date."""
    due = ctx.date(due_date or add_days(date, terms), "due_date")
    if due < date:
        raise bad(4, "Due date cannot be earlier than the invoice date.")
    return due


def new_invoice(ctx: Ctx, customer: dict, body: dict, *, date: str, due: str, subscription=None, kind="") -> dict:
    """Build, settle and store an invoice from a create-shaped `body` (lines, adjustment, texts)."""
    lines, taxes, sub_total, tax_total = price_lines(ctx, body.get("invoice_items"), "invoice_items")
    adjustment, adjustment_description = _adjustment(body)
    total = _total(sub_total, tax_total, adjustment)
    number = (
        text(body, "invoice_number")
        if str(ctx.query.get("ignore_auto_number_generation")).lower() == "true"
        else ctx.store.next_number("invoice", "INV-", 6)
    )
    if not number or any(i["invoice_number"] == number for i in ctx.store.invoices.values()):
        raise bad(1001, "Invoice number already exists.")
    now, iid = ctx.timestamp(), ctx.store.new_id()
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
        "adjustment": num(adjustment),
        "adjustment_description": adjustment_description,
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
        "transaction_type": kind,
        "subscription_id": subscription["subscription_id"] if subscription else "",
        "subscriptions": [{"subscription_id": subscription["subscription_id"], "name": subscription["name"]}]
        if subscription
        else [],
        "created_time": now,
        "updated_time": now,
        "last_modified_time": now,
        "salesperson_id": "",
        "salesperson_name": text(body, "salesperson_name"),
        "invoice_url": f"{ctx.base_url}/invoice/{iid}",
        "payments": [],
        "credits": [],
    }
    settle(ctx, invoice)
    ctx.store.invoices[iid] = invoice
    return invoice


def view(invoice: dict) -> dict:
    """The detail: the stored invoice plus the names GET /invoices/{id} uses (`number`, `invoice_date`)."""
    return dict(invoice, number=invoice["invoice_number"], invoice_date=invoice["date"])


def create_invoice(ctx: Ctx):
    body = ctx.body
    customer = customers_mod.find(ctx, body.get("customer_id"))
    date = ctx.date(body.get("date"), "date")
    due = _due(ctx, body.get("due_date"), date, int(body.get("payment_terms") or 0))
    invoice = new_invoice(ctx, customer, body, date=date, due=due)
    return created("The invoice has been created.", invoice=view(invoice))


def list_invoices(ctx: Ctx):
    flt = ctx.query.get("filter_by", "Status.All")
    wanted = STATUS_FILTERS.get(flt.split(".")[-1].lower())
    items = [i for i in ctx.store.invoices.values() if wanted is None or i["status"] in wanted]
    for key in ("customer_id", "reference_number", "invoice_number", "subscription_id"):
        if ctx.query.get(key):
            items = [i for i in items if i[key] == ctx.query[key]]
    items, column, order = sorted_by(ctx, items, SORT_COLUMNS, "created_time")
    return page(ctx, items, "invoices", flt, column, shown=_rows, sort_order=order)


def _rows(chunk: list[dict]) -> list[dict]:
    return [_row(i) for i in chunk]


def _row(invoice: dict) -> dict:
    return dict({k: invoice[k] for k in LIST_KEYS}, number=invoice["invoice_number"], invoice_date=invoice["date"])


def get_invoice(ctx: Ctx):
    return ok("success", invoice=view(find_invoice(ctx, ctx.params["invoice_id"])))


def update_invoice(ctx: Ctx):
    """PUT /invoices/{id}: the create body; lines and totals recomputed, balance = total - payments - credits.
    A void invoice cannot be edited, and the new total may not fall below what is already paid or credited."""
    invoice = find_invoice(ctx, ctx.params["invoice_id"])
    number = invoice["invoice_number"]
    if invoice["status"] == "void":
        raise refuse("invoice_void_edit", number=number)
    body = ctx.body
    paid, credits = D(invoice["payment_made"]), D(invoice["credits_applied"])
    customer = ctx.store.customers.get(invoice["customer_id"])
    if body.get("customer_id") not in (None, "") and str(body["customer_id"]) != invoice["customer_id"]:
        if paid or credits:
            raise refuse("invoice_customer_change")
        customer = customers_mod.find(ctx, body["customer_id"])
    if customer is None:
        customer = customers_mod.find(ctx, invoice["customer_id"])
    lines, taxes, sub_total, tax_total = price_lines(ctx, body.get("invoice_items"), "invoice_items")
    adjustment, _ = _adjustment(body, invoice["adjustment"])
    date = ctx.date(body.get("date") or invoice["date"], "date")
    kept = date if body.get("date") else invoice["due_date"]  # a new invoice date without a due date: due then
    due = _due(ctx, body.get("due_date") or kept, date, 0)
    total = _total(sub_total, tax_total, adjustment)
    if total < paid + credits:
        raise refuse("invoice_total_below_paid", total=num(total), paid=num(paid + credits), number=number)
    if str(ctx.query.get("ignore_auto_number_generation")).lower() == "true" and text(body, "invoice_number"):
        number = text(body, "invoice_number")
        if any(
            i["invoice_number"] == number and i["invoice_id"] != invoice["invoice_id"]
            for i in ctx.store.invoices.values()
        ):
            raise bad(1001, "Invoice number already exists.")
    now = ctx.timestamp()
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
        adjustment=num(adjustment),
        total=num(total),
        taxes=[{"tax_name": k, "tax_amount": num(v)} for k, v in taxes.items()],
        balance=num(total - paid - credits - D(invoice["write_off_amount"])),
        updated_time=now,
        last_modified_time=now,
    )
    for key in (
        "reference_number",
        "notes",
        "terms",
        "salesperson_name",
        "payment_terms_label",
        "adjustment_description",
    ):
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
    settle(ctx, invoice)
    return ok("Invoice information has been updated.", invoice=view(invoice))


def delete_invoice(ctx: Ctx):
    """DELETE /invoices/{id}: refused while payments or credits are applied."""
    invoice = find_invoice(ctx, ctx.params["invoice_id"])
    if D(invoice["payment_made"]) or D(invoice["credits_applied"]) or invoice["payments"] or invoice["credits"]:
        raise refuse("invoice_delete_applied", number=invoice["invoice_number"])
    del ctx.store.invoices[invoice["invoice_id"]]
    return ok("The invoice has been deleted.")


def receivable(invoice: dict) -> Decimal:
    """What the customer still owes on this invoice (void and draft invoices owe nothing)."""
    return ZERO if invoice["status"] in ("void", "draft") else D(invoice["balance"])
