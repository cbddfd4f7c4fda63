"""Transient source-database errors (a restart, a terminated backend, a failover, a busy SQLite file) retried with
backoff inside the run, so one dropped connection does not end the run and skip the entities after it.

Only errors that say the connection or the server went away (or a lock that will clear) are retried; a wrong
query or a constraint fails at once. Every retried step is a whole transaction that either committed or rolled
back, and the claims are compare-and-set on the claim's own values, so repeating one never claims or records a
row twice (claims.claim_rows is given the same claim time on each try, to recognise its own committed claim).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import sqlalchemy as sa

log = logging.getLogger("zoho_pipeline.sync")

ATTEMPTS = 7  # about 30 s of backoff in all: a restart or a failover, not an outage (that still fails the run)
BASE_DELAY_S = 0.5
MAX_DELAY_S = 10.0
# Postgres SQLSTATEs: connection exceptions (08…), admin/crash shutdown and cannot-connect-now (57P01-03),
# serialization failure and deadlock (40001, 40P01), too many connections (53300)
_PG_CODES = {"57P01", "57P02", "57P03", "40001", "40P01", "53300"}
_MESSAGES = (
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "could not connect",
    "is not currently accepting connections",  # ALTER DATABASE … ALLOW_CONNECTIONS false, a maintenance window
    "no connection to the server",
    "connection already closed",
    "connection is closed",
    "ssl connection has been closed",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection reset",
    "broken pipe",
    "database is locked",
)


def is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, sa.exc.DBAPIError):
        return isinstance(exc, sa.exc.DisconnectionError)
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "pgcode", None) or ""
    if code in _PG_CODES or code.startswith("08"):
        return True
    message = str(exc.orig).lower()
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and any(m in message for m in _MESSAGES)


def retrying(step: Callable, what: str, *, attempts: int = ATTEMPTS, sleep: Callable = time.sleep):
    """`step()`, again after a transient database error (exponential backoff with jitter), up to `attempts`."""
    delay = BASE_DELAY_S
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except (sa.exc.DBAPIError, sa.exc.DisconnectionError) as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            wait = delay * random.uniform(0.75, 1.25)
            log.warning(
                "source database: %s failed (%s: %s); retry %d/%d in %.1fs",
                what,
                type(exc).__name__,
                str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200],
                attempt,
                attempts - 1,
                wait,
            )
            sleep(wait)
            delay = min(MAX_DELAY_S, delay * 2)
    raise AssertionError("unreachable")


def read(engine: sa.Engine, query: Callable, what: str):
    """`query(conn)` on a fresh connection, retried like `retrying`."""

    def step():
        with engine.connect() as conn:
            return query(conn)

    return retrying(step, what)
