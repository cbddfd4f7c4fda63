"""The API call inspector's write side: the engine listens to the client's exchanges, files each under the row
whose work made it, and writes them with that chunk's outcomes (one more executemany in the same transaction),
redacted, into `zoho_api_calls`, a ring of the last N calls.

Redaction (the runbook names the fields): every key in SECRET_KEYS and PERSONAL_KEYS, at any depth, in the
query, the request body and the response body, becomes "***". The client has already masked its own
credentials in what ZOHO answered; the Authorization header and OAuth calls never reach an exchange at all.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import threading
import time
from contextlib import contextmanager

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from zoho_pipeline.source.tables import zoho_api_calls as t
from zoho_pipeline.zoho.exchange import Exchange, path_template

log = logging.getLogger("zoho_pipeline.sync")

MASK = "***"
SECRET_KEYS = frozenset(
    {"access_token", "refresh_token", "client_secret", "client_id", "password", "authorization", "token", "api_key"}
)
# personal data an operator does not need to debug a refusal (names and email stay: they name the row)
PERSONAL_KEYS = frozenset({"phone", "mobile", "street", "street2", "attention", "zip", "vat_reg_no", "tax_reg_no"})
REDACTED_KEYS = SECRET_KEYS | PERSONAL_KEYS
MAX_BODY_CHARS = 16_000  # a list page of 200 customers is cut here; single entities fit
ID_SHIFT = 22  # id = milliseconds << 22 | a per-process counter: time-ordered, made without asking the database

_counter = itertools.count(random.getrandbits(ID_SHIFT))
_counter_lock = threading.Lock()


def call_id(at_ms: int | None = None) -> int:
    with _counter_lock:
        n = next(_counter)
    return ((at_ms if at_ms is not None else int(time.time() * 1000)) << ID_SHIFT) | (n & ((1 << ID_SHIFT) - 1))


def first_id_at(moment) -> int:
    """The smallest id a call made at `moment` (an aware datetime) can have: `--since` as a key range."""
    return int(moment.timestamp() * 1000) << ID_SHIFT


def redacted(value):
    """A parsed JSON value with every redacted key's value masked, at any depth (what `masked` does to text)."""
    if isinstance(value, dict):
        return {k: (MASK if str(k).lower() in REDACTED_KEYS else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


# A redacted key and its scalar value, in JSON text. Done on the bytes as sent and received, with one regex
# pass in C (parsing and re-serializing every body cost the engine a fifth of its speed). A key whose value is
# an object or a list is not in REDACTED_KEYS; keys are matched as written (lower case, as ZOHO's are).
_KEYS = b"|".join(re.escape(k.encode()) for k in sorted(REDACTED_KEYS))
_REDACT = re.compile(rb'("(?:' + _KEYS + rb')"\s*:\s*)(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^,}\]\s]+)')
_ANY_KEY = re.compile(rb'(?<=")(?:' + _KEYS + rb')(?="\s*:)')  # a quick look first: most bodies have none
_CODE = re.compile(rb'^\s*\{\s*"code"\s*:\s*(-?\d+)')


def masked(data: bytes | None) -> str | None:
    """JSON text with the redacted keys' values masked, cut at MAX_BODY_CHARS."""
    if not data:
        return None
    if _ANY_KEY.search(data):
        data = _REDACT.sub(rb'\1"***"', data)
    text = data.decode("utf-8", "replace")
    return text if len(text) <= MAX_BODY_CHARS else text[: MAX_BODY_CHARS - 1] + "…"


def zoho_code(content: bytes | None) -> int | None:
    """ZOHO's envelope code: read from the first key (where ZOHO and the emulator put it), else parsed."""
    if not content:
        return None
    found = _CODE.match(content)
    if found:
        return int(found.group(1))
    try:
        code = json.loads(content).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def entry(exchange: Exchange, run_id: str | None, entity: str | None, entity_id) -> dict:
    """The table row of one exchange."""
    return dict(
        c_id=call_id(int(exchange.at.timestamp() * 1000)),
        c_at=exchange.at,
        c_run=run_id,
        c_entity=entity,
        c_entity_id=None if entity_id is None else str(entity_id),
        c_method=exchange.method,
        c_template=path_template(exchange.path)[:255],
        c_path=exchange.path[:255],
        c_status=exchange.status,
        c_code=zoho_code(exchange.response),
        c_ms=exchange.duration_ms,
        c_query=json.dumps(redacted(exchange.params), default=str) if exchange.params else None,
        c_request=masked(exchange.request),
        c_response=masked(exchange.response),
        c_error=(exchange.error or None) and exchange.error[:64],
    )


class CallRecorder:
    """The client's observer for one run. Calls made inside `row()` are that row's; others (none today) wait
    for the next write."""

    def __init__(self, run_id: str, keep: int):
        self.run_id, self.keep = run_id, keep
        self._local = threading.local()
        self._lock = threading.Lock()
        self._loose: list[dict] = []
        self._since_prune = 0

    def observe(self, exchange: Exchange) -> None:
        current = getattr(self._local, "row", None)
        if current is None:
            with self._lock:
                self._loose.append(entry(exchange, self.run_id, None, None))
            return
        entity, entity_id, calls = current
        calls.append(entry(exchange, self.run_id, entity, entity_id))

    @contextmanager
    def row(self, entity: str, entity_id):
        """Around one row's work in a worker: yields the list its calls are filed in."""
        calls: list[dict] = []
        self._local.row = (entity, entity_id, calls)
        try:
            yield calls
        finally:
            self._local.row = None

    def write(self, conn, calls: list[dict]) -> None:
        """Insert `calls` (and any loose ones) in `conn`'s transaction; prune the ring now and then."""
        with self._lock:
            calls, self._loose = [*self._loose, *calls], []
        if not calls:
            return
        conn.execute(_insert(conn.dialect.name), calls)
        self._since_prune += len(calls)
        if self._since_prune >= max(1, self.keep // 10):  # the ring overshoots by at most a tenth
            prune(conn, self.keep)
            self._since_prune = 0


_inserts: dict[str, object] = {}


def _insert(dialect_name: str):
    """INSERT … ON CONFLICT DO NOTHING: two processes making the same id (same millisecond and counter) lose
    one inspector entry, never the chunk's outcomes."""
    if dialect_name not in _inserts:
        insert = (postgresql if dialect_name == "postgresql" else sqlite).insert
        columns = {
            "id": "c_id",
            "at": "c_at",
            "run_id": "c_run",
            "entity_type": "c_entity",
            "entity_id": "c_entity_id",
            "method": "c_method",
            "path_template": "c_template",
            "path": "c_path",
            "status": "c_status",
            "zoho_code": "c_code",
            "duration_ms": "c_ms",
            "query": "c_query",
            "request_body": "c_request",
            "response_body": "c_response",
            "error": "c_error",
        }
        values = {col: bindparam(param, type_=t.c[col].type) for col, param in columns.items()}
        _inserts[dialect_name] = insert(t).values(**values).on_conflict_do_nothing(index_elements=[t.c.id])
    return _inserts[dialect_name]


def prune(conn, keep: int) -> None:
    """Keep the newest `keep` calls: one delete below the keep-th newest id (a walk of the primary key)."""
    boundary = select(t.c.id).order_by(t.c.id.desc()).offset(max(0, keep - 1)).limit(1).scalar_subquery()
    conn.execute(t.delete().where(t.c.id < boundary))
