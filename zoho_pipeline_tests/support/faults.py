"""Helpers for the end-to-end fault suite (sync/fault_suite/): demo databases on Postgres, emulators and clients,
sync-until-settled, and the verdict that compares the source with what ZOHO (the emulator) holds.

The verdict, per source row (every entity):
- synced: has a ZOHO id, the entity is in ZOHO once, and its key fields match the row;
- failed with a reason: `failed`, not dead-lettered, a reason recorded, and the reason is the row's own data
  (`invalid`) or a parent that itself failed for its data (`parent_failed`);
- anything else is *lost* (eligible, not in ZOHO, and not failed for a reason of its own: dead-lettered,
  still retrying, pending, skipped, or in ZOHO with other key fields) or *stuck* (`syncing`).
Per ZOHO entity: a reference (provider customer id, reference_id, reference_number, plan code) seen twice is a
*duplicate*; an entity whose id no source row records is an *orphan*.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline.source.tables import zoho_sync_logs
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.customers import PROVIDER_ID_FIELD
from zoho_pipeline.sync.settings import ENTITY_ORDER, SyncSettings
from zoho_pipeline_tests.support import emulator as emu
from zoho_pipeline_tests.support.databases import admin_connection, create_database, drop_database  # noqa: F401
from zoho_pipeline_tests.support.emulator import free_port, start_emulator  # noqa: F401 - the suite's names

SYNCING, SYNCED, FAILED, RETRYING = "syncing", "synced", "failed", "retrying"
CENT = Decimal("0.01")


# --- databases ------------------------------------------------------------------------------------------------


def make_demo_template(admin_url: str, customers: int, seed: int) -> str:
    """A database holding the seeded demo (business tables + migrations); cloned per scenario."""
    name, url = create_database(admin_url, "zp_fault_tpl")
    create_demo(url, customers=customers, seed=seed)
    return name


def clone_database(admin_url: str, template: str) -> tuple[str, str]:
    return create_database(admin_url, "zp_fault", template=template)


def terminate_backends(admin_url: str, name: str) -> int:
    """Kill every connection to database `name` (what a failover or a DBA's pg_terminate_backend does)."""
    query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
    with admin_connection(admin_url) as conn:
        return len(conn.execute(sa.text(query), {"name": name}).all())


def allow_connections(admin_url: str, name: str, allowed: bool) -> None:
    with admin_connection(admin_url) as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'))


# --- ZOHO side ------------------------------------------------------------------------------------------------


def make_client(base_url: str, engine, **overrides):
    """A client as one process would have it: its own session and limiter, the token and usage stores in the DB."""
    options = dict(
        connect_timeout_s=2.0,
        retry_base_delay_s=0.01,
        max_rate_limit_wait_s=5.0,
        rate_limit_backoff_s=0.5,
        token_lock_wait_s=5.0,
    )
    return emu.make_client(engine, base_url, own_limiter=True, **{**options, **overrides})


def fast_settings(**overrides) -> SyncSettings:
    options = dict(
        max_workers=8,
        batch_size=200,
        max_attempts=8,
        backoff_base_s=0.05,
        backoff_max_s=120.0,
        in_run_retry_window_s=2.0,
        in_run_retry_rounds=3,
        run_stale_after_s=2.0,
        heartbeat_interval_s=0.5,
        progress_interval_s=1e9,
    )
    options.update(overrides)
    return SyncSettings(**options)


# --- running --------------------------------------------------------------------------------------------------


def run_once(engine, client_factory, settings, **kw):
    from zoho_pipeline.sync.engine import run_sync

    client = client_factory()
    try:
        return run_sync(engine, client, settings, **kw)
    finally:
        client.close()


def fast_forward(engine) -> int:
    """Time passes between scheduled runs: every scheduled retry (not dead letters) becomes due now."""
    now = datetime.now(UTC)
    moved = 0
    with engine.begin() as conn:
        for spec in SPECS.values():
            c = spec.table.c
            moved += conn.execute(
                spec.table.update()
                .where(
                    c.zoho_next_attempt_at > now,
                    c.zoho_sync_status.in_((FAILED, RETRYING)),
                    c.zoho_dead_lettered.is_not(True),
                )
                .values(zoho_next_attempt_at=now)
            ).rowcount
    return moved


def sync_until_settled(engine, client_factory, settings, *, max_runs=8, between=None, **kw) -> list:
    """Run the whole pipeline until no row needs work (or `max_runs`); between runs, scheduled time passes."""
    reports = []
    for n in range(max_runs):
        reports.append(run_once(engine, client_factory, settings, **kw))
        if not unsettled(engine):
            break
        if between:
            between(n, reports[-1])
        fast_forward(engine)
    return reports


# --- the verdict ----------------------------------------------------------------------------------------------


def _rows(conn, spec) -> list[dict]:
    t = spec.table
    query = sa.select(t, spec.eligible(t).label("_eligible")).order_by(t.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def _parent_keys(entity: str, row: dict) -> list[tuple[str, str]]:
    keys = []
    if entity in ("subscriptions", "invoices", "payments") and row.get("customer_id") is not None:
        keys.append(("customers", str(row["customer_id"])))
    if entity == "subscriptions" and row.get("package_id") is not None:
        keys.append(("plans", str(row["package_id"])))
    if entity == "payments" and row.get("invoice_id") is not None:
        keys.append(("invoices", str(row["invoice_id"])))
    return keys


def classify(engine) -> dict[str, dict[str, str]]:
    """entity -> row id -> synced | failed_ok | dead | stuck | pending | ignored (not eligible, never synced)."""
    out: dict[str, dict[str, str]] = {}
    with engine.connect() as conn:
        tables = {name: _rows(conn, SPECS[name]) for name in ENTITY_ORDER}
    for name in ENTITY_ORDER:
        spec = SPECS[name]
        states = out[name] = {}
        for row in tables[name]:
            rid, status, zid = str(row["id"]), row["zoho_sync_status"], row[spec.zoho_id_column]
            if status == SYNCING:
                states[rid] = "stuck"
            elif status == SYNCED and zid:
                states[rid] = "synced"
            elif row["zoho_dead_lettered"]:
                states[rid] = "dead"
            elif status == FAILED and row["zoho_last_sync_error"] and row["zoho_error_code"] == "invalid":
                states[rid] = "failed_ok"
            elif (
                status == FAILED
                and row["zoho_last_sync_error"]
                and row["zoho_error_code"] == "parent_failed"
                and any(out.get(p, {}).get(pid) in ("failed_ok",) for p, pid in _parent_keys(name, row))
            ):
                states[rid] = "failed_ok"
            elif not row["_eligible"] and not zid and status in (None, "pending"):
                states[rid] = "ignored"
            else:
                states[rid] = "pending"
    return out


def unsettled(engine) -> int:
    return sum(1 for states in classify(engine).values() for s in states.values() if s in ("pending", "stuck"))


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _zoho_index(store) -> dict[str, dict[str, list[dict]]]:
    """entity -> reference -> ZOHO entities carrying it."""
    with store.lock:
        customers = [dict(c) for c in store.customers.values()]
        plans = [dict(p) for p in store.plans.values()]
        subscriptions = [dict(s) for s in store.subscriptions.values()]
        invoices = [dict(i) for i in store.invoices.values()]
        invoices += [dict(n) for n in store.creditnotes.values()]  # credit adjustments become credit notes
        payments = [dict(p) for p in store.payments.values()]
    index: dict[str, dict[str, list[dict]]] = {n: defaultdict(list) for n in ENTITY_ORDER}
    for c in customers:
        refs = [str(f.get("value")) for f in c.get("custom_fields") or [] if f.get("label") == PROVIDER_ID_FIELD]
        index["customers"][refs[0] if refs else f"<no provider id {c['customer_id']}>"].append(c)
    for p in plans:
        index["plans"][p["plan_code"]].append(p)
    for s in subscriptions:
        index["subscriptions"][str(s.get("reference_id") or f"<no ref {s['subscription_id']}>")].append(s)
    for i in invoices:
        index["invoices"][str(i.get("reference_number") or f"<no ref {zoho_id('invoices', i)}>")].append(i)
    for p in payments:
        index["payments"][str(p.get("reference_number") or f"<no ref {p['payment_id']}>")].append(p)
    return index


ZOHO_ID_KEY = {
    "plans": "plan_code",
    "customers": "customer_id",
    "subscriptions": "subscription_id",
    "invoices": "invoice_id",
    "payments": "payment_id",
}


def zoho_id(entity: str, found: dict) -> str:
    """The entity's ZOHO id (a source invoice may be a ZOHO invoice or, for a credit, a credit note)."""
    if entity == "invoices" and "invoice_id" not in found:
        return str(found["creditnote_id"])
    return str(found[ZOHO_ID_KEY[entity]])


def _reference(entity: str, row: dict) -> str:
    if entity == "customers":
        return str(row["id"])
    if entity == "plans":
        from zoho_pipeline.sync.entities.plans import plan_code

        return row["zoho_plan_code"] or plan_code(row["id"])
    if entity == "subscriptions":
        return str(row["id"])
    if entity == "invoices":
        return row["invoice_number"]
    return row["transaction_id"]


def _mismatch(entity: str, row: dict, found: dict, zoho_ids: dict) -> str | None:
    """Why the ZOHO entity does not match the row's key fields (None: it matches)."""
    if entity == "customers":
        if (found.get("email") or "").lower() != (row["email"] or "").strip().lower():
            return f"email {found.get('email')!r} != {row['email']!r}"
    elif entity == "subscriptions":
        if found.get("reference_id") != str(row["id"]):
            return f"reference_id {found.get('reference_id')!r}"
        want = zoho_ids["customers"].get(str(row["customer_id"]))
        if want and found.get("customer_id") != want:
            return f"customer {found.get('customer_id')} != {want}"
    elif entity == "invoices":
        if found.get("reference_number") != row["invoice_number"]:
            return f"reference_number {found.get('reference_number')!r}"
        if found.get("status") != "void" and _money(found.get("total")) != abs(_money(row["total_amount"])):
            return f"total {found.get('total')} != {row['total_amount']}"
    elif entity == "payments":
        if found.get("reference_number") != row["transaction_id"]:
            return f"reference_number {found.get('reference_number')!r}"
        if _money(found.get("amount")) != _money(row["amount"]):
            return f"amount {found.get('amount')} != {row['amount']}"
    return None


@dataclass
class Verdict:
    rows: int = 0
    eligible: int = 0
    synced: int = 0
    failed_ok: int = 0
    duplicates: int = 0
    orphans: int = 0
    lost: int = 0
    stuck: int = 0
    dead_lettered: int = 0
    zoho_entities: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.orphans or self.lost or self.stuck)

    def summary(self) -> str:
        head = (
            f"rows={self.rows} eligible={self.eligible} synced={self.synced} failed_ok={self.failed_ok} "
            f"duplicates={self.duplicates} orphans={self.orphans} lost={self.lost} stuck={self.stuck} "
            f"dead_lettered={self.dead_lettered}"
        )
        return head + "".join(f"\n  {p}" for p in self.problems[:25])


def verify(engine, store) -> Verdict:
    """Compare every source row with ZOHO; see the module docstring for the rules."""
    verdict = Verdict()
    states = classify(engine)
    index = _zoho_index(store)
    with engine.connect() as conn:
        tables = {name: _rows(conn, SPECS[name]) for name in ENTITY_ORDER}
    zoho_ids = {name: {str(r["id"]): r[SPECS[name].zoho_id_column] for r in tables[name]} for name in ENTITY_ORDER}
    for name in ENTITY_ORDER:
        spec = SPECS[name]
        recorded = {str(r[spec.zoho_id_column]) for r in tables[name] if r[spec.zoho_id_column]}
        by_id = {zoho_id(name, e): e for entities in index[name].values() for e in entities}
        verdict.zoho_entities += len(by_id)
        for ref, entities in index[name].items():
            if len(entities) > 1:
                verdict.duplicates += len(entities) - 1
                verdict.problems.append(f"duplicate {name} {ref!r}: {[zoho_id(name, e) for e in entities]}")
        for zid in sorted(set(by_id) - recorded):
            verdict.orphans += 1
            verdict.problems.append(f"orphan {name} {zid} (no source row records it)")
        for row in tables[name]:
            rid = str(row["id"])
            state = states[name][rid]
            verdict.rows += 1
            verdict.eligible += bool(row["_eligible"])
            verdict.dead_lettered += bool(row["zoho_dead_lettered"])
            if state == "stuck":
                verdict.stuck += 1
                verdict.problems.append(f"stuck {name} {rid} claimed by {row['zoho_claimed_by']}")
                continue
            if state == "ignored":
                if index[name].get(_reference(name, row)):
                    verdict.problems.append(f"ineligible {name} {rid} is in ZOHO")  # counted as an orphan
                continue
            if state == "failed_ok":
                verdict.failed_ok += 1
                continue
            zid = row[spec.zoho_id_column]
            found = by_id.get(str(zid)) if zid else None
            why = None
            if state != "synced":
                why = (
                    f"status={row['zoho_sync_status']} code={row['zoho_error_code']} dead="
                    f"{row['zoho_dead_lettered']} error={(row['zoho_last_sync_error'] or '')[:120]!r}"
                )
            elif found is None:
                why = f"synced with ZOHO id {zid} that ZOHO does not have"
            else:
                why = _mismatch(name, row, found, zoho_ids)
            if why:
                verdict.lost += 1
                verdict.problems.append(
                    f"lost {name} {rid} ({spec.label(row) if name != 'subscriptions' else rid}): {why}"
                )
            else:
                verdict.synced += 1
    return verdict


def claimed_twice(engine) -> int:
    """Rows with two successful creates/adopts in the attempt log: the same row worked by two runs."""
    logs = zoho_sync_logs.c
    query = (
        sa.select(logs.entity_type, logs.entity_id, sa.func.count())
        .where(logs.outcome == "synced", logs.action.in_(("create", "adopt")))
        .group_by(logs.entity_type, logs.entity_id)
        .having(sa.func.count() > 1)
    )
    with engine.connect() as conn:
        return len(conn.execute(query).all())


def log_rows(engine, **where) -> list[dict]:
    logs = zoho_sync_logs.c
    query = sa.select(zoho_sync_logs)
    for name, value in where.items():
        query = query.where(logs[name] == value)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def max_attempts_seen(engine) -> int:
    with engine.connect() as conn:
        return max(
            int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(s.table.c.zoho_attempts), 0))).scalar())
            for s in SPECS.values()
        )


