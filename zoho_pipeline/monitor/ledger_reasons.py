"""Why a customer's balance in ZOHO differs from the source's: the reason column of the ledger check.

A difference is never only counted: each known cause is named with the amount it accounts for, and the row says
when the causes do not account for all of it. The causes, from the frames `ledger.source_ledger` builds and the
ZOHO list pages the check has already read (no further call):
- a linked recurring invoice that ZOHO billed at another amount (a package or price change that reached ZOHO after
  its renewal: ZOHO_PLAN_CHANGE_AT=end_of_term applies it from ZOHO's next term) — what ZOHO still owes on it beyond
  the source, and what a payment of the provider's amount left over as ZOHO credit;
- a bill that is not in ZOHO (refused, failed or not synced yet: the demo's deliberately bad rows), with its error;
- a completed payment that is not in ZOHO, with its error;
- an unpaid ZOHO invoice no source invoice knows: ZOHO's renewal of a subscription whose service the source had
  cancelled before that term (the cancellation reached ZOHO after its renewal), or another of ZOHO's own invoices.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.source.tables import customer_services as svc
from zoho_pipeline.sync.entities.recurring_match import HISTORY, LINKED

ZERO = Decimal("0.00")
RECEIVABLE, CREDIT = "receivable", "unused_credits"


def _cents(value) -> Decimal:
    if value is None or value != value:  # None or NaN
        return ZERO
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _present(value) -> bool:
    return value is not None and value == value and str(value) != ""


def _cancelled_services(engine) -> dict[str, tuple[str, object]]:
    """ZOHO subscription id → (service status, cancellation date) of the source's cancelled services."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(svc.c.zoho_subscription_id, svc.c.status, svc.c.cancellation_date).where(
                svc.c.zoho_subscription_id.is_not(None), svc.c.status == "cancelled"
            )
        ).all()
    return {str(z): (status, day) for z, status, day in found}


def reasons_by_customer(engine, bills, payments, unpaid: dict, customers) -> dict[str, list[tuple]]:
    """Source customer id → [(kind, amount ZOHO minus source it accounts for, reason)]."""
    out: dict[str, list[tuple]] = defaultdict(list)
    pushed = bills["pushed_zoho_id"].map(_present) | (
        (bills["link_state"] == LINKED) & bills["zoho_invoice_id"].map(_present)
    )
    bill_in_zoho = dict(zip(bills["invoice_id"], pushed, strict=True))
    for r in bills[bills["is_bill"]].itertuples():
        if r.link_state == LINKED and _present(r.zoho_total) and _cents(r.zoho_total) != _cents(r.total):
            owed = _cents((unpaid.get(str(r.zoho_invoice_id)) or {}).get("balance")) - _cents(r.left)
            surplus = max(ZERO, _cents(r.paid) - _cents(r.zoho_total))
            why = (
                f"{r.invoice_number}: ZOHO billed R {_cents(r.zoho_total)} for the term, the provider R "
                f"{_cents(r.total)} (a package or price change that reached ZOHO after its renewal applies from "
                "ZOHO's next term, ZOHO_PLAN_CHANGE_AT=end_of_term)"
            )
            for kind, amount in ((RECEIVABLE, owed), (CREDIT, surplus)):
                if amount:
                    out[r.customer_id].append((kind, amount, why))
        manual = r.invoice_type != "recurring" or r.link_state == HISTORY
        if manual and not bill_in_zoho[r.invoice_id] and _cents(r.left):
            error = r.sync_error if _present(r.sync_error) else "not synced yet"
            out[r.customer_id].append(
                (RECEIVABLE, -_cents(r.left), f"{r.invoice_number} (R {_cents(r.left)} owed) is not in ZOHO: {error}")
            )
    for p in payments[~payments["zoho_payment_id"].map(_present)].itertuples():
        error = p.sync_error if _present(p.sync_error) else "not synced yet"
        why = f"payment {p.transaction_id} (R {_cents(p.amount)}) is not in ZOHO: {error}"
        if _cents(p.applied) and bill_in_zoho.get(p.invoice_id):
            out[p.customer_id].append((RECEIVABLE, _cents(p.applied), why))
        if _cents(p.unapplied):
            out[p.customer_id].append((CREDIT, -_cents(p.unapplied), why))
    known = set(bills["pushed_zoho_id"].map(str)) | set(bills["zoho_invoice_id"].map(str))
    by_zoho_customer = {
        str(z): c for z, c in zip(customers["zoho_billing_customer_id"], customers["customer_id"], strict=True) if z
    }
    cancelled = _cancelled_services(engine)
    for zoho_id, item in unpaid.items():
        customer = by_zoho_customer.get(str(item.get("customer_id")))
        if zoho_id in known or customer is None:
            continue
        balance, day = _cents(item.get("balance")), str(item.get("date") or "")
        why = f"ZOHO invoice {item.get('invoice_number')} of {day} (R {balance} due) has no source invoice"
        service = cancelled.get(str(item.get("subscription_id") or ""))
        if service and service[1] is not None and str(service[1]) <= day:
            why += (
                f": ZOHO renewed the subscription for a term after the service's cancellation on {service[1]} (the "
                "cancellation reached ZOHO after its renewal); void the invoice in ZOHO or credit the customer"
            )
        elif item.get("subscription_id"):
            why += f": ZOHO's own invoice of subscription {item.get('subscription_id')}, linked to no provider invoice"
        out[customer].append((RECEIVABLE, balance, why))
    return out


def with_reasons(rows: list[list], reasons: dict[str, list[tuple]]) -> tuple[list[list], int]:
    """The balance rows (kind, label, source_id, zoho_id, source, zoho, difference, detail) with their reasons in
    `detail`; and how many of their customers the reasons account for to the cent."""
    unexplained, differing = set(), set()
    for row in rows:
        kind, customer, difference = row[0], row[2], row[6]
        if kind not in (RECEIVABLE, CREDIT):
            continue
        differing.add(customer)
        found = [(amount, why) for k, amount, why in reasons.get(customer, ()) if k == kind]
        accounted = sum((amount for amount, _ in found), ZERO)
        if not found:
            row[7] += ": no known cause (read the customer's invoices and payments in ZOHO)"
        else:
            row[7] += ": " + "; ".join(why for _, why in found)
        if accounted != difference:
            unexplained.add(customer)
            if found:
                row[7] += f" (these account for R {accounted} of R {difference})"
    return rows, len(differing - unexplained)
