"""Manual invoices (installation, pro_rata, equipment, adjustment) → ZOHO invoices.

Lines come from `line_items` (one fallback line from the totals when it is null or empty), VAT per line.
ZOHO's total must equal `total_amount` to the cent: we compute it the way ZOHO does before calling and refuse
the row when it would differ, so a wrong invoice never reaches finance. Recurring invoices are never pushed:
ZOHO raises its own from the subscription.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from zoho_pipeline.source.tables import Garbled, customer_invoices as t
from zoho_pipeline.sync.entities.base import (
    EntitySpec, InvalidRow, find_by_reference, money, public, vat,
)

MANUAL_TYPES = ("installation", "pro_rata", "equipment", "adjustment")
NOT_PUSHED_STATUSES = ("draft", "cancelled")


def label(row) -> str:
    return row["invoice_number"]


def parents(row) -> list[tuple[str, str]]:
    return [("customers", str(row["customer_id"]))]


def _lines(row, product_id: str, tax_id: str) -> list[dict]:
    items = row["line_items"]
    if isinstance(items, Garbled):
        raise InvalidRow("line_items", f"is not valid JSON: {str(items)[:60]!r}")
    if items in (None, [], {}):
        subtotal = money(row["subtotal"], "subtotal")
        name = row["invoice_type"].replace("_", "-").capitalize() + " charge"
        return [{"product_id": product_id, "name": name, "description": row["invoice_number"],
                 "price": float(subtotal), "quantity": 1, "tax_id": tax_id}]
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
            amount = money(item["amount"], f"line_items[{n}].amount")
            if amount != money(quantity * price, "amount"):
                raise InvalidRow(f"line_items[{n}].amount", f"is {amount} but quantity × unit_price is "
                                 f"{money(quantity * price, 'amount')}")
        lines.append({"product_id": product_id, "name": description[:100], "description": description,
                      "price": float(price), "quantity": float(quantity), "tax_id": tax_id})
    return lines


def zoho_total(lines: list[dict]):
    """What ZOHO computes: each line rounded, VAT per line rounded, then summed."""
    item_totals = [money(money(line["price"], "price") * money(line["quantity"], "quantity"), "amount")
                   for line in lines]
    return sum(item_totals) + sum(vat(amount) for amount in item_totals)


def build(row, ctx) -> dict:
    if row["invoice_type"] not in MANUAL_TYPES:
        raise InvalidRow("invoice_type", f"{row['invoice_type']!r} invoices are raised by ZOHO itself")
    subtotal = money(row["subtotal"], "subtotal")
    total = money(row["total_amount"], "total_amount")
    if subtotal <= 0 or total <= 0:
        raise InvalidRow("total_amount", f"is R {total}: a ZOHO invoice must be positive (use a credit note)")
    lines = _lines(row, ctx.catalog.product_id(row["invoice_type"]), ctx.catalog.tax_id())
    expected = zoho_total(lines)
    if expected != total:
        raise InvalidRow("total_amount", f"is R {total} but ZOHO would total the lines to R {expected} "
                         f"(subtotal R {subtotal}, vat_amount R {money(row['vat_amount'], 'vat_amount')})")
    return {
        "customer_id": ctx.parent_zoho_id("customers", row["customer_id"]),
        "date": row["invoice_date"].isoformat(),
        "due_date": row["due_date"].isoformat(),
        "reference_number": row["invoice_number"],
        "invoice_items": lines,
        "_total": str(total),
        "_void": row["status"] == "cancelled",
    }


def _check_total(invoice: dict, payload: dict) -> None:
    if money(invoice.get("total"), "total") != money(payload["_total"], "total_amount"):
        raise InvalidRow("total_amount", f"ZOHO totalled invoice {invoice.get('invoice_id')} to R "
                         f"{invoice.get('total')} but total_amount is R {payload['_total']}")


def create(client, payload, row, ctx) -> str:
    if payload["_void"]:
        raise InvalidRow("status", "a cancelled invoice is not created in ZOHO")
    body = public(payload)
    invoice = client.post("/invoices", json=body)["invoice"]
    ctx.remember_zoho_id(str(invoice["invoice_id"]))  # kept even if the check below fails the row
    _check_total(invoice, payload)
    return str(invoice["invoice_id"])


def update(client, zoho_id, payload, row, ctx) -> None:
    if payload["_void"]:
        client.post(f"/invoices/{zoho_id}/void")
        return
    body = public(payload)
    _check_total(client.put(f"/invoices/{zoho_id}", json=body)["invoice"], payload)


def lookup(client, payload, row, ctx) -> str | None:
    return find_by_reference(client, "/invoices", "invoices", "invoice_id", "reference_number",
                             payload["reference_number"], params={"customer_id": payload["customer_id"]})


SPEC = EntitySpec(
    name="invoices",
    table=t,
    zoho_id_column="zoho_billing_invoice_id",
    select=lambda: select(t),
    eligible=lambda table: and_(
        table.c.invoice_type.in_(MANUAL_TYPES),
        or_(table.c.status.not_in(NOT_PUSHED_STATUSES), table.c.zoho_billing_invoice_id.is_not(None)),
    ),
    label=label,
    label_sql=lambda: t.c.invoice_number,
    parents=parents,
    build=build,
    create=create,
    update=update,
    lookup=lookup,
    children=(("payments", "invoice_id"),),
    month_column="invoice_date",
)
