"""Customers."""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad
from .common import EMAIL_RE, Ctx, address, created, custom_fields, num, ok, page, require, text, timestamp, with_status

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


def outstanding(ctx: Ctx, customer_id: str) -> float:
    total = sum(
        (
            Decimal(str(i["balance"]))
            for i in ctx.store.invoices.values()
            if i["customer_id"] == customer_id and i["status"] not in ("void", "draft")
        ),
        Decimal(0),
    )
    return num(total)


def view(ctx: Ctx, customer: dict) -> dict:
    out = dict(customer)
    owed = outstanding(ctx, customer["customer_id"])
    out.update(
        outstanding=owed,
        outstanding_receivable_amount=owed,
        unused_credits_receivable_amount=customer["unused_credits"],
        unused_credits_receivable_amount_bcy=customer["unused_credits"],
    )
    return out


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
    now, cid = timestamp(), ctx.store.new_id()
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
    return page(ctx, [view(ctx, c) for c in items], "customers", flt, "customer_id", {"report_name": "All Contacts"})


def get_customer(ctx: Ctx):
    return ok("success", customer=view(ctx, find(ctx, ctx.params["customer_id"])))


def update_customer(ctx: Ctx):
    customer = find(ctx, ctx.params["customer_id"])
    _fields(ctx, customer, ctx.body)
    customer["updated_time"] = timestamp()
    return ok("Customer information has been saved.", customer=view(ctx, customer))


def delete_customer(ctx: Ctx):
    customer = find(ctx, ctx.params["customer_id"])
    cid = customer["customer_id"]
    if any(
        x["customer_id"] == cid
        for coll in (ctx.store.invoices, ctx.store.payments, ctx.store.subscriptions)
        for x in coll.values()
    ):
        raise bad(3008, "The customer cannot be deleted as there are transactions associated with it.")
    del ctx.store.customers[cid]
    return ok("The customer has been deleted.")


def customer_active(ctx: Ctx):
    find(ctx, ctx.params["customer_id"]).update(status="active", updated_time=timestamp())
    return ok("The customer has been marked as active.")


def customer_inactive(ctx: Ctx):
    find(ctx, ctx.params["customer_id"]).update(status="inactive", updated_time=timestamp())
    return ok("The customer has been marked as inactive.")
