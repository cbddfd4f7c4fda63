"""The provider's recurring invoices linked to the invoices ZOHO raised from the subscriptions (issue 15).

The provider keeps its own copy of each monthly bill as a `recurring` invoice; ZOHO raises its own from the
subscription, so a recurring invoice is never pushed: it is *linked*. Which ZOHO invoice is its twin, or why it
has none, is recurring_match.py's rule; ZOHO's invoices are read by recurring_zoho.py. This module is the linking
pass: the rows not linked yet, ZOHO read only when a row is worth it, each decision written, the payments that
waited for a link woken. Linking only reads ZOHO: a fault just leaves the rows for the next pass.

A `history` invoice (a term ZOHO never bills) is pushed by the invoices module as a plain invoice (product
"Monthly service before ZOHO billing") and its payments are applied to it like any manual invoice's. Every month
is then in ZOHO once; `zoho_recurring_links.state` tells finance which months are ZOHO's own (linked) and which
were pushed (history).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.source.database import aware, utcnow
from zoho_pipeline.source.tables import customer_invoices as inv
from zoho_pipeline.source.tables import customer_services as svc
from zoho_pipeline.source.tables import payment_transactions as pay
from zoho_pipeline.source.tables import zoho_recurring_links as links
from zoho_pipeline.sync.entities.base import WaitingForLink
from zoho_pipeline.sync.entities.recurring_match import (
    AMBIGUOUS,
    DECIDED,
    HISTORY,
    LINKED,
    UNMATCHED,
    WAITING,
    LinkRow,
    decide,
    subscription_of_row,
)
from zoho_pipeline.sync.entities.recurring_zoho import Zoho

WAITING_CODE = "waiting"  # claims.WAITING_CODE (entities sit below the engine: the value, not the import)

NOT_LINKED_STATUSES = ("draft",)  # a draft was never a bill; a cancelled one is linked so the ledger shows it


@dataclass
class LinkReport:
    """One linking pass: what it linked, what waits for ZOHO, what cannot be linked and why."""

    considered: int = 0
    linked: int = 0  # linked by this pass
    waiting: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    history: int = 0  # terms before their subscription reached ZOHO: pushed as plain invoices
    amount_differences: int = 0
    api_calls: int = 0
    list_pages: int = 0
    detail_reads: int = 0
    invoices_from: str | None = None  # ZOHO's invoices were read back to this term (None: every page was read)
    order_unconfirmed: bool = False  # ZOHO's answers did not show the newest-first order: every page was read
    error: str | None = None  # ZOHO could not be read: nothing was decided, the rows wait for the next pass
    rows: list[LinkRow] = field(default_factory=list)  # every row not linked, and linked ones whose amount differs

    def as_dict(self) -> dict:
        out = asdict(self)
        out["rows"] = [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(r).items()} for r in self.rows]
        return out


# --- the source side -------------------------------------------------------------------------------------------


def wanted(engine, months: tuple[date, date] | None) -> list[dict]:
    """Recurring invoices not linked yet (never looked at, or waiting, unmatched, ambiguous), in `months`."""
    query = (
        sa.select(
            inv.c.id,
            inv.c.invoice_number,
            inv.c.invoice_date,
            inv.c.total_amount,
            inv.c.service_id,
            inv.c.customer_id,
            svc.c.id.label("service_found"),
            svc.c.status.label("service_status"),
            svc.c.zoho_subscription_id,
            links.c.state.label("link_state"),
            links.c.checked_at.label("link_checked_at"),
            links.c.zoho_subscription_id.label("link_subscription_id"),
        )
        .select_from(inv.outerjoin(svc, svc.c.id == inv.c.service_id).outerjoin(links, links.c.invoice_id == inv.c.id))
        .where(
            inv.c.invoice_type == "recurring",
            inv.c.status.not_in(NOT_LINKED_STATUSES),
            sa.or_(links.c.state.is_(None), links.c.state.not_in(DECIDED)),
        )
        .order_by(inv.c.id)
    )
    if months:  # the month's invoices, and those the month's payments not yet in ZOHO pay (billed earlier)
        start, end = (datetime.combine(m, time.min, tzinfo=UTC) for m in months)
        paid_now = sa.select(pay.c.invoice_id).where(
            pay.c.completed_at >= start,
            pay.c.completed_at < end,
            pay.c.status == "completed",
            pay.c.invoice_id.is_not(None),
            sa.or_(pay.c.zoho_sync_status.is_(None), pay.c.zoho_sync_status != "synced"),
        )
        query = query.where(
            sa.or_(sa.and_(inv.c.invoice_date >= months[0], inv.c.invoice_date < months[1]), inv.c.id.in_(paid_now))
        )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def months_to_link(engine) -> set[date]:
    """First days of the months holding recurring invoices never looked for, or waiting for ZOHO to raise their
    twin: the months an incremental run links (monitor.changes adds them to the run's partition range)."""
    query = (
        sa.select(inv.c.invoice_date)
        .select_from(inv.outerjoin(links, links.c.invoice_id == inv.c.id))
        .where(
            inv.c.invoice_type == "recurring",
            inv.c.status.not_in(NOT_LINKED_STATUSES),
            sa.or_(links.c.state.is_(None), links.c.state == WAITING),
        )
        .distinct()
    )
    with engine.connect() as conn:
        return {date(d.year, d.month, 1) for d in conn.execute(query).scalars() if d is not None}


# --- the pass --------------------------------------------------------------------------------------------------


def _fresh(row: dict, now, recheck_after: timedelta) -> bool:
    """Worth reading ZOHO for: never looked at, its service has a subscription since, or last looked at long ago."""
    if row["link_state"] is None or (row["zoho_subscription_id"] and not row["link_subscription_id"]):
        return True
    checked = aware(row["link_checked_at"])
    return checked is None or now - checked >= recheck_after


def link_recurring(
    engine,
    client,
    *,
    months: tuple[date, date] | None = None,
    now=None,
    recheck_after: timedelta = timedelta(minutes=60),
) -> LinkReport:
    """Link the not-yet-linked recurring invoices in `months` (all when None); write links and wake payments.
    ZOHO is read only when a row is new, or was last looked at `recheck_after` ago (ZOHO raises a subscription's
    invoices once a day): a row waiting for ZOHO does not cost list pages on every run."""
    report = LinkReport()
    now = now or utcnow()
    rows = wanted(engine, months)
    report.considered = len(rows)
    rows, oldest = of_the_pass(rows, now, recheck_after)
    if not rows:
        return report
    calls_before = _calls(client)
    zoho = Zoho(client, report)
    customers = _customer_zoho_ids(engine, {str(r["customer_id"]) for r in rows})
    try:
        if oldest != NO_TERM:
            zoho.read(oldest)
        decided = [decide(r, zoho, customers.get(str(r["customer_id"]))) for r in rows]
    except Exception as exc:  # ZOHO could not be read: decide nothing, the rows are looked at again next pass
        report.error = f"{type(exc).__name__}: {exc}"
        report.api_calls = _calls(client) - calls_before
        return report
    _write(engine, decided, now)
    for d in decided:
        report.linked += d.state == LINKED
        report.waiting += d.state == WAITING
        report.unmatched += d.state == UNMATCHED
        report.ambiguous += d.state == AMBIGUOUS
        report.history += d.state == HISTORY
        report.amount_differences += d.amount_differs
        if d.state not in DECIDED or d.amount_differs:
            report.rows.append(d)
    report.api_calls = _calls(client) - calls_before
    return report


NO_TERM = "no term"  # no fresh row needs ZOHO: only what the source decides alone is decided


def of_the_pass(rows: list[dict], now, recheck_after: timedelta) -> tuple[list[dict], str | None]:
    """(the rows a pass decides, the oldest term it reads ZOHO's invoices back to: None every page, NO_TERM none).
    Nothing when no row is fresh; rows older than the oldest fresh one, looked at a moment ago, wait for their
    own recheck."""
    fresh = [r for r in rows if _fresh(r, now, recheck_after)]
    if not fresh:
        return [], NO_TERM
    oldest = _oldest_term(fresh)
    return [r for r in rows if _within(r, oldest)], oldest


def _oldest_term(fresh: list[dict]) -> str | None:
    """The oldest term a fresh row needs ZOHO's invoices for (ISO date); None: every page (a row with no date)."""
    days = [r["invoice_date"] for r in fresh if subscription_of_row(r)[0]]
    if not days:
        return NO_TERM
    return None if None in days else min(days).isoformat()


def _within(row: dict, oldest: str | None) -> bool:
    """The row can be decided from the pages read back to `oldest`."""
    if not subscription_of_row(row)[0] or oldest is None:
        return True
    return oldest != NO_TERM and row["invoice_date"] is not None and row["invoice_date"].isoformat() >= oldest


def _calls(client) -> int:
    return getattr(getattr(client, "stats", None), "api_calls", 0)


def _customer_zoho_ids(engine, ids: set[str]) -> dict[str, str]:
    from zoho_pipeline.source.tables import customers

    out: dict[str, str] = {}
    id_list = sorted(ids)
    with engine.connect() as conn:
        for start in range(0, len(id_list), 500):
            q = sa.select(customers.c.id, customers.c.zoho_billing_customer_id).where(
                customers.c.id.in_(id_list[start : start + 500])
            )
            out.update({str(i): z for i, z in conn.execute(q) if z})
    return out


def _insert_new(conn):
    """An insert that leaves a row another run wrote meanwhile alone (its first_seen_at stands)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(links).on_conflict_do_nothing(index_elements=["invoice_id"])


def _write(engine, decided: list[LinkRow], now) -> None:
    """Each decision in `zoho_recurring_links` (first_seen_at kept), the link on the provider's row, and the
    payments of newly linked (or history) invoices made due (a waiting one at once; one pushed as credit is re-mapped, and
    applied to the invoice when its payload now differs)."""
    with engine.begin() as conn:
        insert = _insert_new(conn)
        conn.execute(
            insert, [dict(invoice_id=d.invoice_id, state=d.state, first_seen_at=now, checked_at=now) for d in decided]
        )
        for d in decided:
            values = dict(
                state=d.state,
                reason=d.reason or None,
                zoho_invoice_id=d.zoho_invoice_id,
                zoho_subscription_id=d.zoho_subscription_id,
                zoho_total=d.zoho_total,
                zoho_status=(d.zoho_status or None) and str(d.zoho_status)[:16],
                checked_at=now,
                linked_at=now if d.state == LINKED else None,
            )
            conn.execute(links.update().where(links.c.invoice_id == d.invoice_id).values(**values))
        linked = [d for d in decided if d.state == LINKED]
        for d in linked:
            conn.execute(
                inv.update()
                .where(inv.c.id == d.invoice_id)
                .values(
                    zoho_billing_invoice_id=d.zoho_invoice_id,
                    zoho_sync_status="synced",
                    zoho_last_synced_at=now,
                    zoho_last_sync_error=d.reason or None,
                )
            )
        for d in decided:
            if d.state not in DECIDED:  # a history row is the engine's from now on: its columns are the engine's
                conn.execute(inv.update().where(inv.c.id == d.invoice_id).values(zoho_last_sync_error=d.reason))
        decided_ids = [d.invoice_id for d in decided if d.state in DECIDED]  # linked, or pushed as a plain one
        for start in range(0, len(decided_ids), 500):
            chunk = pay.c.invoice_id.in_(decided_ids[start : start + 500])
            conn.execute(pay.update().where(chunk, pay.c.zoho_sync_status == "synced").values(zoho_source_version=None))
            conn.execute(
                pay.update()
                .where(chunk, pay.c.zoho_sync_status == "retrying", pay.c.zoho_error_code == WAITING_CODE)
                .values(zoho_next_attempt_at=now)
            )


# --- what a payment on a recurring invoice is applied to -------------------------------------------------------


def payment_target(row, wait_h: float, now=None) -> tuple[str, Decimal] | None:
    """(ZOHO invoice id, ZOHO's total) for a payment on a linked recurring invoice; None once the link has been
    looked for `wait_h` hours without being found (the payment goes as customer credit, and the ledger lists it);
    WaitingForLink before that."""
    if row.get("link_state") == LINKED and row.get("link_zoho_invoice_id"):
        return str(row["link_zoho_invoice_id"]), Decimal(str(row["link_zoho_total"]))
    now, first_seen = now or utcnow(), aware(row.get("link_first_seen_at"))
    if first_seen is None:  # the invoices' linking pass has not seen it: it wakes the payment when it links
        raise WaitingForLink(
            f"recurring invoice {row.get('invoice_number')} has not been looked for in ZOHO yet "
            "(the zoho_invoices asset links it)",
            now + timedelta(hours=min(1.0, wait_h)),
        )
    deadline = first_seen + timedelta(hours=wait_h)
    if now >= deadline:
        return None
    raise WaitingForLink(
        f"recurring invoice {row.get('invoice_number')} is not linked yet ({row.get('link_state')}: "
        f"{row.get('link_reason') or 'no reason'}); pushed as credit after {wait_h:g} h",
        deadline,
    )
