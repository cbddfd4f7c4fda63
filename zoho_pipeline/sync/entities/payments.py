"""Completed payments → ZOHO payments, applied to their invoice when that invoice is in ZOHO; refunded or bounced
after that → payment_lifecycle (a refund, a deletion).

A payment with no invoice is recorded unapplied: customer credit. A payment on a recurring invoice is applied to
the invoice ZOHO raised for that term (entities.recurring links them; for ZOHO's total); while the link is not
known it waits (due, with the reason), and after `ZOHO_RECURRING_LINK_WAIT_H` it goes as credit, listed by the
ledger check. A payment is applied to its payer's own invoice only: one on another customer's invoice fails alone,
naming `invoice_id`. Never more than the invoice's balance is applied: the payer's earlier payments on the same
invoice (by completion time) that reached ZOHO are deducted first, so the split does not depend on the order in
which rows happen to sync; while an earlier one is still on its way (pending, syncing, retrying) the payment waits
for it, and one that never reaches ZOHO (refused, dead-lettered) is not deducted.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select

from zoho_pipeline.source.database import utcnow
from zoho_pipeline.source.tables import customer_invoices as invoices
from zoho_pipeline.source.tables import payment_transactions as t
from zoho_pipeline.source.tables import zoho_recurring_links as links
from zoho_pipeline.sync.entities import payment_lifecycle as lifecycle
from zoho_pipeline.sync.entities import recurring
from zoho_pipeline.sync.entities.base import (
    Collection,
    EntitySpec,
    InvalidRow,
    ParentNotReady,
    Reconciliation,
    drift_fields,
    find_by_reference,
    money,
    money_differs,
    public,
    sql_text,
)
from zoho_pipeline.sync.entities.invoices import MANUAL_TYPES
from zoho_pipeline.sync.entities.recurring_match import HISTORY

# provider method → ZOHO payment_mode (docs/architecture.md keeps the same table)
PAYMENT_MODES = {
    "netcash": "autotransaction",  # NetCash gateway collections
    "card": "creditcard",
    "eft": "banktransfer",
    "instant_eft": "banktransfer",
    "debit_order": "bankremittance",
    "cash": "cash",
}
LOCAL_TIME = ZoneInfo("Africa/Johannesburg")


def select_rows():
    prior = t.alias("prior")
    earlier_own = and_(
        prior.c.invoice_id == t.c.invoice_id,
        prior.c.customer_id == t.c.customer_id,  # another customer's payment never pays this one's invoice
        prior.c.status == "completed",
        prior.c.id != t.c.id,
        or_(
            prior.c.completed_at < t.c.completed_at, and_(prior.c.completed_at == t.c.completed_at, prior.c.id < t.c.id)
        ),
    )
    paid_before = (
        select(func.coalesce(func.sum(prior.c.amount), 0))
        .where(earlier_own, prior.c.zoho_payment_id.is_not(None))
        .scalar_subquery()
    )
    # still on its way to ZOHO: neither in ZOHO nor failed for good (a failed row retries only when it changes)
    unsettled = and_(
        earlier_own, prior.c.zoho_payment_id.is_(None), func.coalesce(prior.c.zoho_sync_status, "pending") != "failed"
    )
    # refunded or bounced, its ZOHO payment not yet detached or deleted: until then it holds the invoice's balance
    still_held = and_(
        prior.c.invoice_id == t.c.invoice_id,
        prior.c.customer_id == t.c.customer_id,
        prior.c.id != t.c.id,
        prior.c.status.in_(tuple(lifecycle.ACTIONS)),
        prior.c.zoho_payment_id.is_not(None),
        or_(
            prior.c.zoho_sync_status.in_(("pending", "syncing", "retrying")),
            prior.c.zoho_source_version.is_(None),
            prior.c.updated_at > prior.c.zoho_source_version,
        ),
    )
    waiting_for = select(func.min(prior.c.transaction_id)).where(or_(unsettled, still_held)).scalar_subquery()
    return select(
        t,
        invoices.c.id.label("invoice_found"),
        invoices.c.customer_id.label("invoice_customer_id"),
        invoices.c.invoice_type.label("invoice_type"),
        invoices.c.invoice_number.label("invoice_number"),
        invoices.c.total_amount.label("invoice_total"),
        paid_before.label("paid_before"),
        waiting_for.label("waiting_for"),
        links.c.state.label("link_state"),
        links.c.zoho_invoice_id.label("link_zoho_invoice_id"),
        links.c.zoho_total.label("link_zoho_total"),
        links.c.first_seen_at.label("link_first_seen_at"),
        links.c.reason.label("link_reason"),
    ).select_from(
        t.outerjoin(invoices, invoices.c.id == t.c.invoice_id).outerjoin(links, links.c.invoice_id == t.c.invoice_id)
    )


def label(row) -> str:
    return row["transaction_id"]


def _applies_to_invoice(row) -> bool:
    """A pushed manual invoice of the payer (or a recurring one pushed as such: `history`); not a credit
    adjustment (a credit note), nor a recurring one ZOHO raises itself (applied to its linked twin)."""
    history = _is_recurring(row) and row.get("link_state") == HISTORY
    pushed = row.get("invoice_type") in MANUAL_TYPES or history
    return row["invoice_id"] is not None and pushed and (row.get("invoice_total") or 0) > 0 and _own_invoice(row)


def _is_recurring(row) -> bool:
    return row["invoice_id"] is not None and row.get("invoice_type") == "recurring"


def _on_zohos_own_invoice(row) -> bool:
    """On a recurring invoice of the payer's that ZOHO raises itself (not one pushed as `history`)."""
    return _is_recurring(row) and row.get("link_state") != HISTORY and _own_invoice(row)


