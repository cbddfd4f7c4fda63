"""Field-level diff of a row's payload against the one ZOHO last accepted: what a dry run says a run would change.

Nested keys are named by path (`billing_address.city`, `invoice_items[1].price`, lists counted from 1 as the
row errors count them); money is compared to the cent and shown as money (`R 799.00`), so 799 and 799.0 are
the same amount. A row never synced shows as a create with its whole payload; an unchanged one shows nothing.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

CURRENCY_SYMBOL = "R"  # ZAR, the organization's currency: the diff and the drift report are where money is shown
ABSENT = None  # a key one side does not have; shown as "—"
_INDEX = re.compile(r"\[\d+\]")


@dataclass
class FieldChange:
    path: str
    old: object  # the JSON value ZOHO last accepted (None: absent)
    new: object  # the JSON value the run would send (None: absent)


@dataclass
class RowDiff:
    entity: str
    entity_id: str
    label: str
    action: str  # create, update
    changes: list[FieldChange] = field(default_factory=list)
    previous_known: bool = True  # False: synced before the payload store, so every field is shown as new

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RowDiff:
        changes = [FieldChange(**c) for c in data.get("changes") or []]
        return cls(**{**data, "changes": changes})


def flatten(value, prefix: str = "") -> dict[str, object]:
    """{path: leaf value}; an empty object or list is a leaf of its own."""
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for n, item in enumerate(value, start=1):
            out.update(flatten(item, f"{prefix}[{n}]"))
        return out
    return {prefix: value}


def is_money(path: str) -> bool:
    return _last_key(path) in money_keys()


@functools.cache
def money_keys() -> frozenset[str]:
    """Payload keys holding amounts, by their last path segment. The entity modules say which fields are money
    (their DRIFT declarations, by our name and ZOHO's), so it is said once."""
    from zoho_pipeline.sync.entities import SPECS  # the registry imports the mappings, which import nothing here

    return frozenset(
        _last_key(path) for spec in SPECS.values() for f in spec.drift if f.money for path in (f.ours, f.held_at)
    )


def _last_key(path: str) -> str:
    return _INDEX.sub("", path.rsplit(".", 1)[-1]).removesuffix("[]")


def _cents(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def same(path: str, old, new) -> bool:
    if is_money(path) and old is not None and new is not None:
        a, b = _cents(old), _cents(new)
        if a is not None and b is not None:
            return a == b
    return old == new


def field_changes(old: dict | None, new: dict) -> list[FieldChange]:
    """The leaves that differ, in the new payload's order, then those only the old one has."""
    before, after = flatten(old or {}), flatten(new)
    paths = list(after) + [p for p in before if p not in after]
    return [
        FieldChange(p, before.get(p, ABSENT), after.get(p, ABSENT))
        for p in paths
        if not same(p, before.get(p, ABSENT), after.get(p, ABSENT))
    ]


def row_diff(entity: str, entity_id, label: str, new: dict, *, in_zoho: bool, old: dict | None) -> RowDiff | None:
    """The diff of one row that would be sent; None when no field would change. `in_zoho`: the row has a ZOHO
    id (an update); `old`: the last accepted payload, None when the store has none for it."""
    new = json.loads(json.dumps(new, default=str))  # as the store holds it: dates and Decimals as text
    if not in_zoho:
        return RowDiff(entity, str(entity_id), label, "create", field_changes(None, new))
    if old is None:
        return RowDiff(entity, str(entity_id), label, "update", field_changes(None, new), previous_known=False)
    changes = field_changes(old, new)
    return RowDiff(entity, str(entity_id), label, "update", changes) if changes else None


# --- presenting ------------------------------------------------------------------------------------------------


def show(path: str, value) -> str:
    """A value as an operator reads it: money as money, absent as —, everything else as JSON."""
    if value is ABSENT:
        return "—"
    if is_money(path) and _cents(value) is not None:
        return f"{CURRENCY_SYMBOL} {_cents(value)}"
    return json.dumps(value, ensure_ascii=False, default=str)


def summary(diffs: list[RowDiff]) -> dict[str, dict]:
    """{entity: {"create": n, "update": n, "fields": {path with [*] for list positions: rows}}}, per entity."""
    out: dict[str, dict] = {}
    for d in diffs:
        ent = out.setdefault(d.entity, {"create": 0, "update": 0, "fields": Counter()})
        ent[d.action] += 1
        if d.action == "update" and d.previous_known:
            ent["fields"].update({_INDEX.sub("[*]", c.path) for c in d.changes})
    return out


def summary_lines(diffs: list[RowDiff]) -> list[str]:
    lines = []
    for entity, ent in summary(diffs).items():
        fields = ", ".join(f"{p} ×{n}" for p, n in ent["fields"].most_common())
        lines.append(
            f"{entity}: {ent['create']} to create, {ent['update']} to update" + (f" ({fields})" if fields else "")
        )
    return lines


def format_text(diffs: list[RowDiff], limit: int | None = None) -> str:
    """Summary per entity first, then each row's fields old → new (the first `limit` rows)."""
    if not diffs:
        return "No row would change."
    out = ["Would change:", *(f"  {line}" for line in summary_lines(diffs)), ""]
    for d in diffs[:limit]:
        out.append(f"{d.action} {d.entity} {d.label} (id {d.entity_id})")
        if not d.previous_known:
            out.append("    (the payload ZOHO last accepted is not stored yet: every field shown as sent)")
        for c in d.changes:
            whole = d.action == "create" or not d.previous_known
            before = "" if whole else f"{show(c.path, c.old)} → "
            out.append(f"    {c.path}: {before}{show(c.path, c.new)}")
    if limit is not None and len(diffs) > limit:
        out.append(f"… and {len(diffs) - limit} more rows")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(diffs: list[RowDiff]) -> str:
    """The whole diff as Markdown: the per-entity summary, then one table row per changed field."""
    if not diffs:
        return "No row would change."
    lines = ["## Would change", "", *(f"- {line}" for line in summary_lines(diffs)), ""]
    lines += ["| entity | row | action | field | old | new |", "|---|---|---|---|---|---|"]
    for d in diffs:
        for c in d.changes:
            old = "—" if d.action == "create" or not d.previous_known else show(c.path, c.old)
            lines.append(
                f"| {d.entity} | {_cell(d.label)} | {d.action} | `{c.path}` | {_cell(old)} | "
                f"{_cell(show(c.path, c.new))} |"
            )
    return "\n".join(lines)
