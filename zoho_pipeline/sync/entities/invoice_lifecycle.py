"""A manual invoice's later life in ZOHO, and the rounding that keeps ZOHO's total equal to the source's.

- `cancelled` → void, once (read back after doubt); an edit of an unpaid invoice → `PUT` of the whole invoice.
- An edit ZOHO cannot take fails the row with what finance must do (and the failed-rows verdict alerts it): a paid
  or part-paid invoice whose new total is below what was paid, a void one, a credit note (ZOHO's API cannot edit
  credit notes: invoices.update).
- **Rounding.** The source total is the truth. ZOHO rounds each line and each line's VAT half up to the cent; the
  provider's system may round half-even at exactly half a cent, or take VAT on the subtotal. Each line's rounding
  can move the total by at most one cent either way, so a difference of up to `ROUNDING_PER_LINE` per line is
  rounding: the invoice goes with ZOHO's `adjustment` ("Rounding") so that ZOHO's total equals the source total
  to the cent. A larger difference is a data error and fails naming both figures. Credit notes take no adjustment
  in ZOHO's API, so a credit note must total exactly.
"""

from __future__ import annotations

from decimal import Decimal

from zoho_pipeline.sync.entities.base import InvalidRow, known_previous, money, public
from zoho_pipeline.sync.entities.payment_lifecycle import raised_for_a_refund
from zoho_pipeline.zoho.errors import PERMANENT, ZohoError

ROUNDING_PER_LINE = Decimal("0.01")  # the most one line's rounding (amount, then VAT) can move a total
ROUNDING_LABEL = "Rounding"


def rounding(total: Decimal, zoho_would: Decimal, line_count: int, row, credit: bool) -> Decimal:
    """The adjustment that makes ZOHO's total the source total (0 when they agree); InvalidRow beyond rounding."""
    difference = total - zoho_would
    tolerance = ROUNDING_PER_LINE * max(1, line_count)
    if difference == 0:
        return difference
    if credit or abs(difference) > tolerance:
        why = (
            "a credit note must total exactly"
            if credit
            else f"more than rounding (R {tolerance} for {line_count} line(s))"
        )
        raise InvalidRow(
            "total_amount",
            f"is R {total} but ZOHO would total the lines to R {zoho_would} ({why}; "
            f"subtotal R {money(row['subtotal'], 'subtotal')}, vat_amount R {money(row['vat_amount'], 'vat_amount')})",
        )
    return difference


def add_rounding(payload: dict, adjustment: Decimal) -> dict:
    """Only an invoice that needs it carries the adjustment: every other invoice keeps its hash."""
    if adjustment:
        payload["adjustment"] = float(adjustment)
        payload["adjustment_description"] = ROUNDING_LABEL
    return payload


def void(client, kind: str, zoho_id: str, payload: dict, ctx) -> None:
    """Void once: not again when what was sent last was already the void; after doubt (or with nothing kept) only
    when ZOHO does not show it void yet."""
    previous = known_previous(ctx, payload)
    if previous is not None and previous.get("_void") and not (ctx.in_doubt or ctx.adopted):
        return  # voided by an earlier sync; a later edit of a cancelled invoice changes nothing in ZOHO
    if previous is None or ctx.in_doubt or ctx.adopted:
        if (client.get(f"/{kind}s/{zoho_id}")[kind].get("status") or "").lower() == "void":
            return
    client.post(f"/{kind}s/{zoho_id}/void")


def put(client, zoho_id: str, payload: dict, row) -> dict:
    """The edit of an invoice in ZOHO; a refusal becomes what finance must do."""
    body = public(payload)
    body.setdefault("adjustment", 0)  # ZOHO keeps an earlier adjustment unless told otherwise
    try:
        return client.put(f"/invoices/{zoho_id}", json=body)["invoice"]
    except ZohoError as exc:
        if exc.kind != PERMANENT or exc.http_status == 404:
            raise
        raise InvalidRow(
            "total_amount",
            f"ZOHO refused the edit of invoice {zoho_id} ({exc.message}, code {exc.code}). Finance: if it is paid "
            "and the new total is below what was paid, refund or move the payment (or raise a credit note) first; "
            "if it is void in ZOHO, raise a new invoice; then retry the row (zoho-pipeline retry)",
        ) from None


def raised_by_zoho(item) -> bool:
    """Reconciliation: a document ZOHO raised for an action of ours elsewhere (a refund's credit note)."""
    return raised_for_a_refund(item)