def _own_invoice(row) -> bool:
    found = row.get("invoice_customer_id")
    return found is None or str(found) == str(row["customer_id"])


def parents(row) -> list[tuple[str, str]]:
    needed = [("customers", str(row["customer_id"]))]
    if _applies_to_invoice(row):
        needed.append(("invoices", str(row["invoice_id"])))
    return needed


def build(row, ctx) -> dict:
    amount = money(row["amount"], "amount")
    if amount <= 0:
        raise InvalidRow("amount", f"must be positive (is R {amount})")
    if (row["currency"] or "ZAR") != "ZAR":
        raise InvalidRow("currency", f"is {row['currency']}; the ZOHO organization books in ZAR")
    mode = PAYMENT_MODES.get(row["payment_method"])
    if mode is None:
        raise InvalidRow("payment_method", f"{row['payment_method']!r} has no ZOHO payment mode")
    if row["completed_at"] is None and not lifecycle.action_of(row):
        # a bounce may clear it (completed → failed): the deletion needs no date, so only a payment to push needs one
        raise InvalidRow("completed_at", f"is empty on a {row['status']} payment")
    if row["invoice_id"] is not None and row.get("invoice_found") is None:
        raise InvalidRow("invoice_id", f"invoice {row['invoice_id']} does not exist")
    if row["invoice_id"] is not None and not _own_invoice(row):
        raise InvalidRow(
            "invoice_id",
            f"invoice {row.get('invoice_number') or row['invoice_id']} belongs to "
            f"another customer (customer {row['invoice_customer_id']}), not to the payer",
        )
    applies = _applies_to_invoice(row) or _on_zohos_own_invoice(row)
    if applies and row.get("waiting_for") and not getattr(ctx, "dry_run", False):
        # its share of the balance depends on what the earlier payment applies: try again just after it
        raise ParentNotReady(
            f"waits for the payer's earlier payment {row['waiting_for']} on the same invoice", utcnow()
        )
    payload = {
        "customer_id": ctx.parent_zoho_id("customers", row["customer_id"]),
        "payment_mode": mode,
        "amount": float(amount),
        "date": _local_date(row["completed_at"] or row["created_at"]),
        "reference_number": row["transaction_id"],
        "description": f"{row['payment_method']} payment {row['transaction_id']}"
        + (f" for {row['invoice_number']}" if row.get("invoice_number") else ""),
    }
    if _applies_to_invoice(row):
        target = ctx.parent_zoho_id("invoices", row["invoice_id"]), money(row["invoice_total"], "invoice total")
    elif _on_zohos_own_invoice(row):
        target = recurring.payment_target(row, ctx.settings.recurring_link_wait_h)
        if target is None:
            payload["description"] += " (not linked to ZOHO's invoice in time: customer credit)"
    else:
        target = None
    if target is not None:
        zoho_invoice_id, total = target
        # what the payer's earlier payments applied in ZOHO: never below nothing (a negative sum is not a payment)
        paid = max(money(row["paid_before"] or 0, "paid before"), money(0, "paid before"))
        balance = money(total, "invoice total") - paid
        applied = min(amount, max(balance, money(0, "amount")))
        if applied > 0:
            payload["invoices"] = [{"invoice_id": zoho_invoice_id, "amount_applied": float(applied)}]
    if lifecycle.action_of(row):  # only then: a completed payment's hash stays what it was before lifecycles
        payload["_action"] = lifecycle.action_of(row)
    return payload


