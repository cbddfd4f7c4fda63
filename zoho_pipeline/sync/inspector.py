"""The API call inspector's write side: the engine listens to the client's exchanges, files each under the row
whose work made it, and writes them with that chunk's outcomes (one more statement in the same transaction),
redacted, into `zoho_api_calls`, a ring of the last N calls.

Its cost is the engine's (target: engine CPU per row within 2 % with it on), so a worker only files the
exchange (a list append); the table's rows are built a chunk at a time when they are written, and a body is
masked and redacted only when it is kept (failed calls' by default). An inspector row that cannot be written
is lost alone: the chunk's outcomes, in the same transaction, are kept.

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

from zoho_pipeline.source.database import storable
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

ID_LOW = (1 << ID_SHIFT) - 1
_counter = itertools.count(random.getrandbits(ID_SHIFT))  # next() on it is atomic under the GIL: no lock


def call_id(at_ms: int | None = None) -> int:
    return ((at_ms if at_ms is not None else int(time.time() * 1000)) << ID_SHIFT) | (next(_counter) & ID_LOW)


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


def masked(data: bytes | None) -> str | None:
    """JSON text with the redacted keys' values masked, cut at MAX_BODY_CHARS, storable (a NUL replaced)."""
    if not data:
        return None
    if _ANY_KEY.search(data):
        data = _REDACT.sub(rb'\1"***"', data)
    text = storable(data.decode("utf-8", "replace"))
    return text if len(text) <= MAX_BODY_CHARS else text[: MAX_BODY_CHARS - 1] + "…"


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
HEAD = COLUMNS[:11]  # the columns every call has; a call without query, bodies or error is written with these


class RowCalls(list):
    """One row's exchanges, in the order made; `last_id` is the inspector id of the last, once written."""

    __slots__ = ("entity", "entity_id", "last_id")  # set by CallRecorder.start (no __init__: made once a row)


class _Current(threading.local):
    calls: RowCalls | None = None  # the row a worker thread is working on


