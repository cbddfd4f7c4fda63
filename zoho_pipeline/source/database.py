"""The source database: its engines, time as both databases store it, and whether it is a provider database.

`make_engine` is the one place that creates SQLAlchemy engines for the source database, and `utcnow`, `aware`,
`db_time` and `iso` the one place that handles stored timestamps (SQLite keeps naive UTC, Postgres aware).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.ext.compiler

from zoho_pipeline.source import business


class MissingProviderTables(RuntimeError):
    """The database lacks some of the provider's business tables: it is not (yet) a provider database."""

    def __init__(self, missing: list[str], url: str):
        self.missing = list(missing)
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        super().__init__(
            f"the source database {shown} has no table(s) {', '.join(self.missing)}: the pipeline's migrations "
            "only add to the provider's existing tables. Point SOURCE_DATABASE_URL (or --database-url) at the "
            "provider's billing database, or create a demo database with `zoho-pipeline db create-demo`."
        )


# --- engines ----------------------------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str | sa.engine.URL, **kwargs) -> sa.engine.Engine:
    """The engine for the source database. SQLite: 30 s busy timeout, usable from any thread, WAL journal and
    foreign keys on every connection. Postgres: a ping for connections idle in the pool, a pool sized for the sync workers. `kwargs` override."""
    url = sa.engine.make_url(url)
    if url.get_backend_name() == "sqlite":
        # hide_parameters: with SQLAlchemy's logging (or an error message) on, bound values such as the access
        # token in zoho_oauth_tokens must not reach a log or Dagster's event log
        options = {"connect_args": {"timeout": 30, "check_same_thread": False}, "hide_parameters": True}
        options.update(kwargs)
        engine = sa.create_engine(url, **options)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # jit off: the planner overestimates the small dirty part of a big table and would spend ~0.25 s compiling
    # the find-work count (measured at 1 M customers); these queries are short and never gain from JIT
    options = {
        "pool_size": 12,
        "max_overflow": 8,
        "pool_recycle": 1800,
        "connect_args": {"options": "-c jit=off"},
        "hide_parameters": True,
    }
    if url.get_driver_name() == "psycopg2":
        # a chunk's claims and outcomes go as a few statements per round trip, not one each
        options["executemany_mode"] = "values_plus_batch"
    options.update(kwargs)
    engine = sa.create_engine(url, **options)
    if not options.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


PING_IDLE_S = 1.0  # a connection back in the pool for longer than this is pinged before it is used again


def _ping_when_idle(engine: sa.Engine) -> None:
    """Ping a pooled connection before use only when it has sat idle for PING_IDLE_S: what pool_pre_ping is for (a
    connection the server or a failover dropped while it waited), without its round trip on every checkout. The
    engine checks out a connection twice per chunk of 32 rows; the ping was a tenth of its round trips. A
    connection that fails within a second of its last use fails its statement, which the engine retries
    (sync.transient)."""

    @sa.event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_connection, record) -> None:
        record.info["zoho_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy) -> None:
        since = record.info.pop("zoho_idle_since", None)
        if since is None or time.monotonic() - since < PING_IDLE_S:
            return  # just connected, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: a fresh connection instead
            raise sa.exc.DisconnectionError(f"pooled connection failed its ping ({type(exc).__name__})") from exc
        if not alive:
            raise sa.exc.DisconnectionError("pooled connection failed its ping")


def shown_url(engine_or_url) -> str:
    """The URL with its password hidden, for messages."""
    url = engine_or_url.url if hasattr(engine_or_url, "url") else sa.engine.make_url(engine_or_url)
    return url.render_as_string(hide_password=True)


def id_params(engine: sa.Engine, ids) -> list[str]:
    """`ids` as bind values for an id column: Postgres uuid columns reject non-uuid text, so malformed ids are left
    out there rather than fail the whole statement."""
    ids = [str(i) for i in ids]
    if engine.dialect.name != "postgresql":
        return ids
    good = []
    for i in ids:
        try:
            uuid.UUID(i)
            good.append(i)
        except ValueError:
            pass
    return good


# --- time -------------------------------------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value) -> datetime | None:
    """A datetime read from either database (or an ISO string, or a date), as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def db_time(engine: sa.Engine, value: datetime) -> datetime:
    """A bind value comparable with stored timestamps: UTC, naive on SQLite (stored strings compare in one
    format)."""
    value = aware(value)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def iso(value) -> str | None:
    v = aware(value)
    return v.isoformat(timespec="seconds") if v else None


# --- the provider's tables --------------------------------------------------------------------------------------


def storable(text: str | None) -> str | None:
    """`text` as a text column on either database holds it: Postgres refuses a NUL (0x00) in text, and ZOHO's
    bodies and messages are text from the other side, so a NUL becomes U+FFFD (what a decoder shows for it)."""
    return text.replace("\x00", "\ufffd") if text and "\x00" in text else text


def missing_provider_tables(engine: sa.engine.Engine) -> list[str]:
    existing = set(sa.inspect(engine).get_table_names())
    return [name for name in business.BUSINESS_TABLE_NAMES if name not in existing]


def business_row_counts(url: str) -> dict[str, int]:
    """Rows per business table that exists (a missing table is left out)."""
    engine = make_engine(url)
    try:
        existing = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {
                tbl.name: conn.execute(sa.select(sa.func.count()).select_from(tbl)).scalar_one()
                for tbl in business.BUSINESS_TABLES
                if tbl.name in existing
            }
    finally:
        engine.dispose()


# --- the database's clock ---------------------------------------------------------------------------------------
# Run heartbeats are written and judged by the database's clock on Postgres, so a host whose clock is behind (or
# ahead) neither has its live claims taken over nor takes over another's; SQLite is a file of this host, whose
# clock it is.


class clock_now(sa.sql.functions.FunctionElement):
    """Now: the database's `now()` on Postgres; elsewhere the host time given (a bind parameter)."""

    type = sa.DateTime(timezone=True)
    inherit_cache = True
    name = "clock_now"


class clock_before(sa.sql.functions.FunctionElement):
    """`seconds` before now, by the same clock as `clock_now` (args: host time minus seconds, seconds)."""

    type = sa.DateTime(timezone=True)
    inherit_cache = True
    name = "clock_before"


@sa.ext.compiler.compiles(clock_now)
@sa.ext.compiler.compiles(clock_before)
def _host_clock(element, compiler, **kw):
    return compiler.process(list(element.clauses)[0], **kw)


@sa.ext.compiler.compiles(clock_now, "postgresql")
def _pg_now(element, compiler, **kw):
    return "now()"


@sa.ext.compiler.compiles(clock_before, "postgresql")
def _pg_before(element, compiler, **kw):
    return f"(now() - make_interval(secs => {compiler.process(list(element.clauses)[1], **kw)}))"


def db_now(host_now: datetime | None = None) -> clock_now:
    return clock_now(sa.literal(host_now or utcnow(), sa.DateTime(timezone=True)))


def db_before(seconds: float, host_now: datetime | None = None) -> clock_before:
    host = (host_now or utcnow()) - timedelta(seconds=seconds)
    return clock_before(sa.literal(host, sa.DateTime(timezone=True)), sa.literal(float(seconds), sa.Float))
