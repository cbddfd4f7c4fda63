"""A dry run's view of the next linking pass (issue 15): how many recurring invoices it would link, how many would
still wait, and what it would cost, from the source and `zoho_recurring_links` alone.

A dry run makes no call to ZOHO (the catalog is offline too), so nothing here reads ZOHO and nothing is written.
The pass's own rules pick the rows (recurring.wanted, recurring.of_the_pass: the same months, the same recheck
interval, the same oldest term); what ZOHO would answer is estimated:
- a row whose service has a subscription: *would link* once its term has begun (ZOHO raises a term's invoice on
  its first day), else *waiting*;
- a row of a service with no subscription yet that the run would create first (`created_first`: the dry run's
  own would-create subscriptions; subscriptions sync before invoices): ZOHO never bills a term begun before that,
  so such a term is *history* (pushed as a plain invoice), a later one *waiting*; a service the run would not
  push (its customer invalid, say) leaves its rows *unmatched*. When the run's subscriptions are not known
  (`created_first` None: Dagster runs each asset's entity alone, so the invoices' step has not seen them), the
  rows of a live service without a subscription are *awaiting_subscription*: history, linked or unmatched once
  the subscriptions' step has run;
- rows the source decides alone (no service, a service cancelled before it reached ZOHO) as the pass decides them.
What the estimate cannot know: a term ZOHO did not bill (a subscription created after it began, a retired one),
two candidates for one term. The real pass's figures replace these (`zoho_invoices`' metadata).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

import sqlalchemy as sa

from zoho_pipeline.source.database import utcnow
from zoho_pipeline.source.tables import customer_invoices as inv
from zoho_pipeline.source.tables import customer_services as svc
from zoho_pipeline.sync.entities import recurring_zoho
from zoho_pipeline.sync.entities.recurring import of_the_pass, wanted
from zoho_pipeline.sync.entities.recurring_match import HISTORY, UNMATCHED, decided_by_source

LIVE_STATUSES = ("active", "suspended")  # subscriptions.LIVE_STATUSES: services that have or get a subscription


@dataclass
class LinkEstimate:
    estimate: bool = True  # a dry run's: nothing was read from ZOHO or written
    considered: int = 0  # recurring invoices not linked yet, in the run's months
    would_link: int = 0  # looked for now, their term begun: ZOHO holds their twin
    waiting: int = 0  # looked for now, their term not begun (ZOHO raises it on the day)
    not_looked_at: int = 0  # looked at less than the recheck interval ago: they keep their state
    unmatched: int = 0  # no service, or a service never pushed (listed with the reason by the real pass)
    history: int = 0  # terms before their subscription reached ZOHO: pushed as plain invoices (1 call each)
    awaiting_subscription: int = 0  # a live service without a subscription, the run's subscriptions not known
    list_pages: int = 0  # ZOHO's invoices back to the oldest term, and its subscriptions
    api_calls: int = 0  # none: a dry run reads nothing
    estimated_calls: int = 0  # list pages + the history rows' creates

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_links(
    engine,
    *,
    months=None,
    now=None,
    recheck_after: timedelta = timedelta(minutes=60),
    created_first: set[str] | None = None,
) -> LinkEstimate:
    """What the next linking pass over `months` would do, by the rules of the module docstring; reads only the
    source."""
    now = now or utcnow()
    today = now.date()
    rows = wanted(engine, months)
    out = LinkEstimate(considered=len(rows))
    decided, _ = of_the_pass(rows, now, recheck_after)
    out.not_looked_at = len(rows) - len(decided)
    terms = []  # the days of the rows ZOHO's invoices decide: the real pass reads back to the oldest
    for row in decided:
        by_source = decided_by_source(row)
        begun = row["invoice_date"] is not None and row["invoice_date"] <= today
        if by_source is None:
            out.would_link += begun
            out.waiting += not begun
        elif by_source[0] == UNMATCHED and created_first is not None and str(row["service_id"]) in created_first:
            out.history += begun  # its subscription is created by this run, after the term began
            out.waiting += not begun
        elif by_source[0] == UNMATCHED and created_first is None and _live(row):
            out.awaiting_subscription += 1
        else:
            out.history += by_source[0] == HISTORY
            out.unmatched += by_source[0] == UNMATCHED
            continue
        terms.append(row["invoice_date"])
    if terms:
        oldest = None if None in terms else min(terms).isoformat()
        out.list_pages = _pages(engine, oldest, out.would_link)
    out.estimated_calls = out.list_pages + out.history
    return out


def _live(row: dict) -> bool:
    return row["service_found"] is not None and row["service_status"] in LIVE_STATUSES


def _pages(engine, oldest: str | None, would_link: int) -> int:
    """The invoice pages back to `oldest` (ZOHO's invoices the source knows of, dated then or later, plus the twins
    about to be linked; one older page ends the read) and the subscription pages."""
    per_page = recurring_zoho.PER_PAGE
    in_zoho = inv.c.zoho_billing_invoice_id.is_not(None)
    since = in_zoho if oldest is None else sa.and_(in_zoho, inv.c.invoice_date >= oldest)
    with engine.connect() as conn:
        invoices = conn.execute(sa.select(sa.func.count()).where(since)).scalar() or 0
        subscriptions = (
            conn.execute(
                sa.select(sa.func.count()).where(
                    sa.or_(svc.c.zoho_subscription_id.is_not(None), svc.c.status.in_(LIVE_STATUSES))
                )
            ).scalar()
            or 0
        )
    return (invoices + would_link) // per_page + 1 + max(1, -(-subscriptions // per_page))
