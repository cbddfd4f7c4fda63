"""The ledger check: every customer's balance in ZOHO equal to the source's, to the cent (issue 15).

What the source says a customer **owes** and **holds in credit** (docs/architecture.md, "The ledger"), in the
entity modules' terms:
- the customer's *bills* are the invoices ZOHO holds or should hold: manual invoices the invoices module pushes
  (positive, not draft, not cancelled) and recurring invoices (ZOHO's own twin, or none yet), not draft or
  cancelled;
- each completed payment pays its invoice up to what is left of it, earlier payments first (by completion time,
  then id) — the payments module's split, on the payer's own bills only; what it does not apply (no invoice, a
  credit adjustment, an invoice that is not a bill or not the payer's, more than was left) is the customer's credit;
- **owes** = Σ over the bills of (total − paid), never below 0; **holds in credit** = Σ unapplied payment amounts
  + Σ credit adjustments (negative adjustments, pushed as credit notes, never applied by the pipeline).
ZOHO's side is `outstanding_receivable_amount` and `unused_credits` of every customer list row, and the unpaid
invoice list (a paid-in-the-source linked invoice that ZOHO lists as unpaid is the money finance would chase):
a few list pages per thousand customers, never a call per customer. pandas does the comparison and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa

from zoho_pipeline.monitor.ledger_reasons import reasons_by_customer, with_reasons
from zoho_pipeline.source.tables import customer_invoices as inv
from zoho_pipeline.source.tables import customers as cust
from zoho_pipeline.source.tables import payment_transactions as pay
from zoho_pipeline.source.tables import zoho_recurring_links as links
from zoho_pipeline.sync.entities.invoices import MANUAL_TYPES, NOT_PUSHED_STATUSES
from zoho_pipeline.sync.entities.recurring_match import DECIDED, LINKED

if TYPE_CHECKING:
    import pandas as pd

PER_PAGE = 200
MONEY_KINDS = ("receivable", "unused_credits", "recurring_total", "recurring_unpaid")
DIFFERENCE_COLUMNS = ["kind", "label", "source_id", "zoho_id", "source", "zoho", "difference", "detail"]


@dataclass
class LedgerReport:
    customers_compared: int = 0
    customers_differing: int = 0
    customers_explained: int = 0  # differing customers whose every difference the reasons account for, to the cent
    recurring_linked: int = 0
    recurring_not_linked: int = 0
    recurring_total_differs: int = 0
    linked_paid_in_source_unpaid_in_zoho: int = 0
    recurring_payments_left_as_credit: int = 0  # applied in the source, not in ZOHO, while ZOHO holds the invoice
    api_calls: int = 0
    differences: pd.DataFrame = field(default_factory=lambda: _frame_of([]))

    @property
    def errors(self) -> pd.DataFrame:
        """Differences of money (balances, totals, paid status); recurring invoices not linked are listed beside
        them (their payments wait, then go as credit), and show in the balances when they matter."""
        return self.differences[self.differences["kind"].isin(MONEY_KINDS)]

    @property
    def ok(self) -> bool:
        return self.errors.empty

    def figures(self) -> dict:
        return {
            "recurring_payments_left_as_credit": self.recurring_payments_left_as_credit,
            "customers_balance_differs": self.customers_differing,
            "subscription_invoices_paid_in_source_not_in_zoho": self.linked_paid_in_source_unpaid_in_zoho,
            "customers_compared": self.customers_compared,
            "recurring_linked": self.recurring_linked,
            "recurring_not_linked": self.recurring_not_linked,
            "api_calls": self.api_calls,
        }

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            **self.figures(),
            "recurring_total_differs": self.recurring_total_differs,
            "customers_explained": self.customers_explained,
            "differences": self.differences.astype(str).to_dict("records"),
        }


# --- the source's ledger ----------------------------------------------------------------------------------------


def _frame_of(rows, columns=DIFFERENCE_COLUMNS) -> pd.DataFrame:
    """pandas is imported when a ledger check runs, not with the definitions: it was 0.8 s of every process that
    loads them (a no-op `zoho-pipeline sync`, the code server), for a check that runs once a day."""
    import pandas

    return pandas.DataFrame(rows, columns=columns)


def _frame(engine, query) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(query)
        return _frame_of(result.fetchall(), columns=list(result.keys()))


def source_ledger(engine) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers with owes and credit, bills with paid and left, completed payments with applied)."""
    customers = _frame(
        engine,
        sa.select(cust.c.id.label("customer_id"), cust.c.email.label("label"), cust.c.zoho_billing_customer_id),
    )
    bills = _frame(
        engine,
        sa.select(
            inv.c.id.label("invoice_id"),
            inv.c.invoice_number,
            inv.c.customer_id,
            inv.c.invoice_type,
            inv.c.status,
            inv.c.total_amount.label("total"),
            links.c.state.label("link_state"),
            links.c.zoho_invoice_id,
            links.c.zoho_total,
            inv.c.zoho_billing_invoice_id.label("pushed_zoho_id"),
            inv.c.zoho_last_sync_error.label("sync_error"),
        ).select_from(inv.outerjoin(links, links.c.invoice_id == inv.c.id)),
    )
    payments = _frame(
        engine,
        sa.select(
            pay.c.id.label("payment_id"),
            pay.c.transaction_id,
            pay.c.customer_id,
            pay.c.invoice_id,
            pay.c.amount,
            pay.c.completed_at,
            pay.c.zoho_payment_id,
            pay.c.zoho_last_sync_error.label("sync_error"),
        ).where(pay.c.status == "completed"),
    )
    for frame, cols in ((bills, ["total", "zoho_total"]), (payments, ["amount"])):
        for col in cols:
            frame[col] = frame[col].map(lambda v: Decimal(str(v)) if v is not None and v == v else None)
    for frame, cols in (
        (customers, ["customer_id"]),
        (bills, ["invoice_id", "customer_id"]),
        (payments, ["payment_id", "customer_id", "invoice_id"]),
    ):
        for col in cols:
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    billable = ~bills["status"].isin(NOT_PUSHED_STATUSES)
    is_bill = billable & (
        (bills["invoice_type"].isin(MANUAL_TYPES) & bills["total"].map(lambda t: t is not None and t > 0))
        | (bills["invoice_type"] == "recurring")
    )
    bills["is_bill"] = is_bill
    credit_notes = bills[billable & (bills["invoice_type"] == "adjustment") & bills["total"].map(lambda t: t < 0)]

    # each payment pays what is left of its bill, earlier payments first (payments.build's split)
    payments = payments.sort_values(["invoice_id", "completed_at", "payment_id"], na_position="last")
    bill_total = dict(zip(bills.loc[is_bill, "invoice_id"], bills.loc[is_bill, "total"], strict=True))
    owner = dict(zip(bills["invoice_id"], bills["customer_id"], strict=True))
    applied, left = [], {}
    for invoice_id, amount, payer in zip(
        payments["invoice_id"], payments["amount"], payments["customer_id"], strict=True
    ):
        if invoice_id not in bill_total or owner.get(invoice_id) != payer:  # only the payer's own bill is paid
            applied.append(Decimal(0))
            continue
        remaining = left.get(invoice_id, bill_total[invoice_id])
        portion = max(Decimal(0), min(amount, remaining))
        left[invoice_id] = remaining - portion
        applied.append(portion)
    payments["applied"] = applied
    payments["unapplied"] = payments["amount"] - payments["applied"]
    bills["paid"] = bills["invoice_id"].map(
        lambda i: bill_total.get(i, Decimal(0)) - left.get(i, bill_total.get(i, Decimal(0)))
    )
    bills["left"] = [
        (total - paid) if bill else Decimal(0)
        for total, paid, bill in zip(bills["total"], bills["paid"], is_bill, strict=True)
    ]

    owes = bills[is_bill].groupby("customer_id")["left"].sum()
    credit = payments.groupby("customer_id")["unapplied"].sum()
    notes = credit_notes.groupby("customer_id")["total"].sum()
    customers["owes"] = customers["customer_id"].map(lambda c: owes.get(c, Decimal(0)))
    customers["credit"] = customers["customer_id"].map(lambda c: credit.get(c, Decimal(0)) - notes.get(c, Decimal(0)))
    return customers, bills, payments


