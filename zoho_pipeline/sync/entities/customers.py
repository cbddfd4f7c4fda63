"""Customers → ZOHO customers. Found again by email plus the provider-id custom field. Closed and reopened
accounts: customer_lifecycle."""

from __future__ import annotations

import re

from sqlalchemy import String, cast, select, true

from zoho_pipeline.source.tables import customers as t
from zoho_pipeline.sync.entities import customer_lifecycle as lifecycle
from zoho_pipeline.sync.entities.base import (
    Collection,
    EntitySpec,
    InvalidRow,
    Reconciliation,
    drift_fields,
    no_parents,
    public,
    sql_join,
    status_flag,
    text_differs,
)

PROVIDER_ID_FIELD = "Provider Customer ID"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME = 200  # ZOHO's display_name / company_name limit we hold rows to
COUNTRIES = {"ZA": "South Africa", "NA": "Namibia", "BW": "Botswana", "LS": "Lesotho", "SZ": "Eswatini"}


def label(row) -> str:
    return f"{row['first_name']} {row['last_name']} <{row['email']}>"


def label_sql():
    return sql_join(t.c.first_name, " ", t.c.last_name, " <", t.c.email, ">")


def _text(row, field: str, required: bool = False, limit: int = MAX_NAME) -> str | None:
    value = (row[field] or "").strip()
    if required and not value:
        raise InvalidRow(field, "is empty")
    if len(value) > limit:
        raise InvalidRow(field, f"is {len(value)} characters; ZOHO takes at most {limit}")
    return value or None


def build(row, ctx) -> dict:
    email = _text(row, "email", required=True)
    if not EMAIL.match(email):
        raise InvalidRow("email", f"{email!r} is not a valid email address")
    first, last = _text(row, "first_name", required=True), _text(row, "last_name")
    business = row["account_type"] == "business"
    company = _text(row, "company_name") if business else None
    display = company or " ".join(p for p in (first, last) if p)
    if len(display) > MAX_NAME:
        raise InvalidRow("company_name" if company else "last_name", f"display name longer than {MAX_NAME}")
    payload = {
        "display_name": display,
        "first_name": first,
        "last_name": last,
        "email": email,
        "currency_code": "ZAR",
        "billing_address": _address(row),
        "custom_fields": [{"label": PROVIDER_ID_FIELD, "value": str(row["id"])}],
    }
    if row["phone"]:
        payload["phone"] = row["phone"].strip()
    if company:
        payload["company_name"] = company
    if business and row["vat_number"]:
        payload["vat_reg_no"] = row["vat_number"].strip()
    return lifecycle.mark(payload, row)


def _address(row) -> dict:
    street2 = ", ".join(p.strip() for p in (row["address_line2"], row["suburb"]) if p and p.strip())
    address = {
        "attention": f"{row['first_name']} {row['last_name']}".strip(),
        "street": (row["address_line1"] or "").strip(),
        "street2": street2,
        "city": (row["city"] or "").strip(),
        "state": (row["province"] or "").strip(),
        "zip": (row["postal_code"] or "").strip(),
        "country": COUNTRIES.get((row["country"] or "ZA").upper(), row["country"] or ""),
    }
    return {k: v for k, v in address.items() if v}


def create(client, payload, row, ctx) -> str:
    zoho_id = str(client.post("/customers", json=public(payload))["customer"]["customer_id"])
    ctx.remember_zoho_id(zoho_id)  # kept if marking it inactive then fails
    lifecycle.after_create(client, zoho_id, payload, row)
    return zoho_id


def update(client, zoho_id, payload, row, ctx) -> None:
    lifecycle.update(client, zoho_id, payload, row, ctx)


def lookup(client, payload, row, ctx) -> str | None:
    """Ours is the customer whose provider-id field holds our id, searched by the email the create in doubt
    carried (recorded with its intent) and by today's email; other customers may share the email in any case."""
    emails = dict.fromkeys(e for e in (row.get("zoho_lookup_key"), payload["email"]) if e)
    for email in emails:
        for found in client.iter_list("/customers", "customers", params={"email": email}):
            fields = found.get("custom_fields")
            if not fields:  # list items may omit custom fields: read the entity
                fields = client.get(f"/customers/{found['customer_id']}")["customer"].get("custom_fields")
            if any(f.get("label") == PROVIDER_ID_FIELD and str(f.get("value")) == str(row["id"]) for f in fields or []):
                return str(found["customer_id"])
    return None


def provider_id(item) -> str | None:
    """Our reference on a ZOHO customer: the provider-id custom field."""
    for f in item.get("custom_fields") or []:
        if f.get("label") == PROVIDER_ID_FIELD and f.get("value"):
            return str(f["value"])
    return None


def compare(row, remote) -> list[tuple]:
    return (
        text_differs("email", row.get("email"), remote.get("email"), fold=True)
        + text_differs("first_name", row.get("first_name"), remote.get("first_name"))
        + text_differs("last_name", row.get("last_name"), remote.get("last_name"))
        + lifecycle.compare_status(row, remote)
    )


RECONCILE = Reconciliation(
    collections=(
        Collection(
            "/customers", "customers", "customer_id", "Status.All", needs=("email", "first_name", "last_name", "status")
        ),
    ),
    columns=lambda: ([t.c.email, t.c.first_name, t.c.last_name, t.c.status, cast(t.c.id, String).label("ref")], t),
    reference=provider_id,
    compare=compare,
    zoho_label=lambda item: f"{item.get('display_name') or ''} <{item.get('email') or ''}>".strip(),
    matches_by=("email", "email"),  # a ZOHO customer without the custom field: ours if the email is
)

# what ZOHO's GET /customers/{id} shows of our payload (the drift check): a closed account (our private flag,
# set only then) is ZOHO's status "inactive"; the custom fields come back in the order sent
DRIFT = (
    *drift_fields(
        "display_name",
        "first_name",
        "last_name",
        "email",
        "currency_code",
        "phone",
        "company_name",
        "vat_reg_no",
        *(f"billing_address.{key}" for key in ("attention", "street", "street2", "city", "state", "zip", "country")),
        "custom_fields[].label",
        "custom_fields[].value",
    ),
    status_flag(lifecycle.INACTIVE, lambda status: status == "inactive", absent=False),
)


SPEC = EntitySpec(
    name="customers",
    table=t,
    zoho_id_column="zoho_billing_customer_id",
    select=lambda: select(t),
    eligible=lambda table: true(),
    label=label,
    label_sql=label_sql,
    parents=no_parents,
    build=build,
    create=create,
    update=update,
    lookup=lookup,
    reconcile=RECONCILE,
    drift=DRIFT,
    aliases=("customer",),
    natural_keys=("email",),
    lookup_key=lambda row: (row["email"] or "").strip(),  # the email build() sends
    calls=lifecycle.calls,
    children=(("subscriptions", "customer_id"), ("invoices", "customer_id"), ("payments", "customer_id")),
    after_record=lifecycle.resend_reopened_services,
    update_in_doubt=True,  # a lost markas* may have moved ZOHO's customer: read it back (customer_lifecycle.update)
)
