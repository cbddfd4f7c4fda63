"""Customers, and the two balances finance checks: `outstanding_receivable_amount` and `unused_credits`.

Both are derived, never kept as counters, so they stay exact through every invoice, payment, credit note, refund,
void and delete: receivable = the balances of the customer's invoices (void and draft owe nothing); unused credits
= the unused amounts of their payments + the balances of their open credit notes. List rows carry them too.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ..errors import bad, refuse
from .common import EMAIL_RE, Ctx, address, created, custom_fields, num, ok, page, require, text, with_status

ENDED = ("cancelled", "expired", "cancelled_from_dunning", "trial_expired", "creation_failed")

SIMPLE = (
    "display_name",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "mobile",
    "website",
    "notes",
    "salutation",
    "department",
    "designation",
    "vat_reg_no",
    "tax_reg_no",
    "vat_treatment",
    "payment_terms_label",
    "zcrm_account_id",
    "zcrm_contact_id",
)


def find(ctx: Ctx, customer_id) -> dict:
    customer = ctx.store.customers.get(str(customer_id)) if customer_id not in (None, "") else None
    if customer is None:
        raise bad(3004, "Please enter a valid reference for the customer")
    return customer


def balances(store, wanted: set[str]) -> dict[str, tuple[Decimal, Decimal]]:
    """customer id -> (receivable, unused credits), for the `wanted` customers, in one pass over the documents."""
    owed: dict[str, Decimal] = defaultdict(Decimal)
    credit: dict[str, Decimal] = defaultdict(Decimal)
    for invoice in store.invoices.values():
        if invoice["customer_id"] in wanted and invoice["status"] not in ("void", "draft"):
            owed[invoice["customer_id"]] += Decimal(str(invoice["balance"]))
    for payment in store.payments.values():
        if payment["customer_id"] in wanted:
            credit[payment["customer_id"]] += Decimal(str(payment["unused_amount"]))
    for note in store.creditnotes.values():
        if note["customer_id"] in wanted and note["status"] != "void":
            credit[note["customer_id"]] += Decimal(str(note["balance"]))
    return {cid: (owed[cid], credit[cid]) for cid in wanted}


def views(ctx: Ctx, customers: list[dict]) -> list[dict]:
    """The customers as ZOHO shows them: stored fields plus the balances."""
    sums = balances(ctx.store, {c["customer_id"] for c in customers})
    out = []
    for customer in customers:
        owed, credit = (num(x) for x in sums[customer["customer_id"]])
        out.append(
            dict(
                customer,
                outstanding=owed,
                outstanding_receivable_amount=owed,
                unused_credits=credit,
                unused_credits_receivable_amount=credit,
                unused_credits_receivable_amount_bcy=credit,
            )
        )
    return out


def view(ctx: Ctx, customer: dict) -> dict:
    return views(ctx, [customer])[0]


def _fields(ctx: Ctx, customer: dict, body: dict) -> None:
    if "email" in body:
        email = text(body, "email").strip()
        if not EMAIL_RE.match(email):
            raise bad(4, "Invalid value passed for email")
        if ctx.config.duplicate_email == "reject" and any(
            c["email"].lower() == email.lower() and c["customer_id"] != customer.get("customer_id")
            for c in ctx.store.customers.values()
        ):
            raise bad(3062, "The customer with this email address already exists.")
        customer["email"] = email
    for key in SIMPLE:
        if key in body:
            customer[key] = text(body, key)
    if "display_name" in body and not customer["display_name"].strip():
        raise bad(4, "Please enter display_name. display_name is mandatory.")
    if body.get("currency_code"):
        customer["currency_code"] = text(body, "currency_code")
    if "payment_terms" in body:
        customer["payment_terms"] = int(body["payment_terms"] or 0)
    for key in ("billing_address", "shipping_address"):
        if key in body:
            customer[key] = address(body[key])
    if "custom_fields" in body:
        customer["custom_fields"] = custom_fields(body["custom_fields"])
    for key in ("is_taxable",):
        if key in body:
            customer[key] = bool(body[key])
    if "tax_id" in body:
        customer["tax_id"] = text(body, "tax_id")


def create_customer(ctx: Ctx):
    require(ctx.body, "display_name", "email")
    now, cid = ctx.timestamp(), ctx.store.new_id()
    customer = {
        "customer_id": cid,
        "display_name": "",
        "salutation": "",
        "first_name": "",
        "last_name": "",
        "company_name": "",
        "email": "",
        "phone": "",
        "mobile": "",
        "website": "",
        "department": "",
        "designation": "",
        "status": "active",
        "currency_id": "187955000000000097",
        "currency_code": "ZAR",
        "currency_symbol": "R",
        "source": "api",
        "payment_reminder_enabled": True,
        "price_precision": 2,
        "unused_credits": 0.0,
        "outstanding_receivable_amount": 0.0,
        "outstanding": 0.0,
        "pricebook_id": "",
        "zcrm_account_id": "",
        "zcrm_contact_id": "",
        "custom_fields": [],
        "payment_terms": 0,
        "payment_terms_label": "Due On Receipt",
        "is_gapps_customer": False,
        "unused_credits_receivable_amount": 0.0,
        "unused_credits_receivable_amount_bcy": 0.0,
        "unused_credits_payable_amount": 0.0,
        "unused_credits_payable_amount_bcy": 0.0,
        "is_linked_with_zohocrm": False,
        "billing_address": address({}),
        "shipping_address": address({}),
        "vat_reg_no": "",
        "tax_reg_no": "",
        "vat_treatment": "",
        "is_taxable": True,
        "tax_id": "",
        "can_add_card": True,
        "can_add_bank_account": False,
        "notes": "",
        "created_time": now,
        "updated_time": now,
        "default_templates": {"invoice_template_id": "", "creditnote_template_id": ""},
    }
    _fields(ctx, customer, ctx.body)
    ctx.store.customers[cid] = customer
    return created("The customer has been added.", customer=view(ctx, customer))


def list_customers(ctx: Ctx):
    flt = ctx.query.get("filter_by", "Status.All")
    items = with_status(list(ctx.store.customers.values()), flt)
    if ctx.query.get("email"):
        email = ctx.query["email"].strip().lower()
        items = [c for c in items if c["email"].lower() == email]
    if ctx.query.get("search_text"):
        needle = ctx.query["search_text"].lower()
        items = [c for c in items if needle in c["display_name"].lower() or needle in c["email"].lower()]
    if ctx.query.get("display_name"):
        items = [c for c in items if c["display_name"] == ctx.query["display_name"]]
    extra = {"report_name": "All Contacts"}
    return page(ctx, items, "customers", flt, "customer_id", extra, shown=lambda chunk: views(ctx, chunk))


def get_customer(ctx: Ctx):
    return ok("success", customer=view(ctx, find(ctx, ctx.params["customer_id"])))


def update_customer(ctx: Ctx):
    customer = find(ctx, ctx.params["customer_id"])
    _fields(ctx, customer, ctx.body)
    customer["updated_time"] = ctx.timestamp()
    return ok("Customer information has been saved.", customer=view(ctx, customer))


def delete_customer(ctx: Ctx):
    customer = find(ctx, ctx.params["customer_id"])
    cid = customer["customer_id"]
    if any(
        x["customer_id"] == cid
        for coll in (ctx.store.invoices, ctx.store.payments, ctx.store.subscriptions, ctx.store.creditnotes)
        for x in coll.values()
    ):
        raise refuse("customer_has_transactions")
    del ctx.store.customers[cid]
    return ok("The customer has been deleted.")


def customer_active(ctx: Ctx):
    find(ctx, ctx.params["customer_id"]).update(status="active", updated_time=ctx.timestamp())
    return ok("The customer has been marked as active.")


def customer_inactive(ctx: Ctx):
    """customers.yml: "can be marked as inactive only if there is no active subscription". Conservative reading:
    any subscription not yet ended (live, non_renewing, future, trial, unpaid, ...) counts as active."""
    customer = find(ctx, ctx.params["customer_id"])
    for sub in ctx.store.subscriptions.values():
        if sub["customer_id"] == customer["customer_id"] and sub["status"] not in ENDED:
            raise refuse("customer_has_live_subscription", subscription_id=sub["subscription_id"], status=sub["status"])
    customer.update(status="inactive", updated_time=ctx.timestamp())
    return ok("The customer has been marked as inactive.")
