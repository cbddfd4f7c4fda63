"""The figures finance asks for after a sync, from ZOHO's list pages (a few calls per thousand entities):

- payments applied to invoices vs left as unused credit, in ZOHO;
- ZOHO invoices still unpaid that the source says are paid (the invoices the pipeline pushed);
- customers whose ZOHO balance differs from the source's, and payments on recurring invoices left as credit while
  ZOHO holds the invoice: the ledger check's figures (monitor.ledger, issue 15).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.monitor import ledger
from zoho_pipeline.source import tables as T

PER_PAGE = 200
CENT = Decimal("0.01")


@dataclass
class FinanceFigures:
    payments: int = 0
    applied: Decimal = Decimal("0.00")  # what ZOHO's payments paid on invoices
    credit: Decimal = Decimal("0.00")  # what they left as the customers' unused credit
    paid_in_source_unpaid_in_zoho: list[str] = field(default_factory=list)  # invoice numbers
    balance_differences: int | None = None  # customers; None: not computed (the ledger check)
    recurring_left_as_credit: int | None = None  # payments (the ledger check)

    def as_dict(self) -> dict:
        return {
            "payments": self.payments,
            "applied": str(self.applied),
            "credit": str(self.credit),
            "paid_in_source_unpaid_in_zoho": self.paid_in_source_unpaid_in_zoho,
            "balance_differences": self.balance_differences,
            "recurring_left_as_credit": self.recurring_left_as_credit,
        }

    def lines(self) -> list[str]:
        balances = (
            "not computed yet (the ledger check, design.md)"
            if self.balance_differences is None
            else str(self.balance_differences)
        )
        unpaid = self.paid_in_source_unpaid_in_zoho
        shown = ", ".join(unpaid[:5]) + (" …" if len(unpaid) > 5 else "")
        return [
            f"Payments in ZOHO: {self.payments}; applied to invoices R {self.applied:,.2f}, "
            f"left as credit R {self.credit:,.2f}",
            f"Customers whose ZOHO balance differs from the source: {balances}",
            "Payments on recurring invoices left as credit while ZOHO holds the invoice: "
            + ("not computed" if self.recurring_left_as_credit is None else str(self.recurring_left_as_credit)),
            f"ZOHO invoices unpaid that the source says are paid: {len(unpaid)}" + (f" ({shown})" if unpaid else ""),
        ]


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def payment_application(client) -> tuple[int, Decimal, Decimal]:
    """(payments, applied, unused credit) over every ZOHO payment."""
    count, applied, credit = 0, Decimal("0.00"), Decimal("0.00")
    for item in client.iter_list("/payments", "payments", per_page=PER_PAGE):
        amount = _money(item.get("amount"))
        if "invoices" in item:
            on_invoices = sum((_money(a.get("amount_applied")) for a in item["invoices"]), Decimal("0.00"))
        else:
            on_invoices = amount - _money(item.get("unused_amount"))
        count += 1
        applied += on_invoices
        credit += _money(item["unused_amount"]) if "unused_amount" in item else amount - on_invoices
    return count, applied, credit


def paid_in_source_unpaid_in_zoho(engine, client) -> list[str]:
    """Invoice numbers the source says are paid whose ZOHO invoice (the one the pipeline recorded) is not."""
    inv = T.customer_invoices.c
    with engine.connect() as conn:
        paid = dict(
            conn.execute(
                sa.select(inv.zoho_billing_invoice_id, inv.invoice_number).where(
                    inv.status == "paid", inv.zoho_billing_invoice_id.is_not(None)
                )
            ).all()
        )
    if not paid:
        return []
    unpaid = []
    for item in client.iter_list("/invoices", "invoices", params={"filter_by": "Status.All"}, per_page=PER_PAGE):
        if item.get("invoice_id") in paid and item.get("status") != "paid":
            unpaid.append(paid[item["invoice_id"]])
    return sorted(unpaid)


def balance_differences(engine, client) -> int | None:
    """Customers whose ZOHO outstanding balance or unused credit differs from the source's (the ledger check)."""
    return ledger.ledger(engine, client).customers_differing


def finance_figures(engine, client) -> FinanceFigures:
    count, applied, credit = payment_application(client)
    figures = ledger.finance_figures(engine, client)
    return FinanceFigures(
        payments=count,
        applied=applied,
        credit=credit,
        paid_in_source_unpaid_in_zoho=paid_in_source_unpaid_in_zoho(engine, client),
        balance_differences=figures["customers_balance_differs"],
        recurring_left_as_credit=figures["recurring_payments_left_as_credit"],
    )
