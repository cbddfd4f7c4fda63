"""7. API calls per lifecycle transition (issue 14), and what a plan change costs under each policy.

n synced accounts per transition (SQLite source, the emulator in a thread: these are counts, not timings). Each
transition is made in the source for all n, one sync runs, and its calls are split by route into writes and reads.
Target: 1 write per transition, plus at most 1 read where ZOHO's state decides the action; the look-up only after
doubt (measured apart: the same refund with its first answer lost). A refund of an applied payment is two writes by
design (detach, then refund: design.md "a refund leaves ZOHO's ledger where the source's is"); a closure is two
transitions (its subscription cancelled, then the customer marked inactive), with one read (which subscriptions
ZOHO still runs).
Plan change: the calls, and the documents ZOHO raises at the change (Prorated Billing on), per policy.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import Decimal

from bench_common import metric, sqlite_database

from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.emulator import start_emulator
from zoho_pipeline_tests.support.lifecycle import FAST, NO_RETRY, World

SECTION = "7 lifecycle"
WRITES = ("POST", "PUT", "DELETE")


def _split(calls: Counter, n: int) -> tuple[float, float]:
    writes = sum(v for k, v in calls.items() if k.split()[0] in WRITES)
    reads = sum(v for k, v in calls.items() if k.split()[0] == "GET")
    return writes / n, reads / n


def _accounts(world, n) -> list[tuple]:
    e = world.engine
    package = R.add_package(e)
    made = []
    for _ in range(n):
        customer = R.add_customer(e)
        invoice = R.add_invoice(e, customer)
        made.append((customer, R.add_service(e, customer, package), invoice, R.add_payment(e, customer, invoice)))
    world.sync()
    return made


def _transitions(world, n) -> dict[str, tuple[float, float]]:
    out = {}

    def measure(name, changes, settings=None):
        for table, row_id, values in changes:
            world.change(table, row_id, **values)
        _, calls = world.sync(settings)
        out[name] = _split(calls, n)

    a = _accounts(world, n)
    measure("refund (applied payment)", [(T.payment_transactions, p, {"status": "refunded"}) for *_, p in a])
    b = _accounts(world, n)
    measure("bounce (payment deleted)", [(T.payment_transactions, p, {"status": "failed"}) for *_, p in b])
    c = _accounts(world, n)
    measure("service cancelled", [(T.customer_services, s, {"status": "cancelled"}) for _, s, _, _ in c])
    measure(
        "service reactivated (cancelled: new)", [(T.customer_services, s, {"status": "active"}) for _, s, _, _ in c]
    )
    d = _accounts(world, n)
    at_end = dataclasses.replace(FAST, cancel_at="end_of_term")
    measure(
        "service cancelled at end of term",
        [(T.customer_services, s, {"status": "cancelled"}) for _, s, _, _ in d],
        at_end,
    )
    measure(
        "service reactivated (non_renewing)",
        [(T.customer_services, s, {"status": "active"}) for _, s, _, _ in d],
        at_end,
    )
    measure("service suspended", [(T.customer_services, s, {"status": "suspended"}) for _, s, _, _ in d])
    measure(
        "price change (end_of_term)",
        [(T.customer_services, s, {"monthly_price": Decimal("899.00")}) for _, s, _, _ in d],
    )
    e = _accounts(world, n)
    measure("customer closed (1 subscription)", [(T.customers, cu, {"status": "closed"}) for cu, *_ in e])
    # markasactive, and its live service's subscription back (the closure cancelled it: a new one, read first)
    measure("customer reopened (1 live service)", [(T.customers, cu, {"status": "active"}) for cu, *_ in e])
    f = _accounts(world, n)
    measure("customer edited", [(T.customers, cu, {"phone": "+27820000000"}) for cu, *_ in f])
    # after doubt: the refund's answer is lost, the next attempt reads the payment and sends nothing
    g = _accounts(world, n)
    for *_, p in g:
        world.change(T.payment_transactions, p, status="refunded")
    world.emulator.set_faults(drop_rate=1.0)
    world.sync(NO_RETRY)  # the detach acts, its answer is lost
    world.emulator.set_faults(drop_rate=0.0)
    measure("refund after a lost answer", [(T.payment_transactions, p, {"status": "refunded"}) for *_, p in g])
    return out


def _plan_change_cost(n, policy) -> tuple[float, float]:
    """(calls per change, ZOHO documents raised per change) for a price rise under `policy`, proration on."""
    with sqlite_database() as url:
        handle = start_emulator(prorate=True)
        world = World(url, handle, dataclasses.replace(FAST, plan_change_at=policy))
        try:
            made = _accounts(world, n)
            documents = len(handle.store.invoices) + len(handle.store.creditnotes)
            for _, service, _, _ in made:
                world.change(T.customer_services, service, monthly_price=Decimal("999.00"))
            _, calls = world.sync()
            raised = len(handle.store.invoices) + len(handle.store.creditnotes) - documents
            return sum(calls.values()) / n, raised / n
        finally:
            world.close()
            handle.stop()


def run(args) -> tuple[list[dict], dict]:
    n = 2 if args.quick else 10
    raw: dict = {"accounts_per_transition": n}
    with sqlite_database() as url:
        handle = start_emulator()
        world = World(url, handle)
        try:
            per = _transitions(world, n)
        finally:
            world.close()
            handle.stop()
    raw["per_transition"] = {k: {"writes": w, "reads": r} for k, (w, r) in per.items()}
    two_writes = ("refund (applied payment)", "customer closed (1 subscription)", "customer reopened (1 live service)")
    rows = []
    for name, (writes, reads) in per.items():
        target = 0 if name == "service suspended" else (2 if name in two_writes else 1)
        rows.append(metric(SECTION, f"writes per {name}", writes, "calls", target, "<="))
        rows.append(
            metric(
                SECTION,
                f"reads per {name}",
                reads,
                "calls",
                1,
                "<=",
                note="a read only where ZOHO's state decides, or after doubt",
            )
        )
    for policy in ("end_of_term", "immediate"):
        calls, raised = _plan_change_cost(n, policy)
        raw[f"plan_change_{policy}"] = {"calls": calls, "documents_raised": raised}
        rows.append(metric(SECTION, f"calls per plan change ({policy})", calls, "calls", 1, "<="))
        rows.append(
            metric(
                SECTION,
                f"ZOHO documents per plan change ({policy}, proration on)",
                raised,
                "docs",
                0 if policy == "end_of_term" else None,
                "<=" if policy == "end_of_term" else None,
                note="immediate: ZOHO prorates too, beside the provider's pro_rata invoice",
            )
        )
    return rows, raw
