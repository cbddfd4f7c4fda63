"""One module per entity: how to select its rows, map one to a ZOHO payload, its parents, its look-up, and what
reconciliation compares. A new entity is one new module plus its line in SPECS (in sync order)."""

from collections.abc import Iterable

from zoho_pipeline.sync.entities import customers, invoices, payments, plans, subscriptions
from zoho_pipeline.sync.entities.base import EntitySpec
from zoho_pipeline.sync.settings import ENTITY_ORDER

SPECS: dict[str, EntitySpec] = {m.SPEC.name: m.SPEC for m in (plans, customers, subscriptions, invoices, payments)}
assert tuple(SPECS) == ENTITY_ORDER, "SPECS lists the entities in sync order"
_BY_ALIAS = {alias: spec.name for spec in SPECS.values() for alias in (spec.name, *spec.aliases)}


def entity_name(value: str) -> str:
    """The canonical entity name for an entity name, a singular, or a table name; ValueError otherwise."""
    key = (value or "").strip().lower()
    if key not in _BY_ALIAS:
        raise ValueError(f"unknown entity {value!r}: expected one of {', '.join(ENTITY_ORDER)}")
    return _BY_ALIAS[key]


def spec(entity: str) -> EntitySpec:
    """The EntitySpec of an entity given by any of its names."""
    return SPECS[entity_name(entity)]


def entity_aliases(entity: str) -> tuple[str, ...]:
    """Every name of the entity (a log row may carry any of them)."""
    spec = SPECS[entity_name(entity)]
    return (spec.name, *spec.aliases)


def entities(selected: str | Iterable[str] | None = None) -> list[str]:
    """Canonical entity names in sync order; all of them for None."""
    if selected is None:
        return list(ENTITY_ORDER)
    wanted = {entity_name(e) for e in ([selected] if isinstance(selected, str) else selected)}
    return [e for e in ENTITY_ORDER if e in wanted]
