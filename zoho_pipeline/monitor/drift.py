"""Drift: fields someone changed in ZOHO (finance edits customers and invoices in ZOHO's UI) since we last sent them.

    report = drift(engine, client, ["customers"], sample=200, max_calls=100)

For synced rows that have a stored payload (sync.payloads: what ZOHO last accepted from us), one GET by ZOHO id
per row, for a random sample the budget pays for, then each field the entity module declares (`SPEC.drift`: our
payload's path, ZOHO's path where it names or nests the field otherwise, money, a flag ZOHO shows as a status) is
judged here: what we sent against what ZOHO holds (`billing_address.city`, `invoice_items[1].price`, an invoice's
`total`, a plan's `status`; money to the cent, text stripped). Nothing undeclared is judged, nor a field ZOHO's
answer leaves out; a row is reported by ZOHO's name of the field.
A drift is the source's data no longer in ZOHO: `zoho-pipeline retry ENTITY KEY --force` sends it back, and with
`ZOHO_DRIFT=repair` the daily check requeues the drifted rows so the next sync does. Reads only.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from zoho_pipeline.sync import payloads
from zoho_pipeline.sync.entities import entities, spec
from zoho_pipeline.sync.entities.base import NOT_SENT, DriftField, cents
from zoho_pipeline.zoho.errors import PERMANENT, ZohoError


@dataclass
class Drift:
    entity: str
    entity_id: str
    label: str
    zoho_id: str
    field: str
    sent: object  # what ZOHO last accepted from us
    zoho: object  # what ZOHO holds now (None: the entity is gone)


@dataclass
class EntityDrift:
    entity: str
    candidates: int = 0  # synced rows with a ZOHO id and a stored payload
    checked: int = 0
    api_calls: int = 0
    complete: bool = True  # every candidate checked (no sample, budget enough)
    drifts: list[Drift] = field(default_factory=list)

    @property
    def drifted_ids(self) -> list[str]:
        return list(dict.fromkeys(d.entity_id for d in self.drifts))


@dataclass
class DriftReport:
    entities: dict[str, EntityDrift] = field(default_factory=dict)
    api_calls: int = 0

    @property
    def drifts(self) -> list[Drift]:
        return [d for e in self.entities.values() for d in e.drifts]

    def as_dict(self) -> dict:
        return {
            "drifted_rows": sum(len(e.drifted_ids) for e in self.entities.values()),
            "api_calls": self.api_calls,
            "entities": {
                n: {**{k: v for k, v in asdict(e).items() if k != "drifts"}, "drifts": [asdict(d) for d in e.drifts]}
                for n, e in self.entities.items()
            },
        }


MISSING = object()  # a path ZOHO's answer does not have


def _parts(path: str) -> list[str]:
    """ "invoice_items[].price" → ["invoice_items", "[]", "price"]."""
    return [p for p in path.replace("[]", ".[].").split(".") if p]


def _sent_at(parts: list[str], value, prefix: str = "", indices: tuple = ()):
    """(concrete path, list indices, value) of each leaf of the payload at `parts`, `[]` over every item."""
    if not parts:
        yield prefix, indices, value
        return
    head, rest = parts[0], parts[1:]
    if head == "[]":
        for n, item in enumerate(value if isinstance(value, list) else [], start=1):
            yield from _sent_at(rest, item, f"{prefix}[{n}]", (*indices, n))
    elif isinstance(value, dict) and head in value:
        yield from _sent_at(rest, value[head], f"{prefix}.{head}" if prefix else head, indices)


def _held_at(parts: list[str], value, indices: tuple):
    """(concrete path, value or MISSING) of ZOHO's answer at `parts`, each `[]` taking the next of `indices`."""
    path, left = "", list(indices)
    for part in parts:
        if part == "[]":
            n = left.pop(0)
            path += f"[{n}]"
            value = value[n - 1] if isinstance(value, list) and n <= len(value) else MISSING
        else:
            path += f".{part}" if path else part
            value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
    return path, value


def agree(declared: DriftField, ours, theirs) -> bool:
    """The judgement, once: the field's own rule, money to the cent, texts stripped, numbers as numbers."""
    if declared.agrees is not None:
        return declared.agrees(ours, theirs)
    if declared.money and ours is not None and theirs is not None:
        return cents(ours) is not None and cents(ours) == cents(theirs)
    if isinstance(ours, str | None) and isinstance(theirs, str | None):
        return (ours or "").strip() == (theirs or "").strip()
    if isinstance(ours, int | float) and isinstance(theirs, int | float) and not isinstance(ours, bool):
        return float(ours) == float(theirs)
    return ours == theirs


def field_drift(fields, sent: dict, held: dict | None) -> list[tuple[str, object, object]]:
    """[(ZOHO's path, what we sent, what ZOHO holds)] for each declared field that ZOHO holds otherwise; with
    `held` None (the entity is gone) every field we sent. A field ZOHO's answer leaves out is not judged."""
    out = []
    for declared in fields:
        found = list(_sent_at(_parts(declared.ours), sent))
        if not found and declared.absent is not NOT_SENT and "[]" not in declared.ours:
            found = [(declared.ours, (), declared.absent)]
        for _, indices, ours in found:
            path, theirs = _held_at(_parts(declared.held_at), held, indices)
            if held is None:
                out.append((path, ours, None))
            elif theirs is not MISSING and not agree(declared, ours, theirs):
                out.append((path, ours, theirs))
    return out


def _candidates(engine, name: str) -> list[dict]:
    s = spec(name)
    query = s.select().where(s.table.c.zoho_sync_status == "synced", s.zoho_id.is_not(None))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def drift_entity(engine, client, name: str, *, sample=None, max_calls=None, seed=None) -> EntityDrift:
    s = spec(name)
    out = EntityDrift(name)
    rows = _candidates(engine, name)
    with engine.connect() as conn:
        accepted = payloads.load(conn, name, [r["id"] for r in rows])
    # a row whose ZOHO entity is meant to be gone (a bounced payment, deleted there) has nothing to drift from
    rows = [r for r in rows if str(r["id"]) in accepted and not s.reconcile.gone(r)]
    out.candidates = len(rows)
    limit = min(x for x in (sample, max_calls, len(rows)) if x is not None)
    if limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
        out.complete = False
    start = client.stats.api_calls
    for row in rows:
        collection = s.reconcile.collections[s.reconcile.collection_of(row)]
        zoho_id = str(row[s.zoho_id_column])
        sent = accepted[str(row["id"])]
        try:
            held = client.get(f"{collection.path}/{zoho_id}").get(collection.one) or {}
        except ZohoError as exc:
            if exc.kind != PERMANENT:
                raise
            held = None  # gone from ZOHO: reconcile's missing_in_zoho says so; every field drifted
        out.checked += 1
        found = field_drift(s.drift, sent, held)
        out.drifts += [Drift(name, str(row["id"]), s.label(row), zoho_id, p, v, h) for p, v, h in found]
    out.api_calls = client.stats.api_calls - start
    return out


def drift(engine, client, names=None, *, sample=None, max_calls=None, seed=None) -> DriftReport:
    """Drift of `names` (all entities when None), sharing `max_calls` between them in sync order."""
    report = DriftReport()
    start = client.stats.api_calls
    for name in names or entities():
        left = None if max_calls is None else max(0, max_calls - (client.stats.api_calls - start))
        report.entities[name] = drift_entity(engine, client, name, sample=sample, max_calls=left, seed=seed)
    report.api_calls = client.stats.api_calls - start
    return report
