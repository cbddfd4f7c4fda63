"""ZAR amounts the way ZOHO computes them: two places, half up; VAT per line, then summed.

An invoice's VAT is `sum(round(amount * 0.15, 2))` over its lines, as ZOHO does, so an invoice whose totals come
from `invoice_totals` has the totals ZOHO computes. The demo's rows and its played months both use these.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

VAT_RATE = Decimal("0.15")
CENT = Decimal("0.01")


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def line_vat(amount) -> Decimal:
    return money(Decimal(str(amount)) * VAT_RATE)


def invoice_totals(line_items: list[dict]) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, vat, total) of line items the way ZOHO computes them: VAT rounded per line, then summed."""
    subtotal = sum((money(Decimal(str(li["amount"]))) for li in line_items), Decimal("0.00"))
    vat = sum((line_vat(li["amount"]) for li in line_items), Decimal("0.00"))
    return money(subtotal), money(vat), money(subtotal + vat)


def line_item(description, quantity, unit_price) -> dict:
    """One line of an invoice's `line_items`: the unit price and the amount rounded to the cent, as floats (the column is JSON)."""
    unit = money(Decimal(str(unit_price)))
    amount = money(unit * quantity)
    return dict(description=description, quantity=quantity, unit_price=float(unit), amount=float(amount))
