"""Invoice actions: void, convert to open, write off and its undo, apply credit notes.

ZOHO answers these with `{code:0, message}` and no invoice (invoices.yml); the emulator adds the invoice to void
and converttoopen answers, which a client may ignore.
"""

from __future__ import annotations

from ..errors import refuse
from . import creditnotes, payments
from .common import Ctx, num, ok
from .invoices import find_invoice, settle, view
from .money import D


def _invoice(ctx: Ctx) -> dict:
    return find_invoice(ctx, ctx.params["invoice_id"])


def void_invoice(ctx: Ctx):
    """invoices.yml: "Upon voiding, the payments and credits associated with the invoices will be unassociated and
    will be under customer credits" — a paid invoice can be voided; what paid it becomes unused credit."""
    invoice = _invoice(ctx)
    if invoice["status"] == "void":
        raise refuse("invoice_already_void")
    payments.detach_invoice(ctx, invoice)
    creditnotes.detach_invoice(ctx, invoice)
    invoice.update(status="void", balance=0.0, write_off_amount=0.0, updated_time=ctx.timestamp())
    return ok("Invoice status has been changed to Void.", invoice=view(invoice))


def convert_to_open(ctx: Ctx):
    """Undo a void (or open a draft): the whole total is owed again."""
    invoice = _invoice(ctx)
    if invoice["status"] not in ("void", "draft"):
        raise refuse("invoice_not_void", number=invoice["invoice_number"], status=invoice["status"])
    invoice.update(status="sent", balance=invoice["total"], updated_time=ctx.timestamp())
    settle(ctx, invoice)
    return ok("Status of the invoice has been changed to open.", invoice=view(invoice))


def write_off(ctx: Ctx):
    """The balance due is written off: the invoice reads paid, `write_off_amount` holds what was given up."""
    invoice = _invoice(ctx)
    if invoice["status"] in ("void", "draft") or D(invoice["balance"]) <= 0:
        raise refuse("writeoff_nothing_due", number=invoice["invoice_number"], status=invoice["status"])
    invoice.update(write_off_amount=invoice["balance"], balance=0.0, updated_time=ctx.timestamp())
    settle(ctx, invoice)
    return ok("Invoice has been written off..")


def cancel_write_off(ctx: Ctx):
    invoice = _invoice(ctx)
    if D(invoice["write_off_amount"]) <= 0:
        raise refuse("writeoff_none", number=invoice["invoice_number"])
    invoice.update(
        balance=num(D(invoice["balance"]) + D(invoice["write_off_amount"])),
        write_off_amount=0.0,
        updated_time=ctx.timestamp(),
    )
    settle(ctx, invoice)
    return ok("The write off done for this invoice has been cancelled.")


def apply_credits(ctx: Ctx):
    """POST /invoices/{id}/credits {apply_creditnotes:[{creditnote_id, amount_applied}]}: all or nothing."""
    invoice = _invoice(ctx)
    notes = creditnotes.requested(ctx.body, "apply_creditnotes", "creditnote_id")
    applied = creditnotes.apply(ctx, [(creditnotes.find_creditnote(ctx, n), invoice, a) for n, a in notes])
    rows = [
        {
            "creditnotes_invoice_id": ctx.store.new_id(),
            "creditnote_id": note["creditnote_id"],
            "invoice_id": inv["invoice_id"],
            "amount_applied": num(amount),
            "date": ctx.today(),
        }
        for note, inv, amount in applied
    ]
    return ok("Credits have been applied to the invoice(s).", apply_creditnotes=rows)
