"""What an entity module supplies to the engine, and the small helpers every mapping shares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import Select, Table

VAT_RATE = Decimal("0.15")
CENT = Decimal("0.01")


class InvalidRow(Exception):
    """Our own validation refused the row before any call: it fails alone, naming the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class ParentNotReady(Exception):
    """A parent the row needs has no ZOHO id (it failed, or is being synced by another run).
    `retry_at`: when the parent itself is next tried (None: only when its data changes or on request)."""

    def __init__(self, message: str, retry_at=None):
        self.retry_at = retry_at
        super().__init__(message)


@dataclass(frozen=True)
class ParentInfo:
    entity: str
    id: str
    label: str
    zoho_id: str | None
    status: str | None
    error: str | None
    next_attempt_at: object = None


@dataclass(frozen=True)
class EntitySpec:
    name: str
    table: Table
    zoho_id_column: str
    select: Callable[[], Select]  # the table's columns plus any joined ones the mapping needs
    eligible: Callable[[Table], object]  # where-clause: the rows this entity pushes
    label: Callable[[Mapping], str]  # the row as a person knows it
    parents: Callable[[Mapping], list[tuple[str, str]]]  # (entity, source id) the row needs in ZOHO first
    build: Callable[[Mapping, "object"], dict]  # row + context → payload; raises InvalidRow
    create: Callable[["object", dict, Mapping, "object"], str]  # → new ZOHO id
    update: Callable[["object", str, dict, Mapping, "object"], None]
    lookup: Callable[["object", dict, Mapping, "object"], str | None]  # find our entity again by reference
    month_column: str | None = None  # partition date column (invoices, payments)
    lookup_key: Callable[[Mapping], str] | None = None  # row → reference written with the claim, for a look-up
    children: tuple[tuple[str, str], ...] = ()  # (child entity, its column holding our id): woken when we recover
    label_sql: Callable[[], object] | None = None  # SQL expression of the label, for read-side queries


MAX_AMOUNT = Decimal("9999999999.99")  # numeric(12,2): anything larger is not a real amount


def money(value, field: str) -> Decimal:
    """A two-decimal amount, or InvalidRow naming the field (bools, NaN, huge JSON numbers included)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        amount = Decimal(str(value))
        if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
            raise ValueError
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidRow(field, f"{value!r} is not an amount") from None


def vat(amount: Decimal) -> Decimal:
    return (amount * VAT_RATE).quantize(CENT, rounding=ROUND_HALF_UP)


def payload_hash(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def public(payload: dict, drop: tuple[str, ...] = ()) -> dict:
    """The payload without the private keys (leading underscore) that steer lifecycle actions, nor `drop`."""
    return {k: v for k, v in payload.items() if not k.startswith("_") and k not in drop}


def no_parents(row: Mapping) -> list[tuple[str, str]]:
    return []


def find_by_reference(client, path: str, key: str, id_field: str, ref_field: str, ref: str,
                      params: dict | None = None) -> str | None:
    """The id of the listed entity whose `ref_field` equals `ref` exactly (ZOHO's filters may match loosely)."""
    for found in client.iter_list(path, key, params=params):
        if found.get(ref_field) == ref:
            return str(found[id_field])
    return None