# --- ZOHO's side ------------------------------------------------------------------------------------------------


def _pages(client, path: str, key: str, params: dict) -> list[dict]:
    items, page = [], 1
    while True:
        body = client.get(path, params={**params, "page": page, "per_page": PER_PAGE})
        items.extend(body.get(key) or [])
        if not (body.get("page_context") or {}).get("has_more_page"):
            return items
        page += 1


def _cents(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


# --- the check --------------------------------------------------------------------------------------------------


def ledger(engine, client) -> LedgerReport:
    """Compare every ZOHO customer's balances and every linked recurring invoice with the source."""
    calls_before = client.stats.api_calls
    report = LedgerReport()
    customers, bills, payments = source_ledger(engine)
    zoho_customers = {
        str(c.get("customer_id")): c for c in _pages(client, "/customers", "customers", {"filter_by": "Status.All"})
    }
    unpaid = {
        str(i.get("invoice_id")): i for i in _pages(client, "/invoices", "invoices", {"filter_by": "Status.Unpaid"})
    }
    reasons = reasons_by_customer(engine, bills, payments, unpaid, customers)
    rows = []

    in_zoho = customers[customers["zoho_billing_customer_id"].map(lambda z: bool(z) and str(z) in zoho_customers)]
    report.customers_compared = len(in_zoho)
    differing = set()
    for r in in_zoho.itertuples():
        remote = zoho_customers[str(r.zoho_billing_customer_id)]
        for kind, source, zoho in (
            ("receivable", _cents(r.owes), _cents(remote.get("outstanding_receivable_amount"))),
            ("unused_credits", _cents(r.credit), _cents(remote.get("unused_credits"))),
        ):
            if source != zoho:
                differing.add(r.customer_id)
                rows.append(
                    [
                        kind,
                        r.label,
                        r.customer_id,
                        str(r.zoho_billing_customer_id),
                        source,
                        zoho,
                        zoho - source,
                        "owes" if kind == "receivable" else "holds in credit",
                    ]
                )
    report.customers_differing = len(differing)
    rows, report.customers_explained = with_reasons(rows, reasons)

    recurring = bills[bills["invoice_type"] == "recurring"]
    linked = recurring[recurring["link_state"] == LINKED]
    report.recurring_linked = len(linked)
    undecided = recurring["is_bill"] & ~recurring["link_state"].isin(DECIDED)  # history ones are pushed: decided
    report.recurring_not_linked = int(undecided.sum())
    applied_by_invoice = payments.groupby("invoice_id")["applied"].sum()
    pays_by_invoice = payments[payments["applied"] > 0].groupby("invoice_id")["payment_id"].count()
    for r in linked.itertuples():
        if r.zoho_total is not None and r.total is not None and _cents(r.zoho_total) != _cents(r.total) and r.is_bill:
            report.recurring_total_differs += 1
            rows.append(
                [
                    "recurring_total",
                    r.invoice_number,
                    r.invoice_id,
                    r.zoho_invoice_id,
                    _cents(r.total),
                    _cents(r.zoho_total),
                    _cents(r.zoho_total) - _cents(r.total),
                    "ZOHO billed another amount for the term",
                ]
            )
        zoho_balance = _cents(unpaid[r.zoho_invoice_id].get("balance")) if r.zoho_invoice_id in unpaid else Decimal(0)
        source_left = _cents(r.left)
        if r.is_bill and zoho_balance > source_left:
            if source_left == 0:
                report.linked_paid_in_source_unpaid_in_zoho += 1
            report.recurring_payments_left_as_credit += int(pays_by_invoice.get(r.invoice_id, 0))
            rows.append(
                [
                    "recurring_unpaid",
                    r.invoice_number,
                    r.invoice_id,
                    r.zoho_invoice_id,
                    source_left,
                    zoho_balance,
                    zoho_balance - source_left,
                    f"paid R {_cents(applied_by_invoice.get(r.invoice_id, 0))} in the source; ZOHO still owes more",
                ]
            )
    for r in recurring[undecided].itertuples():
        rows.append(
            [
                "recurring_not_linked",
                r.invoice_number,
                r.invoice_id,
                None,
                _cents(r.total),
                None,
                None,
                f"{r.link_state or 'never looked for'}: its payments wait, then go as credit",
            ]
        )
    report.differences = _frame_of(rows)
    report.api_calls = client.stats.api_calls - calls_before
    return report


def finance_figures(engine, client) -> dict:
    """The three figures finance asks for (issue 15), for the demo's summary: payments on recurring invoices left
    as credit while ZOHO holds the invoice; customers whose ZOHO balance differs from the source's; ZOHO
    subscription invoices paid in the source but not in ZOHO. Each should be 0."""
    return ledger(engine, client).figures()
