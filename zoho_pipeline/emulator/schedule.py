"""ZOHO's scheduled work, run in time order whenever the clock moves forward.

What falls due is read from the entities themselves, so a restarted emulator continues from its state file:
- a `future` subscription goes `live` on `starts_at` and raises its first invoice;
- a `live` subscription renews on `next_billing_at`: its end-of-term change applies, the next term starts and
  that term's invoice is raised;
- a `non_renewing` subscription becomes `cancelled` on `current_term_ends_at`;
- an invoice nothing has been paid on turns `overdue` the day after its `due_date`.
Each step runs with the clock at the start of its own day (00:00 UTC), so what it creates carries that date and
what it creates can fall due in the same move (a renewal invoice turns overdue, the next renewal comes). Work of
one day runs subscriptions first, then invoices, each in id order.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq

from .api import terms
from .api.common import Ctx
from .api.invoices import settle
from .clock import add_days, midnight

# status -> (the field holding the day its next step is due, the step)
SUBSCRIPTION_STEPS = {
    "future": ("starts_at", terms.activate, "activated"),
    "live": ("next_billing_at", terms.renew, "renewed"),
    "non_renewing": ("current_term_ends_at", terms.end_term, "cancelled"),
}


def _subscription_due(sub: dict) -> tuple | None:
    step = SUBSCRIPTION_STEPS.get(sub["status"])
    day = sub.get(step[0]) if step else None
    return (day, 0, sub["subscription_id"]) if day else None


def _invoice_due(invoice: dict) -> tuple | None:
    if invoice["status"] != "sent":  # paid, part-paid, void and draft invoices never turn overdue
        return None
    return (add_days(invoice["due_date"], 1), 1, invoice["invoice_id"])


def _due(store, order: int, key: str) -> tuple | None:
    if order == 0:
        sub = store.subscriptions.get(key)
        return _subscription_due(sub) if sub else None
    invoice = store.invoices.get(key)
    return _invoice_due(invoice) if invoice else None


def advance(ctx: Ctx, to: dt.datetime) -> dict[str, int]:
    """Move ZOHO's clock to `to` (never back: ValueError), doing all work due on the way. Returns what was done."""
    store, clock = ctx.store, ctx.store.clock
    if to < clock.now():
        clock.move_to(to)  # raises: the clock only moves forward
    last_day = to.date().isoformat()
    queue = [e for e in map(_subscription_due, store.subscriptions.values()) if e and e[0] <= last_day]
    queue += [e for e in map(_invoice_due, store.invoices.values()) if e and e[0] <= last_day]
    heapq.heapify(queue)
    done: collections.Counter = collections.Counter()

    def push(event):
        if event and event[0] <= last_day:
            heapq.heappush(queue, event)

    while queue:
        event = heapq.heappop(queue)
        day, order, key = event
        if _due(store, order, key) != event:  # superseded by an earlier step on the same entity
            continue
        clock.move_to(max(clock.now(), midnight(day)))
        if order == 0:
            sub = store.subscriptions[key]
            _, step, name = SUBSCRIPTION_STEPS[sub["status"]]
            invoice = step(ctx, sub, day)
            done[name] += 1
            push(_subscription_due(sub))
            if invoice:
                done["invoices_raised"] += 1
                push(_invoice_due(invoice))
        else:
            settle(ctx, store.invoices[key])
            done["overdue"] += 1
    clock.move_to(to)
    return dict(done)
