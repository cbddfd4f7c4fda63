"""What an entity module supplies to the engine and to the read side, and the small helpers every mapping shares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import Select, Table, Text, cast, func, literal

VAT_RATE = Decimal("0.15")
CENT = Decimal("0.01")


class InvalidRow(Exception):
    """Our own validation refused the row before any call: it fails alone, naming the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class Waiting(Exception):
    """The row's change is due in ZOHO on a later day (a cancellation dated in the future): it waits until `until`
    (an aware datetime), retrying then, with no attempt charged and nothing sent."""

    def __init__(self, message: str, until):
        self.until = until
        super().__init__(message)


class ParentNotReady(Exception):
    """A parent the row needs has no ZOHO id (it failed, or is being synced by another run).
    `retry_at`: when the parent itself is next tried (None: only when its data changes or on request)."""

    def __init__(self, message: str, retry_at=None):
        self.retry_at = retry_at
        super().__init__(message)


class WaitingForLink(Waiting):
    """A payment on a recurring invoice whose ZOHO twin is not linked yet: it waits (nothing sent, no attempt
    charged) until `until` — the end of ZOHO_RECURRING_LINK_WAIT_H — and the linking pass that finds the link makes
    it due at once (entities.recurring)."""


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
class Collection:
    """How ZOHO lists and fetches one kind of entity: `GET {path}` (list under `key`), `GET {path}/{id}`."""

    path: str  # "/customers"
    key: str  # the list's key, "customers"; one entity's key is the singular, "customer"
    id_field: str  # "customer_id"
    list_filter: str | None = None  # `filter_by` that lists every status (void, cancelled, inactive included)
    needs: tuple[str, ...] = ()  # list-item keys that make a GET by id unnecessary for comparing

    @property
    def one(self) -> str:
        return self.key[:-1]


@dataclass(frozen=True)
class Reconciliation:
    """What `monitor.reconcile` compares for an entity; the listing, matching and verdicts live there, once."""

    collections: tuple[Collection, ...]  # what ZOHO lists for this entity (invoices: invoices and credit notes)
    columns: Callable[[], tuple[list, object]]  # (source columns incl. `ref`, the FROM clause) beyond id/label/status
    reference: Callable[[Mapping], str | None]  # our stable reference on a ZOHO item
    compare: Callable[[Mapping, Mapping], list[tuple]]  # (row, ZOHO entity) → [(field, source, ZOHO, note)]
    zoho_label: Callable[[Mapping], str]  # a ZOHO item no source row explains, as a person knows it
    collection_of: Callable[[Mapping], int] = lambda row: 0  # index in `collections` of the row's own kind
    matches_by: tuple[str, str] | None = None  # (row column, item key) matching an item without our reference
    duplicates: bool = True  # a reference on two ZOHO entities is a duplicate (plans: the reference is the id)
    gone: Callable[[Mapping], bool] = lambda row: False  # the row's ZOHO entity is meant to be deleted (a bounce)
    # a ZOHO item that is history, not a duplicate: it ended, and its reference's row now links another entity
    # (a cancelled subscription replaced by a new one when its service came back)
    superseded: Callable[[Mapping], bool] = lambda item: False
    foreign: Callable[[Mapping], bool] = lambda item: False  # raised by ZOHO for another entity's action (a refund)


NOT_SENT = object()  # DriftField.absent's default: a key the payload leaves out is not judged


@dataclass(frozen=True)
class DriftField:
    """A field of our payload that ZOHO's GET of the entity shows, for the drift check (monitor.drift judges).

    `ours` is its path in the payload, `[]` standing for every item of a list (`invoice_items[].price`); `zoho` its
    path in ZOHO's answer where ZOHO names or nests it otherwise (default: the same path), list items matched by
    position. Values agree when equal (texts stripped, numbers as numbers), to the cent with `money`, or as
    `agrees(ours, ZOHO's)` says for a flag ZOHO shows as a status (our `_active: true` is ZOHO's "active")."""

    ours: str
    zoho: str | None = None
    money: bool = False
    agrees: Callable[[object, object], bool] | None = None
    absent: object = NOT_SENT  # our value when the payload leaves the key out (a flag set only when true)

    @property
    def held_at(self) -> str:
        return self.zoho or self.ours