def status_counts(engine) -> dict[str, Counter]:
    out = {}
    with engine.connect() as conn:
        for name, spec in SPECS.items():
            c = spec.table.c
            out[name] = Counter(
                {
                    str(k): v
                    for k, v in conn.execute(
                        sa.select(c.zoho_sync_status, sa.func.count()).group_by(c.zoho_sync_status)
                    ).all()
                }
            )
    return out


def total(reports, attr: str) -> int:
    return sum(getattr(e, attr) for r in reports for e in r.entities.values())


# --- the summary table ----------------------------------------------------------------------------------------

COLUMNS = (
    "scenario",
    "rows",
    "api_calls",
    "duplicates",
    "lost",
    "stuck",
    "seconds",
    "runs",
    "adopted",
    "failed_ok",
    "dead",
    "notes",
)


def format_table(results: list[dict]) -> str:
    lines = [[str(r.get(c, "")) for c in COLUMNS] for r in results]
    widths = [max([len(c)] + [len(line[i]) for line in lines]) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(
        cell.ljust(w) if i in (0, len(COLUMNS) - 1) else cell.rjust(w)  # noqa: E731
        for i, (cell, w) in enumerate(zip(cells, widths))
    )
    out = [fmt(COLUMNS), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    return "\n".join(out)


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def utc_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
