"""Drift: fields someone changed in ZOHO (finance edits customers and invoices in ZOHO's UI) since we last sent them.

    report = drift(engine, client, ["customers"], sample=200, max_calls=100)

For synced rows that have a stored payload (sync.payloads: what ZOHO last accepted from us), one GET by ZOHO id
per row, for a random sample the budget pays for, then each field we sent is compared with what ZOHO holds at
the same path (`billing_address.city`, `invoice_items[1].price`; money to the cent, text stripped). Fields ZOHO
does not echo are not judged; private keys (`_kind`, `_void`, …) steer actions and are not fields of the entity.
A drift is the source's data no longer in ZOHO: `zoho-pipeline retry ENTITY KEY --force` sends it back, and with
`ZOHO_DRIFT=repair` the daily check requeues the drifted rows so the next sync does. Reads only.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from zoho_pipeline.sync import payloads
from zoho_pipeline.sync.diff import flatten, same
from zoho_pipeline.sync.entities import entities, spec
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


def _held_equal(path: str, sent, held) -> bool:
    if same(path, sent, held):
        return True
    if isinstance(sent, str) and isinstance(held, str):
        return sent.strip() == held.strip()
    if isinstance(sent, int | float) and isinstance(held, int | float) and not isinstance(sent, bool):
        return float(sent) == float(held)
    return False


def field_drift(sent: dict, held: dict) -> list[tuple[str, object, object]]:
    """[(path, sent, held)] for each public field we sent that ZOHO holds with another value."""
    ours = flatten({k: v for k, v in sent.items() if not k.startswith("_")})
    theirs = flatten(held)
    return [(p, v, theirs[p]) for p, v in ours.items() if p in theirs and not _held_equal(p, v, theirs[p])]


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
    rows = [r for r in rows if str(r["id"]) in accepted]
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
        found = (
            [(p, v, None) for p, v in flatten({k: v for k, v in sent.items() if not k.startswith("_")}).items()]
            if held is None
            else field_drift(sent, held)
        )
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
