"""A payment's later life in ZOHO: refunded → refunded in ZOHO; completed → failed (a bounced debit order, a
chargeback) → the ZOHO payment deleted, so the invoice it paid is owed again.

Money moves here, so each action happens once. The engine commits the claim before the call and keeps the row in
doubt when an attempt may have acted (a lost answer, a 5xx after send, a run that died); an attempt in doubt reads
the payment first (`GET /payments/{id}`, documented: `amount_refunded`, the applied `invoices`; 404 once deleted)
and sends only what ZOHO does not show yet. Without doubt there is no read: one call per transition, two for a
refund of an applied payment.

The refund route (design.md: a refund leaves ZOHO's ledger where the source's is): the payment is detached from
its invoice first (`PUT /payments/{id}` with no `invoices`: a state setter, safe to repeat), so that invoice is
owed again unless other payments cover it, then the freed amount is refunded (`POST /payments/{id}/refunds`: ZOHO
raises a credit note and refunds it). ZOHO documents this route for `autotransaction` payments; whether it takes
other modes is open (lifecycle reference, open point 3). The whole payment is refunded: the source has no
partial-refund column (docs/runbook.md).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import and_, or_

from zoho_pipeline.sync.entities.base import InvalidRow, money, public
from zoho_pipeline.zoho.errors import ZohoError

log = logging.getLogger("zoho_pipeline.sync.lifecycle")

REFUND, DELETE = "refund", "delete"
ACTIONS = {"refunded": REFUND, "failed": DELETE}  # source status → the ZOHO action it means after the payment synced
WHAT = {REFUND: "refund", DELETE: "delete (a bounce)"}
# the reference of our refunds (and of the credit note ZOHO raises for each): never taken for an invoice of ours
REFUND_REFERENCE = "refund-of-"


def eligible(table):
    """Completed payments; and refunded or failed ones the pipeline has met (pushed, or tried: a create in doubt
    may have reached ZOHO and must be found and acted on)."""
    c = table.c
    return or_(
        c.status == "completed",
        c.zoho_payment_id.is_not(None),
        and_(c.status.in_(tuple(ACTIONS)), c.zoho_sync_status.is_not(None)),
    )


def action_of(row) -> str | None:
    return ACTIONS.get(row["status"])


def refuse_create(payload, row) -> None:
    """A refund or bounce of a payment ZOHO never received: nothing to act on, and nothing is created."""
    if payload.get("_action"):
        raise InvalidRow(
            "status",
            f"the payment is {row['status']} but never reached ZOHO (no zoho_payment_id, not found by its "
            f"reference): there is no ZOHO payment to {WHAT[payload['_action']]}; ZOHO's ledger already leaves it out",
        )


def apply(client, zoho_id: str, payload: dict, row, ctx) -> None:
    """Run the payment's lifecycle action on ZOHO payment `zoho_id`."""
    if payload["_action"] == REFUND:
        _refund(client, zoho_id, payload, row, ctx)
    else:
        _delete(client, zoho_id, row, ctx)


def _read(client, zoho_id: str) -> dict | None:
    """The ZOHO payment, or None when ZOHO no longer has it."""
    try:
        return client.get(f"/payments/{zoho_id}")["payment"]
    except ZohoError as exc:
        if exc.http_status == 404 or exc.code == 1002:
            return None
        raise


def _refund(client, zoho_id, payload, row, ctx) -> None:
    amount = money(payload["amount"], "amount")
    refunded, applied = Decimal("0.00"), row["invoice_id"] is not None
    if ctx.in_doubt or ctx.adopted:
        current = _read(client, zoho_id)
        if current is None:
            raise InvalidRow(
                "status",
                f"ZOHO payment {zoho_id} no longer exists (deleted in ZOHO?): there is nothing to refund; "
                "check the customer's ledger in ZOHO",
            )
        refunded = money(current.get("amount_refunded") or 0, "amount_refunded")
        applied = bool(current.get("invoices"))
        if refunded >= amount:
            log.info("refund found in ZOHO entity=payments id=%s zoho_id=%s: not sent again", row["id"], zoho_id)
            return
    if applied:  # the invoice is owed again, as in the source
        client.put(f"/payments/{zoho_id}", json={**public(payload), "invoices": []})
    client.post(
        f"/payments/{zoho_id}/refunds",
        json={
            "amount": float(amount - refunded),
            "description": f"Refund of payment {row['transaction_id']} (refunded in the source)",
            "reference_number": REFUND_REFERENCE + row["transaction_id"],
        },
    )
    log.info("refunded entity=payments id=%s zoho_id=%s amount=%s", row["id"], zoho_id, amount - refunded)


def _delete(client, zoho_id, row, ctx) -> None:
    if (ctx.in_doubt or ctx.adopted) and _read(client, zoho_id) is None:
        log.info("payment already deleted in ZOHO entity=payments id=%s zoho_id=%s", row["id"], zoho_id)
        return
    client.delete(f"/payments/{zoho_id}")
    log.info("deleted entity=payments id=%s zoho_id=%s (the payment failed after it completed)", row["id"], zoho_id)


def calls(payload: dict, creating: bool) -> int:
    """The dry run's estimate: a refund of an applied payment is a detach and a refund; a lifecycle action on a
    payment ZOHO never had sends nothing."""
    action = payload.get("_action")
    if action is None:
        return 1
    if creating:
        return 0
    return 2 if action == REFUND and payload.get("invoices") else 1


def gone(row) -> bool:
    """Reconciliation: a bounced payment's ZOHO payment is meant to be deleted (its absence is right)."""
    return row.get("status") == "failed"


def compare_status(row, remote) -> list[tuple]:
    """Reconciliation: a bounced payment must be gone; a refunded one refunded in full; a completed one not at all
    (compared where ZOHO's answer carries `amount_refunded`)."""
    status = row.get("status")
    if status == "failed":
        return [("status", status, "present", "bounced in the source: the ZOHO payment should have been deleted")]
    if "amount_refunded" not in remote:
        return []
    refunded = money(remote.get("amount_refunded") or 0, "amount_refunded")
    want = money(row.get("amount") or 0, "amount") if status == "refunded" else Decimal("0.00")
    if refunded == want:
        return []
    return [("refunded", str(want), str(refunded), f"{status} in the source")]


def raised_for_a_refund(item) -> bool:
    """Reconciliation of invoices: the credit note ZOHO raised to carry one of our refunds is not a source row's."""
    return str(item.get("reference_number") or "").startswith(REFUND_REFERENCE)