def drift_fields(*paths: str, money: tuple[str, ...] = ()) -> tuple[DriftField, ...]:
    """Fields ZOHO shows under the names we send them (`money`: those of them that are amounts)."""
    return tuple(DriftField(p, money=p in money) for p in (*paths, *money))


def status_flag(ours: str, meaning: Callable[[str], bool], **kw) -> DriftField:
    """A private flag of ours that ZOHO shows as the entity's `status`: `meaning(status)` is the flag's value."""
    return DriftField(ours, "status", agrees=lambda flag, status: bool(flag) == meaning(str(status or "")), **kw)


@dataclass(frozen=True)
class EntitySpec:
    name: str
    table: Table
    zoho_id_column: str
    select: Callable[[], Select]  # the table's columns plus any joined ones the mapping needs
    eligible: Callable[[Table], object]  # where-clause: the rows this entity pushes
    label: Callable[[Mapping], str]  # the row as a person knows it
    label_sql: Callable[[], object]  # the same label as a SQL expression, for the read side
    parents: Callable[[Mapping], list[tuple[str, str]]]  # (entity, source id) the row needs in ZOHO first
    build: Callable[[Mapping, object], dict]  # row + context → payload; raises InvalidRow
    create: Callable[[object, dict, Mapping, object], str]  # → new ZOHO id
    update: Callable[[object, str, dict, Mapping, object], None]
    lookup: Callable[[object, dict, Mapping, object], str | None]  # find our entity again by reference
    reconcile: Reconciliation
    aliases: tuple[str, ...] = ()  # other names an operator or a log row may give the entity (singular, table)
    natural_keys: tuple[str, ...] = ()  # columns a person finds a row by (unique values only), in order
    month_column: str | None = None  # partition date column (invoices, payments)
    # where month_column may be empty (a bounced payment's completed_at): the row's month is this column's instead
    month_fallback: str | None = None
    lookup_key: Callable[[Mapping], str] | None = None  # row → reference written with the claim, for a look-up
    children: tuple[tuple[str, str], ...] = ()  # (child entity, its column holding our id): woken when we recover
    # (payload, creating) → the calls one attempt makes (the dry run's estimate): lifecycle actions may cost more
    calls: Callable[[dict, bool], int] = lambda payload, creating: 1
    # work before the entity's rows: (engine, client, months, SyncSettings) → a report with as_dict()
    # (invoices: link the provider's recurring invoices to the ones ZOHO raised)
    before_sync: Callable[[object, object, object, object], object] | None = None
    # a dry run's estimate of that work, from the source alone: (engine, months, SyncSettings, {entity: ids it
    # would create} for the entities the run has dry-run before) → a report with as_dict() holding
    # `estimated_calls` (invoices: how many recurring invoices would be linked, and would wait)
    before_sync_estimate: Callable[[object, object, object, dict], object] | None = None
    # in the transaction that records a chunk's updates ZOHO accepted: (conn, {id: payload ZOHO accepted before},
    # {id: payload it accepted now}) → None (customers: a reopened account's live services are sent again, in the
    # same run). Creates have no "before": they are left out, so a first sync pays no read for it
    after_record: Callable[[object, dict, dict], None] | None = None
    # the payload's fields ZOHO's GET shows, and where: what the drift check compares (nothing else is judged)
    drift: tuple[DriftField, ...] = ()
    # True: a row in doubt is updated even when its hash is the one ZOHO last accepted (its source went back to
    # that payload after an attempt that may have acted: a lost markasinactive, then a reopening), and its update
    # reads ZOHO's state. Only where an update of an unchanged payload is safe to repeat (customers); elsewhere
    # the equal hash skips it as before (a credit note's update, for one, refuses any update)
    update_in_doubt: bool = False

    @property
    def zoho_id(self):
        """The column holding the row's ZOHO id."""
        return self.table.c[self.zoho_id_column]

    def where_eligible(self):
        return self.eligible(self.table)

    def holds(self, row: Mapping, digest: str, mode: str) -> bool:
        """ZOHO holds this payload already (zero calls): the row has a ZOHO id, the hash ZOHO last accepted is
        `digest`, the run is not `--mode all`, and no attempt since may have left ZOHO elsewhere (update_in_doubt)."""
        if not row[self.zoho_id_column] or digest != row["zoho_payload_hash"] or mode == "all":
            return False
        return not (self.update_in_doubt and row["zoho_create_in_doubt"])

    @property
    def month_date(self):
        """The row's partition date as SQL (None when unpartitioned): every row belongs to exactly one month."""
        if not self.month_column:
            return None
        column = self.table.c[self.month_column]
        if self.month_fallback:
            return func.coalesce(column, self.table.c[self.month_fallback])
        return column


