"""Which ZOHO invoice is a provider recurring invoice's twin, or why it has none (issue 15): the rule, never a
guess:

    a provider recurring invoice of service S dated D  ↔  ZOHO's invoice of S's subscription whose term starts on D

ZOHO dates a subscription invoice on the first day of the term it bills (docs/emulator.md, "Which term"), and the
subscription mapping starts every subscription on the 1st after activation (subscriptions.starts_on), so ZOHO's
terms are the provider's calendar months. Amounts do not decide a link (a re-priced month is still that term);
they are compared and listed. ZOHO is read by list pages (200 invoices a call), newest first and only back to the
oldest term the pass needs (recurring_zoho: how far that order is trusted); a list row that does not say its
subscription, or two candidates for one term, make the candidates be read one by one; two that remain (after
dropping prorated `upgrade` charges and void ones) fail the row naming them.

History at go-live (one rule): ZOHO never bills a term that began before the subscription was created in ZOHO
(a backdated subscription is invoiced from its next renewal; docs/emulator.md). A recurring invoice dated before
the day its service's first subscription was created (ZOHO's `created_time`), or of a service cancelled before
it ever reached ZOHO, is `history`: nothing else would bill it, so the invoices module pushes it as a plain
invoice (recurring.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from zoho_pipeline.sync.entities.base import cents
from zoho_pipeline.sync.entities.recurring_zoho import Zoho

LINKED, WAITING, UNMATCHED, AMBIGUOUS = "linked", "waiting", "unmatched", "ambiguous"
HISTORY = "history"  # a term before its subscription reached ZOHO: no twin ever, pushed as a plain invoice
STATES = (LINKED, WAITING, UNMATCHED, AMBIGUOUS, HISTORY)
DECIDED = (LINKED, HISTORY)  # final: never looked at again


@dataclass
class LinkRow:
    invoice_id: str
    invoice_number: str
    state: str
    reason: str = ""
    zoho_invoice_id: str | None = None
    zoho_subscription_id: str | None = None
    zoho_total: Decimal | None = None
    zoho_status: str | None = None
    source_total: Decimal | None = None

    @property
    def amount_differs(self) -> bool:
        return self.state == LINKED and self.zoho_total is not None and self.zoho_total != self.source_total


def subscription_of_row(row: dict) -> tuple[str | None, str]:
    """The row's ZOHO subscription, or why it has none (bad input: listed, never blocking)."""
    if row["service_id"] is None:
        return None, "the recurring invoice names no service"
    if row["service_found"] is None:
        return None, f"service {row['service_id']} does not exist"
    if not row["zoho_subscription_id"]:
        return None, f"service {row['service_id']} ({row['service_status']}) has no ZOHO subscription (never pushed)"
    return str(row["zoho_subscription_id"]), ""


def decided_by_source(row: dict) -> tuple[str, str] | None:
    """(state, reason) of a row the source decides alone (its service has no ZOHO subscription); None when ZOHO's
    invoices decide it."""
    subscription, why = subscription_of_row(row)
    if subscription is not None:
        return None
    if row["service_found"] is not None and row["service_status"] == "cancelled":
        # a cancelled service is never created in ZOHO: nothing else would bill its months
        return HISTORY, f"service {row['service_id']} was cancelled before it reached ZOHO: pushed as a plain invoice"
    return UNMATCHED, why


def decide(row: dict, zoho: Zoho, customer_zoho_id: str | None) -> LinkRow:
    out = LinkRow(str(row["id"]), row["invoice_number"], UNMATCHED, source_total=cents(row["total_amount"]))
    by_source = decided_by_source(row)
    if by_source is not None:
        out.state, out.reason = by_source
        return out
    subscription = str(row["zoho_subscription_id"])
    out.zoho_subscription_id = subscription
    day = row["invoice_date"].isoformat()
    # a service cancelled and started again has had several subscriptions: a term may be any one's
    subscriptions = sorted({subscription} | zoho.of_service.get(str(row["service_id"]), set()))
    found = [c for sub in subscriptions for c in zoho.candidates(sub, customer_zoho_id, day)]
    live = [c for c in found if (c.get("status") or "").lower() != "void"]
    if len(live) > 1:
        out.state = AMBIGUOUS
        names = ", ".join(f"{c['invoice_id']} ({c.get('invoice_number') or c.get('number')})" for c in live)
        out.reason = f"ZOHO holds {len(live)} invoices of service {row['service_id']} for the term from {day}: {names}"
        return out
    if len(live) == 1:
        twin = live[0]
        out.zoho_subscription_id = str(twin.get("subscription_id") or subscription)
        if customer_zoho_id and str(twin.get("customer_id") or customer_zoho_id) != str(customer_zoho_id):
            out.reason = f"ZOHO's invoice {twin['invoice_id']} for the term belongs to customer {twin['customer_id']}"
            return out
        out.state, out.zoho_invoice_id = LINKED, str(twin["invoice_id"])
        out.zoho_total, out.zoho_status = cents(twin.get("total")), twin.get("status")
        if out.amount_differs:
            out.reason = f"ZOHO billed R {out.zoho_total}, the provider R {out.source_total}"
        return out
    if found:
        out.reason = f"ZOHO's invoice {found[0]['invoice_id']} for the term from {day} is void"
        return out
    created = min((zoho.created_on[s] for s in subscriptions if s in zoho.created_on), default=None)
    if created and day < created:
        out.state = HISTORY
        out.reason = (
            f"the term from {day} began before service {row['service_id']} reached ZOHO ({created}): ZOHO never "
            "bills it, so it is pushed as a plain invoice"
        )
        return out
    terms = sorted({t for s in subscriptions for t in zoho.terms_of.get(s, [])})
    if terms and day < terms[0] and zoho.report.invoices_from is None:  # its first invoice is among those read
        out.reason = (
            f"the term from {day} is before the first ZOHO invoice of its subscription ({terms[0]}): "
            "ZOHO never bills the terms before a subscription reached it"
        )
        return out
    if terms and day < terms[-1]:
        shown = ", ".join(terms[:3]) + ("…" if len(terms) > 3 else "")
        out.reason = f"ZOHO billed no term of subscription {subscription} starting on {day} (its invoices: {shown})"
        return out
    out.state = WAITING
    out.reason = f"ZOHO has not raised the invoice of subscription {subscription} for the term from {day} yet"
    return out