class CallRecorder:
    """The client's observer for one run. Calls made between `start()` and `stop()` in a worker are that row's;
    others (none today) go with the next write. `all_bodies`: keep the bodies of successful calls too
    (ZOHO_INSPECTOR_BODIES=all)."""

    def __init__(self, run_id: str, keep: int, *, all_bodies: bool = False):
        self.run_id, self.keep, self.all_bodies = run_id, keep, all_bodies
        self._current = _Current()
        self._lock = threading.Lock()
        self._loose: list[Exchange] = []
        self._since_prune = 0

    def observe(self, exchange: Exchange) -> None:
        calls = self._current.calls
        if calls is None:
            with self._lock:
                self._loose.append(exchange)
        else:
            calls.append(exchange)

    def start(self, entity: str, entity_id) -> RowCalls:
        """A worker begins one row's work: the calls it makes until `stop()` are filed in the list returned."""
        calls = self._current.calls = RowCalls()
        calls.entity, calls.entity_id, calls.last_id = entity, entity_id, None
        return calls

    def stop(self) -> None:
        self._current.calls = None

    @contextmanager
    def row(self, entity: str, entity_id):
        """`start` … `stop` around a block."""
        try:
            yield self.start(entity, entity_id)
        finally:
            self.stop()

    def write(self, conn, batches: list[RowCalls]) -> None:
        """Insert the calls of `batches` (and any loose ones) in `conn`'s transaction; prune the ring now and
        then. A failure here is logged and loses these calls only, never the transaction's other writes."""
        with self._lock:
            loose, self._loose = self._loose, []
        if loose:
            batches = [*batches, RowCalls(loose)]
            batches[-1].entity = batches[-1].entity_id = None
        rows = self._rows(batches)
        if not rows:
            return
        try:
            insert(conn, rows)
        except Exception:
            log.exception("the API call inspector could not keep %d call(s); the outcomes are kept", len(rows))
            return
        self._since_prune += len(rows)
        if self._since_prune >= max(1, self.keep // 10):  # the ring overshoots by at most a tenth
            prune(conn, self.keep)
            self._since_prune = 0

    def finish(self, engine) -> None:
        """At the end of the run: prune the ring if this run wrote calls since it last did. A run of fewer than
        keep/10 calls never reaches the prune in `write`, so many small runs (a sensor's, every minute) grew the
        table without bound. One DELETE per run that made calls."""
        if self._since_prune:
            with engine.begin() as conn:
                prune(conn, self.keep)
            self._since_prune = 0

    def _rows(self, batches: list[RowCalls]) -> list[tuple]:
        """The table's rows (tuples in COLUMNS order, HEAD only for a call with nothing more to keep), built in
        one loop for the chunk: the DB-API gets them directly (SQLAlchemy's per-parameter processing was a
        third of the cost). Bodies are masked only when kept: always with `all_bodies`, else a failed call's."""
        rows, run_id, all_bodies = [], self.run_id, self.all_bodies
        for calls in batches:
            entity, entity_id = calls.entity, calls.entity_id
            entity_id = None if entity_id is None else storable(str(entity_id))
            for x in calls:
                at, status, code = x.at, x.status, x.zoho_code
                ident = (int(at * 1000) << ID_SHIFT) | (next(_counter) & ID_LOW)
                head = (
                    ident,
                    at,  # seconds since the epoch: the database makes the timestamp
                    run_id,
                    entity,
                    entity_id,
                    x.method,
                    storable(path_template(x.path)[:255]),  # the text from elsewhere is made storable (no NUL)
                    storable(x.path[:255]),
                    status,
                    code,
                    x.duration_ms,
                )
                # a failed call as monitor.calls.failed_clause says: no answer, HTTP >= 400 or a ZOHO code
                kept = all_bodies or status is None or status >= 400 or (code is not None and code != 0)
                if kept or x.params or x.error:
                    rows.append(
                        head
                        + (
                            json.dumps(redacted(x.params), default=str) if x.params else None,
                            masked(x.request) if kept else None,
                            masked(x.response) if kept else None,
                            (x.error or None) and storable(x.error[:64]),
                        )
                    )
                else:
                    rows.append(head)
                calls.last_id = ident
        return rows


def insert(conn, rows: list[tuple]) -> None:
    """INSERT … ON CONFLICT DO NOTHING (SQLite ≥ 3.24, Postgres): two processes making the same id (same
    millisecond and counter) lose one inspector entry, never the chunk's outcomes.

    The time is bound as seconds since the epoch and made a timestamp by the database (SQLite: the text
    SQLAlchemy reads back, to the millisecond, as the id; Python's formatting cost more than the rest of the
    row). SQLite (in process, no round trips): one executemany per shape, HEAD rows and full rows, because the
    sqlite3 module adapts every None it binds through its adapter registry (a failed lookup each; the four
    empty detail columns cost more than the rest of the row). Postgres: the chunk as one JSON text parameter
    (json.dumps in C; psycopg2 quotes each of hundreds of parameters in Python otherwise), in a savepoint sent
    in the same round trip, so a refused row (a text Postgres cannot hold) rolls back the inspector's insert
    alone and the transaction goes on."""
    if conn.dialect.paramstyle == "qmark":
        for columns in (HEAD, COLUMNS):
            same = [r for r in rows if len(r) == len(columns)]
            if same:
                conn.exec_driver_sql(_sqlite_insert(columns), same)
        return
    try:
        conn.exec_driver_sql(_PG_INSERT, (json.dumps(rows),))
    except Exception:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT zoho_api_calls")
        raise


@functools.lru_cache(maxsize=4)
def _sqlite_insert(columns: tuple[str, ...]) -> str:
    marks = ", ".join("strftime('%Y-%m-%d %H:%M:%f', ?, 'unixepoch')" if c == "at" else "?" for c in columns)
    return f"INSERT INTO {t.name} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"


def _pg_insert() -> str:
    types = dict(id="bigint", status="integer", zoho_code="integer", duration_ms="integer")
    values = [
        "to_timestamp((r->>1)::float8)" if c == "at" else f"(r->>{k})" + (f"::{types[c]}" if c in types else "")
        for k, c in enumerate(COLUMNS)
    ]
    # a HEAD row's missing detail is NULL (->> past the end of the array)
    return (
        f"SAVEPOINT zoho_api_calls; INSERT INTO {t.name} ({', '.join(COLUMNS)}) SELECT {', '.join(values)} "
        "FROM json_array_elements(%s::json) AS r ON CONFLICT (id) DO NOTHING; RELEASE SAVEPOINT zoho_api_calls"
    )


_PG_INSERT = _pg_insert()


def prune(conn, keep: int) -> None:
    """Keep the newest `keep` calls: one delete below the keep-th newest id (a walk of the primary key)."""
    boundary = select(t.c.id).order_by(t.c.id.desc()).offset(max(0, keep - 1)).limit(1).scalar_subquery()
    conn.execute(t.delete().where(t.c.id < boundary))
