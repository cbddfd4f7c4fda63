"""The API call inspector's write side: the engine listens to the client's exchanges, files each under the row
whose work made it, and writes them with that chunk's outcomes (one more executemany in the same transaction),
redacted, into `zoho_api_calls`, a ring of the last N calls.

Redaction (the runbook names the fields): every key in SECRET_KEYS and PERSONAL_KEYS, at any depth, in the
query, the request body and the response body, becomes "***". The client has already masked its own
credentials in what ZOHO answered; the Authorization header and OAuth calls never reach an exchange at all.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import random
import re
import threading
import time
from contextlib import contextmanager

from sqlalchemy import select

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


COLUMNS = (
    "id",
    "at",
    "run_id",
    "entity_type",
    "entity_id",
    "method",
    "path_template",
    "path",
    "status",
    "zoho_code",
    "duration_ms",
    "query",
    "request_body",
    "response_body",
    "error",
)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite (naive UTC)


def entry(exchange: Exchange, run_id, entity, entity_id, *, all_bodies: bool = True, sqlite_time: bool = False):
    """The table row of one exchange, a tuple in COLUMNS order (written by the DB-API directly: this runs once
    per call, and SQLAlchemy's per-parameter processing was a third of its cost). The bodies only of failed
    calls unless `all_bodies`."""
    status, at = exchange.status, exchange.at
    bodies = all_bodies or status is None or status >= 400
    return (
        call_id(int(at.timestamp() * 1000)),
        at.replace(tzinfo=None).strftime(SQLITE_TIME) if sqlite_time else at,
        run_id,
        entity,
        None if entity_id is None else str(entity_id),
        exchange.method,
        path_template(exchange.path)[:255],
        exchange.path[:255],
        status,
        zoho_code(exchange.response),
        exchange.duration_ms,
        json.dumps(redacted(exchange.params), default=str) if exchange.params else None,
        masked(exchange.request) if bodies else None,
        masked(exchange.response) if bodies else None,
        (exchange.error or None) and exchange.error[:64],
    )


class CallRecorder:
    """The client's observer for one run. Calls made inside `row()` are that row's; others (none today) wait
    for the next write. `all_bodies`: keep the bodies of successful calls too (ZOHO_INSPECTOR_BODIES=all)."""

    def __init__(self, run_id: str, keep: int, *, dialect: str, all_bodies: bool = False):
        self.run_id, self.keep, self.all_bodies = run_id, keep, all_bodies
        self._sqlite = dialect == "sqlite"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._loose: list[tuple] = []
        self._since_prune = 0

    def _entry(self, exchange, entity, entity_id) -> tuple:
        return entry(exchange, self.run_id, entity, entity_id, all_bodies=self.all_bodies, sqlite_time=self._sqlite)

    def observe(self, exchange: Exchange) -> None:
        current = getattr(self._local, "row", None)
        if current is None:
            with self._lock:
                self._loose.append(self._entry(exchange, None, None))
            return
        entity, entity_id, calls = current
        calls.append(self._entry(exchange, entity, entity_id))

    @contextmanager
    def row(self, entity: str, entity_id):
        """Around one row's work in a worker: yields the list its calls are filed in."""
        calls: list[tuple] = []
        self._local.row = (entity, entity_id, calls)
        try:
            yield calls
        finally:
            self._local.row = None

    def write(self, conn, calls: list[tuple]) -> None:
        """Insert `calls` (and any loose ones) in `conn`'s transaction; prune the ring now and then."""
        with self._lock:
            calls, self._loose = [*self._loose, *calls], []
        if not calls:
            return
        if conn.dialect.paramstyle == "qmark":  # SQLite: executemany runs in process, no round trips
            conn.exec_driver_sql(_insert_sql("?", 1), calls)
        else:  # Postgres: one statement of many rows (psycopg2's executemany is a round trip per row)
            conn.exec_driver_sql(_insert_sql("%s", len(calls)), tuple(v for call in calls for v in call))
        self._since_prune += len(calls)
        if self._since_prune >= max(1, self.keep // 10):  # the ring overshoots by at most a tenth
            prune(conn, self.keep)
            self._since_prune = 0


@functools.lru_cache(maxsize=64)
def _insert_sql(marker: str, rows: int) -> str:
    """INSERT … ON CONFLICT DO NOTHING (SQLite ≥ 3.24, Postgres) of `rows` rows: two processes making the same
    id (same millisecond and counter) lose one inspector entry, never the chunk's outcomes."""
    group = f"({', '.join([marker] * len(COLUMNS))})"
    return f"INSERT INTO {t.name} ({', '.join(COLUMNS)}) VALUES {', '.join([group] * rows)} ON CONFLICT (id) DO NOTHING"


def prune(conn, keep: int) -> None:
    """Keep the newest `keep` calls: one delete below the keep-th newest id (a walk of the primary key)."""
    boundary = select(t.c.id).order_by(t.c.id.desc()).offset(max(0, keep - 1)).limit(1).scalar_subquery()
    conn.execute(t.delete().where(t.c.id < boundary))
