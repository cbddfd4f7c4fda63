"""The error type every handler raises (the server turns it into ZOHO's JSON envelope), and the refusals.

ZOHO documents no error codes for lifecycle refusals (../shared/reference/zoho-billing-lifecycle.md §1). Every
refusal the emulator makes is one row of ``REFUSALS``: one name, one code, one message, used by one precondition.
The codes are the project's own choice (docs/emulator.md lists them); when a recorded answer shows ZOHO's real code
and message for one of them, it replaces that row and nothing else.
"""

from __future__ import annotations

from typing import NamedTuple


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


def bad(code: int, message: str) -> ApiError:
    return ApiError(400, code, message)


def not_found(code: int, message: str) -> ApiError:
    return ApiError(404, code, message)


class Refusal(NamedTuple):
    code: int
    message: str  # str.format template; the fields name the entity refused


REFUSALS: dict[str, Refusal] = {
    # customers
    "customer_has_transactions": Refusal(
        3008, "The customer cannot be deleted as there are transactions associated with it."
    ),
    "customer_has_live_subscription": Refusal(
        3009, "The customer cannot be marked as inactive while subscription {subscription_id} is {status}."
    ),
    # subscriptions
    "subscription_already_cancelled": Refusal(1003, "The subscription has already been cancelled."),
    "subscription_not_non_renewing": Refusal(
        1004, "Only a non-renewing subscription can be reactivated; this one is {status}."
    ),
    "subscription_ended_update": Refusal(1006, "A {status} subscription cannot be updated."),
    "postpone_not_live": Refusal(1007, "Only a live subscription's renewal can be postponed; this one is {status}."),
    "postpone_not_later": Refusal(
        1008, "The renewal can only be postponed: {renewal_at} is not after the next billing date {next_billing_at}."
    ),
    "no_scheduled_changes": Refusal(1009, "There are no scheduled changes for this subscription."),
    # invoices
    "invoice_already_void": Refusal(1005, "The invoice has already been voided."),
    "invoice_void_edit": Refusal(1020, "Void invoice {number} cannot be edited."),
    "invoice_customer_change": Refusal(
        1021, "The customer cannot be changed on an invoice with payments or credits applied."
    ),
    "invoice_total_below_paid": Refusal(
        1022,
        "The invoice total ({total}) cannot be less than the amount already paid or credited ({paid}) on invoice "
        "{number}.",
    ),
    "invoice_delete_applied": Refusal(
        1023, "Invoice {number} cannot be deleted as payments or credits have been applied to it."
    ),
    "invoice_not_void": Refusal(1024, "Invoice {number} is {status}: only a void or draft invoice can be opened."),
    "writeoff_nothing_due": Refusal(1025, "Invoice {number} is {status} with no balance due to write off."),
    "writeoff_none": Refusal(1026, "Invoice {number} has not been written off."),
    # payments, credits, refunds
    "payment_to_closed_invoice": Refusal(24013, "Payments cannot be applied to the {status} invoice {number}."),
    "credit_to_closed_invoice": Refusal(24014, "Credits cannot be applied to the {status} invoice {number}."),
    "payment_exceeds_balance": Refusal(
        24016, "The amount applied ({amount}) exceeds the balance due ({balance}) of invoice {number}."
    ),
    "applied_exceeds_payment": Refusal(24017, "The amount applied to invoices exceeds the amount received."),
    "refund_exceeds_creditnote": Refusal(
        24018, "The refund amount ({amount}) exceeds the balance ({balance}) of credit note {number}."
    ),
    "refund_exceeds_payment": Refusal(
        24019, "The refund amount ({amount}) exceeds what is left of payment {payment_id} ({refundable})."
    ),
    "credit_exceeds_creditnote": Refusal(
        24020, "The credits applied ({amount}) exceed the balance ({balance}) of credit note {number}."
    ),
    "credit_exceeds_balance": Refusal(
        24021, "The credits applied ({amount}) exceed the balance due ({balance}) of invoice {number}."
    ),
    "creditnote_not_open": Refusal(24022, "Credit note {number} is {status}: only an open credit note can be used."),
    "payment_delete_refunded": Refusal(24023, "Payment {payment_id} cannot be deleted as it has been refunded."),
    "creditnote_already_void": Refusal(24024, "The credit note has already been voided."),
    "creditnote_not_void": Refusal(24025, "Credit note {number} is {status}: only a void credit note can be opened."),
    "creditnote_delete_used": Refusal(
        24026, "Credit note {number} cannot be deleted as it has been applied to invoices or refunded."
    ),
}


def refuse(name: str, **fields) -> ApiError:
    """The 400 answer for refusal `name` (a key of REFUSALS), its message filled from `fields`."""
    refusal = REFUSALS[name]
    return ApiError(400, refusal.code, refusal.message.format(**fields))