MAX_TEXT = 2000  # the longest text ZOHO takes in any field we send (notes, descriptions); names are held shorter


PLAUSIBLE_DATES = (date(1900, 1, 1), date(2200, 1, 1))  # a business date outside is a typo, never sent


def sendable(row, path: str = "") -> None:
    """InvalidRow naming the source field when a text of the row (nested JSON included: `line_items[1].description`)
    holds a NUL byte (ZOHO and Postgres refuse it) or is longer than ZOHO takes, or a date of the provider's is
    outside PLAUSIBLE_DATES; the engine checks every row of every entity before its mapping, so before any call."""
    if isinstance(row, Mapping):
        for key, value in row.items():
            if isinstance(value, date) and not path and not str(key).startswith("zoho_"):
                day = value.date() if isinstance(value, datetime) else value
                if not PLAUSIBLE_DATES[0] <= day < PLAUSIBLE_DATES[1]:
                    raise InvalidRow(str(key), f"{value.isoformat()} is not a plausible date (1900 to 2199)")
            sendable(value, f"{path}.{key}" if path else str(key))
    elif isinstance(row, list):
        for i, value in enumerate(row, start=1):
            sendable(value, f"{path}[{i}]")
    elif isinstance(row, str):
        if "\x00" in row:
            raise InvalidRow(path, "contains a NUL byte")
        if len(row) > MAX_TEXT:
            raise InvalidRow(path, f"is {len(row)} characters; ZOHO takes at most {MAX_TEXT}")


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


def canonical_json(payload: dict) -> str:
    """The payload as compact JSON with sorted keys: what the hash digests and the payload store keeps."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def text_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def known_previous(ctx, payload: dict) -> dict | None:
    """What ZOHO last accepted for the row, for a lifecycle to send only what changed; None when nothing is kept,
    or when it equals `payload` (a re-send asked for: a repair, mode `all`), so ZOHO's own state is read instead."""
    previous = ctx.previous_payload()
    if previous is None or canonical_json(previous) == canonical_json(payload):
        return None
    return previous


def payload_hash(payload: dict) -> str:
    return text_hash(canonical_json(payload))


def public(payload: dict, drop: tuple[str, ...] = ()) -> dict:
    """The payload without the private keys (leading underscore) that steer lifecycle actions, nor `drop`."""
    return {k: v for k, v in payload.items() if not k.startswith("_") and k not in drop}


def no_parents(row: Mapping) -> list[tuple[str, str]]:
    return []


def find_by_reference(
    client, path: str, key: str, id_field: str, ref_field: str, ref: str, params: dict | None = None
) -> str | None:
    """The id of the listed entity whose `ref_field` equals `ref` exactly (ZOHO's filters may match loosely)."""
    for found in client.iter_list(path, key, params=params):
        if found.get(ref_field) == ref:
            return str(found[id_field])
    return None


def sql_text(value) -> object:
    """A column or expression as text for a label; '?' where it is NULL."""
    return func.coalesce(cast(value, Text), literal("?", Text))


def sql_join(*parts) -> object:
    """Label parts concatenated in SQL: strings are literals, anything else `sql_text`."""
    exprs = [literal(p, Text) if isinstance(p, str) else sql_text(p) for p in parts]
    out = exprs[0]
    for e in exprs[1:]:
        out = out + e
    return out


def cents(value) -> Decimal | None:
    """An amount as ZOHO or the source hold it, to the cent; None when empty or not a number (for comparing)."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None


def money_differs(field: str, source, zoho, note: str = "") -> list[tuple]:
    """[(field, source, ZOHO, note)] when the two amounts differ to the cent, else []."""
    if cents(source) == cents(zoho):
        return []
    return [(field, str(cents(source)), str(cents(zoho)), note)]


def text_differs(field: str, source, zoho, fold: bool = False, limit: int | None = None) -> list[tuple]:
    """[(field, source, ZOHO, "")] when the stripped texts differ (case-folded with `fold`, source cut at
    `limit`)."""
    a, b = (source or "").strip()[:limit], (zoho or "").strip()
    if fold:
        a, b = a.lower(), b.lower()
    return [] if a == b else [(field, source, zoho, "")]