def _local_date(moment) -> str:
    if getattr(moment, "tzinfo", None) is not None:
        moment = moment.astimezone(LOCAL_TIME)
    return moment.date().isoformat()


def create(client, payload, row, ctx) -> str:
    lifecycle.refuse_create(payload, row)
    return str(client.post("/payments", json=payload)["payment"]["payment_id"])


def update(client, zoho_id, payload, row, ctx) -> None:
    if payload.get("_action"):
        lifecycle.apply(client, zoho_id, payload, row, ctx)
    else:
        client.put(f"/payments/{zoho_id}", json=public(payload))


def lookup(client, payload, row, ctx) -> str | None:
    return find_by_reference(
        client,
        "/payments",
        "payments",
        "payment_id",
        "reference_number",
        payload["reference_number"],
        params={"customer_id": payload["customer_id"]},
    )


def compare(row, remote) -> list[tuple]:
    out = money_differs("amount", row.get("amount"), remote.get("amount"), "incl. VAT")
    want = row.get("invoice_zoho_id")
    applied = [str(a.get("invoice_id")) for a in remote.get("invoices") or []]
    out += lifecycle.compare_status(row, remote)
    if want and str(want) not in applied and row.get("status") == "completed":
        out.append(("invoice", want, ", ".join(applied) or "(none)", "not applied to the row's invoice"))
    return out


RECONCILE = Reconciliation(
    collections=(Collection("/payments", "payments", "payment_id", needs=("amount", "invoices")),),
    columns=lambda: (
        [
            t.c.amount,
            t.c.status,
            t.c.invoice_id,
            invoices.c.zoho_billing_invoice_id.label("invoice_zoho_id"),
            t.c.transaction_id.label("ref"),
        ],
        t.outerjoin(invoices, invoices.c.id == t.c.invoice_id),
    ),
    gone=lifecycle.gone,
    reference=lambda item: item.get("reference_number") or None,
    compare=compare,
    zoho_label=lambda item: f"payment {item.get('amount')} (ref {item.get('reference_number') or '-'})",
)

# what ZOHO's GET /payments/{id} shows of our payload (the drift check)
DRIFT = drift_fields(
    "customer_id",
    "payment_mode",
    "date",
    "reference_number",
    "description",
    "invoices[].invoice_id",
    money=("amount", "invoices[].amount_applied"),
)


SPEC = EntitySpec(
    name="payments",
    table=t,
    zoho_id_column="zoho_payment_id",
    select=select_rows,
    eligible=lifecycle.eligible,
    label=label,
    label_sql=lambda: sql_text(t.c.transaction_id),
    parents=parents,
    build=build,
    create=create,
    update=update,
    lookup=lookup,
    reconcile=RECONCILE,
    drift=DRIFT,
    aliases=("payment", "payment_transactions", "transactions"),
    natural_keys=("transaction_id", "zoho_payment_id"),
    month_column="completed_at",
    month_fallback="created_at",  # a payment not (or no longer) completed: a bounce clears completed_at
    calls=lifecycle.calls,
)
