"""Money shared by invoices and credit notes: Decimal helpers and line pricing (per line, half up to the cent)."""

from __future__ import annotations

from decimal import Decimal

from ..errors import bad
from .common import Ctx, cents, dec, num, qty, tax_of, text

ZERO = Decimal(0)


def D(x) -> Decimal:
    return Decimal(str(x))


def price_lines(ctx: Ctx, items, key_field: str) -> tuple[list[dict], dict, Decimal, Decimal]:
    """Price line items: per line item_total and its tax, rounded half up to the cent."""
    if not isinstance(items, list) or not items:
        raise bad(4, f"Please enter {key_field}. {key_field} is mandatory.")
    lines, taxes, sub_total, tax_total = [], {}, ZERO, ZERO
    for order, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise bad(4, f"Invalid value passed for {key_field}")
        line = {
            "item_id": ctx.store.new_id(),
            "name": text(item, "name"),
            "description": text(item, "description"),
            "item_order": order,
            "unit": text(item, "unit"),
            "discount_amount": 0.0,
            "discount": 0.0,
        }
        if key_field == "invoice_items":
            product = ctx.store.products.get(str(item.get("product_id") or ""))
            if product is None:
                raise bad(2006, "Invalid Product ID.")
            line.update(
                product_id=product["product_id"],
                name=line["name"] or product["name"],
                item_type="service",
                product_type="service",
                code="",
            )
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
        line.update(
            price=num(price),
            bcy_rate=num(price),
            quantity=quantity,
            item_total=num(total),
            tax_id=tax["tax_id"] if tax else "",
            tax_name=tax["tax_name"] if tax else "",
            tax_type=tax["tax_type"] if tax else "",
            tax_percentage=tax["tax_percentage"] if tax else 0,
            tax_amount=num(tax_amount),
        )
        lines.append(line)
        sub_total += total
        tax_total += tax_amount
    return lines, taxes, sub_total, tax_total


def positive_amount(body: dict) -> Decimal:
    amount = cents(dec(body.get("amount"), "amount"))
    if amount <= 0:
        raise bad(4, "Invalid value passed for amount")
    return amount
