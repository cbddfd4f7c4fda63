"""Reconciliation: does ZOHO hold what the source says was synced? Row by row, within an API-call budget.

    report = reconcile(engine, client, ["customers", "invoices"], sample=200, max_calls=500)
    report.ok, report.differences, report.as_dict()

Per entity:
1. List ZOHO's entities page by page (200 per call, `filter_by` All, so void / cancelled ones are included) and
   match each to a source row: first by the ZOHO id stored on the row, then by our stable reference (customers:
   the "Provider Customer ID" custom field, else the email; subscriptions: `reference_id` = service id; invoices:
   `reference_number` = invoice number; payments: `reference_number` = transaction id; plans: `plan_code`).
   That finds:
   - `missing_in_zoho`: a row marked synced whose ZOHO id is not in ZOHO (deleted by hand, or never created);
   - `duplicate_in_zoho`: two or more ZOHO entities carrying the same reference (created twice);
   - `unlinked_in_zoho`: ZOHO has our reference but the row holds no (or another) ZOHO id (a create whose answer was
     lost; the engine adopts it on the row's next sync);
   - `unknown_in_zoho`: a ZOHO entity no source row explains (created by hand in ZOHO, or its row was deleted).
2. Compare key fields of matched synced rows: from the list item when it carries them, else one GET by id per row,
   for at most `sample` rows per entity (random): `mismatch` differences name the field, the source value and ZOHO's.
   - customers: email (case-insensitive), first name, last name
   - subscriptions: plan code, price (excl. VAT), status (active/suspended ↔ live-like; cancelled ↔ cancelled-like)
   - invoices: total (incl. VAT), paid status (source paid ↔ ZOHO paid; cancelled ↔ void); a credit adjustment
     (negative total) is a ZOHO credit note: its total is compared with the amount credited
   - payments: amount, the invoice it is applied to
   - plans: name, recurring price
   - `synced_without_id`: a row marked synced with no ZOHO id at all (from the source alone, no call).
When `max_calls` runs out the entity is marked incomplete (`complete: false`) and missing/unknown verdicts that
need the full listing are not drawn. A reconcile only reads: it never changes the source or ZOHO.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync import queries as Q

PER_PAGE = 200
PROVIDER_ID_FIELD = "Provider Customer ID"
try:  # the customer module's own constant when available
    from zoho_pipeline.sync.entities.customers import PROVIDER_ID_FIELD  # noqa: F811
except Exception:  # noqa: BLE001
    pass

# entity: (list path, list key, GET path template, GET key, id field)
ZOHO = {
    "plans": ("/plans", "plans", "/plans/{}", "plan", "plan_code"),
    "customers": ("/customers", "customers", "/customers/{}", "customer", "customer_id"),
    "subscriptions": ("/subscriptions", "subscriptions", "/subscriptions/{}", "subscription", "subscription_id"),
    "invoices": ("/invoices", "invoices", "/invoices/{}", "invoice", "invoice_id"),
    "payments": ("/payments", "payments", "/payments/{}", "payment", "payment_id"),
}
# a credit adjustment (negative total) is a ZOHO credit note: listed and fetched with the invoices
CREDIT_NOTES = ("/creditnotes", "creditnotes", "/creditnotes/{}", "creditnote", "creditnote_id")
LIST_FILTERS = {"plans": "PlanStatus.All", "customers": "Status.All", "subscriptions": "SubscriptionStatus.All",
                "invoices": "Status.All", "/creditnotes": "Status.All"}
LIVE_LIKE = {"live", "trial", "future", "non_renewing", "unpaid", "dunning", "past_due"}
ENDED_LIKE = {"cancelled", "expired", "cancelled_from_dunning", "non_renewing", "trial_expired"}
KINDS = ("missing_in_zoho", "duplicate_in_zoho", "unlinked_in_zoho", "unknown_in_zoho", "mismatch",
         "synced_without_id")
SEVERITY = {"unknown_in_zoho": "warning", "unlinked_in_zoho": "warning"}


class _OutOfCalls(Exception):
    pass


@dataclass
class Difference:
    entity: str
    kind: str
    label: str
    source_id: str | None = None
    zoho_id: str | None = None
    field: str | None = None
    source_value: Any = None
    zoho_value: Any = None
    detail: str = ""

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.kind, "error")

    def as_dict(self) -> dict:
        return {**asdict(self), "severity": self.severity}


@dataclass
class EntityReconcile:
    entity: str
    source_rows: int = 0  # eligible rows, plus rows holding a ZOHO id
    source_synced: int = 0
    zoho_listed: int | None = None  # None: the list was not (fully) read
    compared: int = 0  # synced rows whose fields were compared
    api_calls: int = 0
    complete: bool = True
    notes: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for d in self.differences:
            out[d.kind] += 1
        return out

    def as_dict(self) -> dict:
        d = asdict(self)
        d["differences"] = [x.as_dict() for x in self.differences]
        d["counts"] = self.counts()
        return d


@dataclass
class ReconcileReport:
    entities: dict[str, EntityReconcile] = field(default_factory=dict)
    api_calls: int = 0
    max_calls: int | None = None

    @property
    def differences(self) -> list[Difference]:
        return [d for e in self.entities.values() for d in e.differences]

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def complete(self) -> bool:
        return all(e.complete for e in self.entities.values())

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_dict(self) -> dict:
        return {"ok": self.ok, "complete": self.complete, "api_calls": self.api_calls, "max_calls": self.max_calls,
                "differences": len(self.differences),
                "entities": {n: e.as_dict() for n, e in self.entities.items()}}


# --- source side ------------------------------------------------------------------------------------------------


def _money(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _source_rows(engine, entity: str) -> list[dict]:
    """Eligible rows and rows holding a ZOHO id, with the fields compared and the reference."""
    info = Q.entity_info(entity)
    t = info.table
    c = t.c
    cols = [c.id, Q.label_expr(entity, t).label("label"), info.zoho_id.label("zoho_id"),
            c.zoho_sync_status.label("sync_status")]
    j = t
    if entity == "plans":
        cols += [c.name, c.monthly_price, c.zoho_plan_code.label("ref")]
    elif entity == "customers":
        cols += [c.email, c.first_name, c.last_name, sa.cast(c.id, sa.String).label("ref")]
    elif entity == "subscriptions":
        p = T.service_packages
        j = t.outerjoin(p, p.c.id == c.package_id)
        cols += [c.status, c.monthly_price, p.c.zoho_plan_code.label("plan_code"), sa.cast(c.id, sa.String).label("ref")]
    elif entity == "invoices":
        cols += [c.status, c.total_amount, c.invoice_type, c.invoice_number.label("ref")]
    else:
        i = T.customer_invoices
        j = t.outerjoin(i, i.c.id == c.invoice_id)
        cols += [c.amount, c.invoice_id, i.c.zoho_billing_invoice_id.label("invoice_zoho_id"),
                 c.transaction_id.label("ref")]
    q = sa.select(*cols).select_from(j).where(sa.or_(info.where_eligible(), info.zoho_id.is_not(None)))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


# --- ZOHO side --------------------------------------------------------------------------------------------------


class _Budget:
    def __init__(self, client, max_calls: int | None):
        self.client, self.max_calls = client, max_calls
        self.start = client.stats.api_calls

    @property
    def used(self) -> int:
        return self.client.stats.api_calls - self.start

    def spend(self, n: int = 1) -> None:
        if self.max_calls is not None and self.used + n > self.max_calls:
            raise _OutOfCalls()


def _reference(entity: str, item: dict) -> str | None:
    if entity == "plans":
        return item.get("plan_code") or None
    if entity == "customers":
        for f in item.get("custom_fields") or []:
            if f.get("label") == PROVIDER_ID_FIELD and f.get("value"):
                return str(f["value"])
        return None
    if entity == "subscriptions":
        return item.get("reference_id") or None
    return item.get("reference_number") or None


def _is_credit(row: dict) -> bool:
    total = _money(row.get("total_amount"))
    return row.get("invoice_type") == "adjustment" and total is not None and total < 0


def _list_one(client, entity: str, spec: tuple, budget: _Budget) -> list[dict]:
    path, key, _, _, id_field = spec
    params = {"per_page": PER_PAGE}
    flt = LIST_FILTERS.get(path if spec is CREDIT_NOTES else entity)
    if flt:
        params["filter_by"] = flt
    items, page = [], 1
    while True:
        budget.spend()
        body = client.get(path, params={**params, "page": page})
        for item in body.get(key) or []:
            items.append({**item, "_zid": str(item.get(id_field)), "_credit": spec is CREDIT_NOTES})
        if not (body.get("page_context") or {}).get("has_more_page"):
            return items
        page += 1


def _list_all(client, entity: str, budget: _Budget) -> list[dict]:
    items = _list_one(client, entity, ZOHO[entity], budget)
    if entity == "invoices":
        items += _list_one(client, entity, CREDIT_NOTES, budget)
    return items


def _get(client, entity: str, zoho_id: str, budget: _Budget, row: dict | None = None) -> dict | None:
    from zoho_pipeline.zoho.errors import PERMANENT, ZohoError

    _, _, one, key, _ = CREDIT_NOTES if entity == "invoices" and row and _is_credit(row) else ZOHO[entity]
    budget.spend()
    try:
        return client.get(one.format(zoho_id)).get(key) or {}
    except ZohoError as exc:
        if exc.kind == PERMANENT and (exc.http_status in (400, 404) or exc.code in (1002, 3004, 1004, 4, 5)):
            return None  # ZOHO does not know it
        raise


# --- comparing --------------------------------------------------------------------------------------------------

NEEDS = {  # list-item keys that make a GET unnecessary
    "plans": ("name", "recurring_price"),
    "customers": ("email", "first_name", "last_name"),
    "subscriptions": ("plan", "status"),
    "invoices": ("total", "status", "balance"),
    "payments": ("amount", "invoices"),
}


def compare(entity: str, row: dict, remote: dict) -> list[tuple[str, Any, Any, str]]:
    """(field, source value, ZOHO value, note) for every key field that differs."""
    out = []

    def eq_money(fld, src, dst, note=""):
        if _money(src) != _money(dst):
            out.append((fld, str(_money(src)), str(_money(dst)), note))

    if entity == "plans":
        if (row.get("name") or "").strip()[:100] != (remote.get("name") or "").strip():
            out.append(("name", row.get("name"), remote.get("name"), ""))
        eq_money("price", row.get("monthly_price"), remote.get("recurring_price"), "excl. VAT")
    elif entity == "customers":
        if (row.get("email") or "").strip().lower() != (remote.get("email") or "").strip().lower():
            out.append(("email", row.get("email"), remote.get("email"), ""))
        for fld in ("first_name", "last_name"):
            if (row.get(fld) or "").strip() != (remote.get(fld) or "").strip():
                out.append((fld, row.get(fld), remote.get(fld), ""))
    elif entity == "subscriptions":
        plan = remote.get("plan") or {}
        code = plan.get("plan_code") or remote.get("plan_code")
        if row.get("plan_code") and code != row.get("plan_code"):
            out.append(("plan_code", row.get("plan_code"), code, ""))
        if "price" in plan:
            eq_money("price", row.get("monthly_price"), plan.get("price"), "excl. VAT")
        status = (remote.get("status") or "").lower()
        src = row.get("status")
        if src in ("active", "suspended") and status not in LIVE_LIKE:
            out.append(("status", src, status, "the service is live, the subscription is not"))
        elif src == "cancelled" and status not in ENDED_LIKE:
            out.append(("status", src, status, "the service is cancelled, the subscription is not"))
    elif entity == "invoices" and _is_credit(row):  # a credit note: positive in ZOHO
        eq_money("total", -_money(row.get("total_amount")), remote.get("total"), "credit note, incl. VAT")
        status = (remote.get("status") or "").lower()
        if (row.get("status") == "cancelled") != (status == "void"):
            out.append(("status", row.get("status"), status, "cancelled in the source ↔ void credit note in ZOHO"))
    elif entity == "invoices":
        eq_money("total", row.get("total_amount"), remote.get("total"), "incl. VAT")
        src = row.get("status")
        status = (remote.get("status") or "").lower()
        balance = _money(remote.get("balance"))
        zoho_paid = status == "paid" or (balance is not None and balance <= 0 and status not in ("void", "draft"))
        if src == "cancelled":
            if status != "void":
                out.append(("status", src, status, "cancelled in the source, not void in ZOHO"))
        elif status == "void":
            out.append(("status", src, status, "void in ZOHO, not cancelled in the source"))
        elif (src == "paid") != zoho_paid:
            out.append(("paid", src, f"{status} (balance {balance})",
                        "paid status differs (is the payment synced? zoho-pipeline status --entity payments)"))
    else:
        eq_money("amount", row.get("amount"), remote.get("amount"), "incl. VAT")
        want = row.get("invoice_zoho_id")
        applied = [str(a.get("invoice_id")) for a in remote.get("invoices") or []]
        if want and str(want) not in applied:
            out.append(("invoice", want, ", ".join(applied) or "(none)", "not applied to the row's invoice"))
    return out


# --- the reconcile ----------------------------------------------------------------------------------------------


def reconcile_entity(engine, client, entity: str, *, sample: int | None = None, max_calls: int | None = None,
                     list_zoho: bool = True, seed: int | None = None) -> EntityReconcile:
    entity = Q.entity_name(entity)
    res = EntityReconcile(entity)
    budget = _Budget(client, max_calls)
    rows = _source_rows(engine, entity)
    res.source_rows = len(rows)
    synced = [r for r in rows if r["sync_status"] == "synced"]
    res.source_synced = len(synced)
    for r in synced:
        if not r["zoho_id"]:
            res.differences.append(Difference(entity, "synced_without_id", r["label"], str(r["id"]),
                                              detail="marked synced without a ZOHO id"))
    by_zoho_id = {str(r["zoho_id"]): r for r in rows if r["zoho_id"]}
    by_ref = {str(r["ref"]): r for r in rows if r.get("ref")}
    by_email = {(r.get("email") or "").lower(): r for r in rows} if entity == "customers" else {}
    listed: dict[str, dict] = {}
    try:
        if list_zoho:
            items = _list_all(client, entity, budget)
            res.zoho_listed = len(items)
            listed_ids = {i["_zid"] for i in items}
            refs: dict[str, list[dict]] = {}
            for item in items:
                zid = item["_zid"]
                listed[zid] = item
                ref = _reference(entity, item)
                row = by_zoho_id.get(zid)
                if ref is None and entity == "customers":
                    match = by_email.get((item.get("email") or "").lower())
                    ref = str(match["ref"]) if match else None
                if ref is not None:
                    refs.setdefault(ref, []).append(item)
                if row is not None:
                    continue
                owner = by_ref.get(ref) if ref is not None else None
                if owner is None:
                    res.differences.append(Difference(
                        entity, "unknown_in_zoho", _zoho_label(entity, item), None, zid,
                        detail=f"no source row has {'reference ' + repr(ref) if ref else 'its reference'}"))
                elif owner["zoho_id"] and str(owner["zoho_id"]) in listed_ids:
                    pass  # reported once below as a duplicate of the linked one
                else:
                    res.differences.append(Difference(
                        entity, "unlinked_in_zoho", owner["label"], str(owner["id"]), zid,
                        source_value=owner["zoho_id"], zoho_value=zid,
                        detail="ZOHO holds this row's reference but the row is not linked to it "
                               "(the engine adopts it on the row's next sync)"))
            for ref, group in refs.items():
                if len(group) > 1 and entity != "plans":
                    owner = by_ref.get(ref)
                    ids = [i["_zid"] for i in group]
                    res.differences.append(Difference(
                        entity, "duplicate_in_zoho", owner["label"] if owner else _zoho_label(entity, group[0]),
                        str(owner["id"]) if owner else None, ", ".join(ids),
                        source_value=owner["zoho_id"] if owner else None, zoho_value=ids,
                        detail=f"{len(group)} ZOHO {entity} carry reference {ref!r}"))
            for r in synced:
                if r["zoho_id"] and str(r["zoho_id"]) not in listed:
                    res.differences.append(Difference(entity, "missing_in_zoho", r["label"], str(r["id"]),
                                                      str(r["zoho_id"]), detail="ZOHO has no entity with this id"))
        # field comparison for (a sample of) synced rows present in ZOHO
        candidates = [r for r in synced if r["zoho_id"] and (not list_zoho or str(r["zoho_id"]) in listed)]
        if sample is not None and len(candidates) > sample:
            candidates = random.Random(seed).sample(candidates, sample)
        for r in candidates:
            zid = str(r["zoho_id"])
            remote = listed.get(zid)
            needs = ("total", "status") if entity == "invoices" and _is_credit(r) else NEEDS[entity]
            if remote is None or not all(k in remote for k in needs):
                remote = _get(client, entity, zid, budget, r)
                if remote is None:
                    res.differences.append(Difference(entity, "missing_in_zoho", r["label"], str(r["id"]), zid,
                                                      detail="GET by id: ZOHO does not know it"))
                    continue
            res.compared += 1
            for fld, src, dst, note in compare(entity, r, remote):
                res.differences.append(Difference(entity, "mismatch", r["label"], str(r["id"]), zid, fld, src, dst,
                                                  note))
    except _OutOfCalls:
        res.complete = False
        res.notes.append(f"stopped at the API-call budget ({max_calls}); verdicts so far only")
    res.api_calls = budget.used
    if sample is not None and res.compared < len([r for r in synced if r["zoho_id"]]):
        res.notes.append(f"fields compared on a sample of {res.compared} synced row(s)")
    return res


def _zoho_label(entity: str, item: dict) -> str:
    if entity == "customers":
        return f"{item.get('display_name') or ''} <{item.get('email') or ''}>".strip()
    if entity == "invoices":
        return f"{item.get('invoice_number') or item.get('number') or ''} (ref {item.get('reference_number') or '-'})"
    if entity == "payments":
        return f"payment {item.get('amount')} (ref {item.get('reference_number') or '-'})"
    if entity == "subscriptions":
        return f"{item.get('name') or item.get('plan_code') or ''} for {item.get('email') or item.get('customer_id')}"
    return str(item.get("name") or item.get("plan_code"))


def reconcile(engine, client, entities: Iterable[str] | str | None = None, *, sample: int | None = None,
              max_calls: int | None = None, list_zoho: bool = True, seed: int | None = None) -> ReconcileReport:
    """Reconcile `entities` (all when None) in sync order, sharing `max_calls` API calls between them: each entity
    may spend what the previous ones left."""
    report = ReconcileReport(max_calls=max_calls)
    start = client.stats.api_calls
    for name in Q.entities(entities):
        left = None if max_calls is None else max(0, max_calls - (client.stats.api_calls - start))
        report.entities[name] = reconcile_entity(engine, client, name, sample=sample, max_calls=left,
                                                 list_zoho=list_zoho, seed=seed)
    report.api_calls = client.stats.api_calls - start
    return report
