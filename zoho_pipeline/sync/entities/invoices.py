"""Manual invoices (installation, pro_rata, equipment, adjustment) → ZOHO invoices; credits → credit notes.

Lines come from `line_items` (one fallback line from the totals when it is null or empty), VAT per line.
ZOHO's total must equal `total_amount` to the cent: we compute it the way ZOHO does before calling; a rounding
difference goes with ZOHO's adjustment ("Rounding"), a larger one fails the row, so a wrong invoice never reaches
finance (invoice_lifecycle). Recurring invoices are not pushed: ZOHO raises its own from the subscription, and
entities.recurring links the two (before this entity's rows are synced); only those for terms before the
subscription reached ZOHO are pushed, as plain invoices. An adjustment with a negative total (a credit for an
outage, say) becomes a ZOHO credit note on the 'Account credit' addon, found again by the same reference number.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import and_, or_, select

from zoho_pipeline.source.tables import Garbled
from zoho_pipeline.source.tables import customer_invoices as t
from zoho_pipeline.source.tables import zoho_recurring_links as links
from zoho_pipeline.sync.entities import invoice_lifecycle as lifecycle
from zoho_pipeline.sync.entities import recurring, recurring_estimate
from zoho_pipeline.sync.entities.base import (
    Collection,
    DriftField,
    EntitySpec,
    InvalidRow,
    Reconciliation,
    cents,
    drift_fields,
    find_by_reference,
    money,
    money_differs,
    public,
    sql_text,
    status_flag,
    vat,
)
from zoho_pipeline.sync.entities.recurring_match import HISTORY

MANUAL_TYPES = ("installation", "pro_rata", "equipment", "adjustment")
NOT_PUSHED_STATUSES = ("draft", "cancelled")
INVOICE, CREDIT_NOTE = "invoice", "creditnote"  # ZOHO's names: paths /invoices, /creditnotes; keys invoice_id, …
CREDIT_ADDON = "isp-account-credit"


def is_history(row) -> bool:
    """A recurring invoice ZOHO will never bill (its term began before the subscription reached ZOHO)."""
    return row.get("invoice_type") == "recurring" and row.get("link_state") == HISTORY


def _eligible(table):
    history = sa.select(links.c.invoice_id).where(links.c.state == HISTORY)
    return and_(
        or_(table.c.invoice_type.in_(MANUAL_TYPES), and_(table.c.invoice_type == "recurring", table.c.id.in_(history))),
        or_(table.c.status.not_in(NOT_PUSHED_STATUSES), table.c.zoho_billing_invoice_id.is_not(None)),
    )


def label(row) -> str:
    return row["invoice_number"]


def parents(row) -> list[tuple[str, str]]:
    return [("customers", str(row["customer_id"]))]


def _lines(row) -> list[tuple[str, object, object]]:
    """(description, quantity, unit price) per line, validated; one line from the subtotal when there are none."""
    items = row["line_items"]
    if isinstance(items, Garbled):
        raise InvalidRow("line_items", f"is not valid JSON: {str(items)[:60]!r}")
    if items in (None, [], {}):
        name = row["invoice_type"].replace("_", "-").capitalize() + " charge"
        return [(name, money(1, "quantity"), money(row["subtotal"], "subtotal"))]
    if not isinstance(items, list):
        raise InvalidRow("line_items", f"is a JSON {type(items).__name__}, not a list of line items")
    lines = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise InvalidRow(f"line_items[{n}]", f"is {item!r}, not an object")
        description = str(item.get("description") or "").strip()
        if not description:
            raise InvalidRow(f"line_items[{n}].description", "is empty")
        quantity = money(item.get("quantity"), f"line_items[{n}].quantity")
        if quantity <= 0:
            raise InvalidRow(f"line_items[{n}].quantity", f"must be positive (is {quantity})")
        price = money(item.get("unit_price"), f"line_items[{n}].unit_price")
        if item.get("amount") is not None:
            amount, expected = money(item["amount"], f"line_items[{n}].amount"), money(quantity * price, "amount")
            if amount != expected:
                raise InvalidRow(f"line_items[{n}].amount", f"is {amount} but quantity × unit_price is {expected}")
        lines.append((description, quantity, price))
    return lines


def zoho_total(lines) -> object:
    """What ZOHO computes: each line rounded, VAT per line rounded, then summed."""
    item_totals = [money(quantity * price, "amount") for _, quantity, price in lines]
    return sum(item_totals) + sum(vat(amount) for amount in item_totals)


def build(row, ctx) -> dict:
    """An invoice; or, for an adjustment that credits the customer (negative total), a credit note. A recurring
    invoice for a term before its subscription reached ZOHO (entities.recurring, `history`) is a plain invoice."""
    if row["invoice_type"] not in MANUAL_TYPES and not is_history(row):
        raise InvalidRow("invoice_type", f"{row['invoice_type']!r} invoices are raised by ZOHO itself")
    total = money(row["total_amount"], "total_amount")
    credit = row["invoice_type"] == "adjustment" and total < 0
    lines = _lines(row)
    if credit:
        if any(price > 0 for _, _, price in lines):
            raise InvalidRow("line_items", "a credit adjustment mixes charges and credits: split it in two")
        lines = [(d, q, -p) for d, q, p in lines]
    elif total <= 0 or money(row["subtotal"], "subtotal") <= 0:
        raise InvalidRow("total_amount", f"is R {total}: a ZOHO invoice must be positive")
    expected = -zoho_total(lines) if credit else zoho_total(lines)
    adjustment = lifecycle.rounding(total, expected, len(lines), row, credit)
    if row["due_date"] < row["invoice_date"]:
        raise InvalidRow("due_date", f"{row['due_date']} is before the invoice date {row['invoice_date']}")
    tax_id = ctx.catalog.tax_id()
    payload = {
        "customer_id": ctx.parent_zoho_id("customers", row["customer_id"]),
        "date": row["invoice_date"].isoformat(),
        "reference_number": row["invoice_number"],
        "_kind": CREDIT_NOTE if credit else INVOICE,
        "_total": str(abs(total)),
        "_void": row["status"] == "cancelled",
    }
    if credit:
        code = ctx.catalog.addon_code(CREDIT_ADDON)
        payload["creditnote_items"] = [
            {"code": code, "description": d, "quantity": float(q), "price": float(p), "tax_id": tax_id}
            for d, q, p in lines
        ]
    else:
        product_id = ctx.catalog.product_id(row["invoice_type"])
        payload["due_date"] = row["due_date"].isoformat()
        payload["invoice_items"] = [
            {
                "product_id": product_id,
                "name": d[:100],
                "description": d,
                "price": float(p),
                "quantity": float(q),
                "tax_id": tax_id,
            }
            for d, q, p in lines
        ]
    return lifecycle.add_rounding(payload, adjustment)


def _check_total(document: dict, payload: dict) -> None:
    if money(document.get("total"), "total") != money(payload["_total"], "total_amount"):
        raise InvalidRow(
            "total_amount",
            f"ZOHO totalled {payload['_kind']} {document.get(payload['_kind'] + '_id')}"
            f" to R {document.get('total')} but the source says R {payload['_total']}",
        )


def create(client, payload, row, ctx) -> str:
    kind = payload["_kind"]
    if payload["_void"]:
        raise InvalidRow("status", "a cancelled invoice is not created in ZOHO")
    document = client.post(f"/{kind}s", json=public(payload))[kind]
    ctx.remember_zoho_id(str(document[f"{kind}_id"]))  # kept even if the check below fails the row
    _check_total(document, payload)
    return str(document[f"{kind}_id"])


def update(client, zoho_id, payload, row, ctx) -> None:
    kind = payload["_kind"]
    if payload["_void"]:
        lifecycle.void(client, kind, zoho_id, payload, ctx)
    elif kind == CREDIT_NOTE and ctx.adopted:
        return  # found after a create in doubt: it carries what was sent, and ZOHO cannot edit it anyway
    elif kind == CREDIT_NOTE:
        raise InvalidRow(
            "line_items",
            f"credit note {zoho_id} is already in ZOHO, whose API cannot edit credit "
            "notes: void it in ZOHO, clear zoho_billing_invoice_id and retry the row",
        )
    else:
        _check_total(lifecycle.put(client, zoho_id, payload, row), payload)


def lookup(client, payload, row, ctx) -> str | None:
    kind = payload["_kind"]
    return find_by_reference(
        client,
        f"/{kind}s",
        f"{kind}s",
        f"{kind}_id",
        "reference_number",
        payload["reference_number"],
        params={"customer_id": payload["customer_id"]},
    )


def is_credit(row) -> bool:
    """A credit adjustment (negative total): a credit note in ZOHO."""
    total = cents(row.get("total_amount"))
    return row.get("invoice_type") == "adjustment" and total is not None and total < 0


def compare(row, remote) -> list[tuple]:
    src, status = row.get("status"), (remote.get("status") or "").lower()
    if is_credit(row):  # a credit note: positive in ZOHO
        out = money_differs("total", -cents(row.get("total_amount")), remote.get("total"), "credit note, incl. VAT")
        if (src == "cancelled") != (status == "void"):
            out.append(("status", src, status, "cancelled in the source ↔ void credit note in ZOHO"))
        return out
    out = money_differs("total", row.get("total_amount"), remote.get("total"), "incl. VAT")
    balance = cents(remote.get("balance"))
    zoho_paid = status == "paid" or (balance is not None and balance <= 0 and status not in ("void", "draft"))
    if src == "cancelled":
        if status != "void":
            out.append(("status", src, status, "cancelled in the source, not void in ZOHO"))
    elif status == "void":
        out.append(("status", src, status, "void in ZOHO, not cancelled in the source"))
    elif (src == "paid") != zoho_paid:
        out.append(
            (
                "paid",
                src,
                f"{status} (balance {balance})",
                "paid status differs (is the payment synced? zoho-pipeline status --entity payments)",
            )
        )
    return out


RECONCILE = Reconciliation(
    collections=(
        Collection("/invoices", "invoices", "invoice_id", "Status.All", needs=("total", "status", "balance")),
        Collection("/creditnotes", "creditnotes", "creditnote_id", "Status.All", needs=("total", "status")),
    ),
    foreign=lifecycle.raised_by_zoho,
    collection_of=lambda row: 1 if is_credit(row) else 0,
    columns=lambda: ([t.c.status, t.c.total_amount, t.c.invoice_type, t.c.invoice_number.label("ref")], t),
    reference=lambda item: item.get("reference_number") or None,
    compare=compare,
    zoho_label=lambda item: (
        f"{item.get('invoice_number') or item.get('number') or ''} (ref {item.get('reference_number') or '-'})"
    ),
)

# what ZOHO's GET /invoices/{id} (/creditnotes/{id}) shows of our payload (the drift check): the total we checked
# ZOHO computes is its `total`, a void its status; line items in the order sent
DRIFT = (
    *drift_fields(
        "customer_id",
        "date",
        "due_date",
        "reference_number",
        "adjustment_description",
        *(f"invoice_items[].{key}" for key in ("product_id", "name", "description", "quantity", "tax_id")),
        *(f"creditnote_items[].{key}" for key in ("code", "description", "quantity", "tax_id")),
        money=("invoice_items[].price", "creditnote_items[].price", "adjustment"),
    ),
    DriftField("_total", "total", money=True),
    status_flag("_void", lambda status: status == "void"),
)


SPEC = EntitySpec(
    name="invoices",
    table=t,
    zoho_id_column="zoho_billing_invoice_id",
    select=lambda: select(t, links.c.state.label("link_state")).select_from(
        t.outerjoin(links, links.c.invoice_id == t.c.id)
    ),
    eligible=_eligible,
    label=label,
    label_sql=lambda: sql_text(t.c.invoice_number),
    parents=parents,
    build=build,
    create=create,
    update=update,
    lookup=lookup,
    reconcile=RECONCILE,
    drift=DRIFT,
    aliases=("invoice", "customer_invoices"),
    natural_keys=("invoice_number", "zoho_billing_invoice_id"),
    children=(("payments", "invoice_id"),),
    month_column="invoice_date",
    before_sync=lambda engine, client, months, settings: recurring.link_recurring(
        engine, client, months=months, recheck_after=timedelta(minutes=settings.recurring_recheck_min)
    ),
    before_sync_estimate=lambda engine, months, settings, created: recurring_estimate.estimate_links(
        engine,
        months=months,
        recheck_after=timedelta(minutes=settings.recurring_recheck_min),
        created_first=created.get("subscriptions"),
    ),
)
