"""Reconciliation: does ZOHO hold what the source says was synced? Row by row, within an API-call budget.

    report = reconcile(engine, client, ["customers", "invoices"], sample=200, max_calls=500)
    report.ok, report.differences, report.as_dict()

Per entity:
1. List ZOHO's entities page by page (200 per call, `filter_by` All, so void / cancelled ones are included) and
   match each to a source row: first by the ZOHO id stored on the row, then by our stable reference. That finds:
   - `missing_in_zoho`: a row marked synced whose ZOHO id is not in ZOHO (deleted by hand, or never created);
   - `duplicate_in_zoho`: two or more ZOHO entities carrying the same reference (created twice);
   - `unlinked_in_zoho`: ZOHO has our reference but the row holds no (or another) ZOHO id (a create whose answer was
     lost; the engine adopts it on the row's next sync);
   - `unknown_in_zoho`: a ZOHO entity no source row explains (created by hand in ZOHO, or its row was deleted).
2. Compare key fields of matched synced rows: from the list item when it carries them, else one GET by id per row,
   for at most `sample` rows per entity (random): `mismatch` differences name the field, the source value and ZOHO's.
   - `synced_without_id`: a row marked synced with no ZOHO id at all (from the source alone, no call).
What is listed, the reference and the fields compared are each entity module's `RECONCILE` (sync/entities/).
When `max_calls` runs out the entity is marked incomplete (`complete: false`) and missing/unknown verdicts that
need the full listing are not drawn. A reconcile only reads: it never changes the source or ZOHO.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from zoho_pipeline.sync.entities import entities, entity_name, spec
from zoho_pipeline.sync.entities.base import Collection
from zoho_pipeline.zoho.errors import PERMANENT, ZohoError

PER_PAGE = 200
KINDS = ("missing_in_zoho", "duplicate_in_zoho", "unlinked_in_zoho", "unknown_in_zoho", "mismatch", "synced_without_id")
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
        return {
            "ok": self.ok,
            "complete": self.complete,
            "api_calls": self.api_calls,
            "max_calls": self.max_calls,
            "differences": len(self.differences),
            "entities": {n: e.as_dict() for n, e in self.entities.items()},
        }


# --- source side ------------------------------------------------------------------------------------------------


def _source_rows(engine, entity: str) -> list[dict]:
    """Eligible rows and rows holding a ZOHO id, with the fields the entity compares and its reference (`ref`)."""
    info = spec(entity)
    c = info.table.c
    columns, joined = info.reconcile.columns()
    q = (
        sa.select(
            c.id,
            info.label_sql().label("label"),
            info.zoho_id.label("zoho_id"),
            c.zoho_sync_status.label("sync_status"),
            *columns,
        )
        .select_from(joined)
        .where(sa.or_(info.where_eligible(), info.zoho_id.is_not(None)))
    )
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


def _list_one(client, collection: Collection, budget: _Budget) -> list[dict]:
    params = {"per_page": PER_PAGE}
    if collection.list_filter:
        params["filter_by"] = collection.list_filter
    items, page = [], 1
    while True:
        budget.spend()
        body = client.get(collection.path, params={**params, "page": page})
        for item in body.get(collection.key) or []:
            items.append({**item, "_zid": str(item.get(collection.id_field))})
        if not (body.get("page_context") or {}).get("has_more_page"):
            return items
        page += 1


def _list_all(client, entity: str, budget: _Budget) -> list[dict]:
    return [item for c in spec(entity).reconcile.collections for item in _list_one(client, c, budget)]


def _collection(entity: str, row: dict) -> Collection:
    rec = spec(entity).reconcile
    return rec.collections[rec.collection_of(row)]


def _get(client, collection: Collection, zoho_id: str, budget: _Budget) -> dict | None:
    budget.spend()
    try:
        return client.get(f"{collection.path}/{zoho_id}").get(collection.one) or {}
    except ZohoError as exc:
        if exc.kind == PERMANENT and (exc.http_status in (400, 404) or exc.code in (1002, 3004, 1004, 4, 5)):
            return None  # ZOHO does not know it
        raise


# --- the reconcile ----------------------------------------------------------------------------------------------


def reconcile_entity(
    engine,
    client,
    entity: str,
    *,
    sample: int | None = None,
    max_calls: int | None = None,
    list_zoho: bool = True,
    seed: int | None = None,
) -> EntityReconcile:
    entity = entity_name(entity)
    rec = spec(entity).reconcile
    res = EntityReconcile(entity)
    budget = _Budget(client, max_calls)
    rows = _source_rows(engine, entity)
    res.source_rows = len(rows)
    synced = [r for r in rows if r["sync_status"] == "synced"]
    res.source_synced = len(synced)
    for r in synced:
        if not r["zoho_id"]:
            res.differences.append(
                Difference(
                    entity, "synced_without_id", r["label"], str(r["id"]), detail="marked synced without a ZOHO id"
                )
            )
    by_zoho_id = {str(r["zoho_id"]): r for r in rows if r["zoho_id"]}
    by_ref = {str(r["ref"]): r for r in rows if r.get("ref")}
    row_key, item_key = rec.matches_by or (None, None)  # an item without our reference, matched by another key
    by_key = {(r.get(row_key) or "").lower(): r for r in rows} if row_key else {}
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
                ref = rec.reference(item)
                row = by_zoho_id.get(zid)
                if ref is None and item_key:
                    match = by_key.get((item.get(item_key) or "").lower())
                    ref = str(match["ref"]) if match else None
                if row is None and rec.foreign(item):
                    continue  # ZOHO raised it for another entity's action (a refund's credit note)
                owner = by_ref.get(ref) if ref is not None else None
                if row is None and owner is not None and owner["zoho_id"] and rec.superseded(item):
                    continue  # history: an ended entity its row has since replaced
                if ref is not None:
                    refs.setdefault(ref, []).append(item)
                if row is not None:
                    continue
                owner = by_ref.get(ref) if ref is not None else None
                if owner is None:
                    res.differences.append(
                        Difference(
                            entity,
                            "unknown_in_zoho",
                            rec.zoho_label(item),
                            None,
                            zid,
                            detail=f"no source row has {'reference ' + repr(ref) if ref else 'its reference'}",
                        )
                    )
                elif owner["zoho_id"] and str(owner["zoho_id"]) in listed_ids:
                    pass  # reported once below as a duplicate of the linked one
                else:
                    res.differences.append(
                        Difference(
                            entity,
                            "unlinked_in_zoho",
                            owner["label"],
                            str(owner["id"]),
                            zid,
                            source_value=owner["zoho_id"],
                            zoho_value=zid,
                            detail="ZOHO holds this row's reference but the row is not linked to it "
                            "(the engine adopts it on the row's next sync)",
                        )
                    )
            for ref, group in refs.items():
                if len(group) > 1 and rec.duplicates:
                    owner = by_ref.get(ref)
                    ids = [i["_zid"] for i in group]
                    res.differences.append(
                        Difference(
                            entity,
                            "duplicate_in_zoho",
                            owner["label"] if owner else rec.zoho_label(group[0]),
                            str(owner["id"]) if owner else None,
                            ", ".join(ids),
                            source_value=owner["zoho_id"] if owner else None,
                            zoho_value=ids,
                            detail=f"{len(group)} ZOHO {entity} carry reference {ref!r}",
                        )
                    )
            for r in synced:
                if r["zoho_id"] and str(r["zoho_id"]) not in listed and not rec.gone(r):
                    res.differences.append(
                        Difference(
                            entity,
                            "missing_in_zoho",
                            r["label"],
                            str(r["id"]),
                            str(r["zoho_id"]),
                            detail="ZOHO has no entity with this id",
                        )
                    )
        # field comparison for (a sample of) synced rows present in ZOHO
        candidates = [r for r in synced if r["zoho_id"] and (not list_zoho or str(r["zoho_id"]) in listed)]
        if sample is not None and len(candidates) > sample:
            candidates = random.Random(seed).sample(candidates, sample)
        for r in candidates:
            zid = str(r["zoho_id"])
            remote = listed.get(zid)
            collection = _collection(entity, r)
            if remote is None or not all(k in remote for k in collection.needs):
                remote = _get(client, collection, zid, budget)
                if remote is None and rec.gone(r):
                    res.compared += 1  # meant to be gone, and gone
                    continue
                if remote is None:
                    res.differences.append(
                        Difference(
                            entity,
                            "missing_in_zoho",
                            r["label"],
                            str(r["id"]),
                            zid,
                            detail="GET by id: ZOHO does not know it",
                        )
                    )
                    continue
            res.compared += 1
            for fld, src, dst, note in rec.compare(r, remote):
                res.differences.append(
                    Difference(entity, "mismatch", r["label"], str(r["id"]), zid, fld, src, dst, note)
                )
    except _OutOfCalls:
        res.complete = False
        res.notes.append(f"stopped at the API-call budget ({max_calls}); verdicts so far only")
    res.api_calls = budget.used
    if sample is not None and res.compared < len([r for r in synced if r["zoho_id"]]):
        res.notes.append(f"fields compared on a sample of {res.compared} synced row(s)")
    return res


def reconcile(
    engine,
    client,
    names: Iterable[str] | str | None = None,
    *,
    sample: int | None = None,
    max_calls: int | None = None,
    list_zoho: bool = True,
    seed: int | None = None,
) -> ReconcileReport:
    """Reconcile the entities `names` (all when None) in sync order, sharing `max_calls` API calls between them: each entity
    may spend what the previous ones left."""
    report = ReconcileReport(max_calls=max_calls)
    start = client.stats.api_calls
    for name in entities(names):
        left = None if max_calls is None else max(0, max_calls - (client.stats.api_calls - start))
        report.entities[name] = reconcile_entity(
            engine, client, name, sample=sample, max_calls=left, list_zoho=list_zoho, seed=seed
        )
    report.api_calls = client.stats.api_calls - start
    return report
