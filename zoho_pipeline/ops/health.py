"""The health check (four categories, like the first integration, with thresholds) and the small helpers every
operator command shares (database argument, source engine, ZOHO client from the environment, text tables).

Categories and checks
- database: reachable; the provider's five tables exist; the pipeline's migrations are at head.
- activity: a sync run started in the last N hours; the last finished run did not fail; no run has a dead
  heartbeat; no row is stuck in `syncing`.
- api: the token works and the organization is reachable (`check_connection`: 1 call, plus a token refresh when
  the shared cache is cold); API calls today vs the daily budget.
  Decision: with ENABLE_ZOHO_SYNC=false the connectivity check is *skipped* (status `skip`, healthy: the switch is
  a deliberate state and the pipeline makes no calls); with sync enabled and credentials missing it *fails* (every
  run would fail). `--no-api` skips it explicitly, e.g. for a liveness probe that must not spend API calls.
- integrity: synced rows without a ZOHO id; failed and dead-lettered rows over thresholds; the age of the oldest
  due row (how far ZOHO lags the source); the 24 h success rate.

Every check is `ok`, `warn`, `skip` or `fail`; the report is healthy when nothing fails.
Thresholds come from the environment (HealthThresholds.from_env), so the CLI, cron and the Dagster checks agree.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import sqlalchemy as sa

from zoho_pipeline.env import number

OK, WARN, SKIP, FAIL = "ok", "warn", "skip", "fail"
CATEGORIES = ("database", "activity", "api", "integrity")
CATEGORY_TITLES = {"database": "Database", "activity": "Recent activity", "api": "API connectivity",
                   "integrity": "Data integrity"}
_MARK = {OK: "✓", WARN: "!", SKIP: "-", FAIL: "✗"}


# --- helpers shared by the operator commands --------------------------------------------------------------------


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the source database (default: $SOURCE_DATABASE_URL)")


def command_parser(name: str, description: str, **kw) -> argparse.ArgumentParser:
    """The parser of `zoho-pipeline <name>`, with the --database-url every operator command takes."""
    parser = argparse.ArgumentParser(prog=f"zoho-pipeline {name}", description=description, **kw)
    add_database_argument(parser)
    return parser


def entity_arg(value: str) -> str:
    """argparse type: an entity name, a singular or a table name → the canonical entity name; a usage error
    otherwise."""
    from zoho_pipeline.sync import queries as Q

    try:
        return Q.entity_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def source_url(args) -> str:
    """The command's --database-url, else $SOURCE_DATABASE_URL; ValueError saying what is missing or malformed."""
    url = getattr(args, "database_url", None) or os.environ.get("SOURCE_DATABASE_URL")
    if not url:
        raise ValueError("no database given: pass --database-url or set SOURCE_DATABASE_URL")
    try:
        sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"not a valid SQLAlchemy URL: {exc}") from None
    return url


def database_url(args) -> str | None:
    """source_url, or None with the reason printed."""
    try:
        return source_url(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return None


def open_source(args) -> sa.Engine | None:
    """The source engine for a command's --database-url / $SOURCE_DATABASE_URL; None (message printed) if unset."""
    from zoho_pipeline.source.admin import make_engine

    url = database_url(args)
    return make_engine(url) if url else None


def shown_url(engine_or_url) -> str:
    url = engine_or_url.url if hasattr(engine_or_url, "url") else sa.engine.make_url(engine_or_url)
    return url.render_as_string(hide_password=True)


def zoho_config_from_env(env: Mapping[str, str] | None = None):
    from zoho_pipeline.zoho.config import ZohoConfig

    return ZohoConfig.from_env(env)


def missing_credentials(config) -> list[str]:
    names = {"ZOHO_CLIENT_ID": config.client_id, "ZOHO_CLIENT_SECRET": config.client_secret,
             "ZOHO_REFRESH_TOKEN": config.refresh_token, "ZOHO_ORGANIZATION_ID": config.organization_id}
    return [name for name, value in names.items() if not value]


def build_client(engine: sa.Engine | None, config=None):
    """A ZohoClient from the environment sharing the database token cache and daily usage (like the sync)."""
    from zoho_pipeline.zoho.client import ZohoClient

    config = config or zoho_config_from_env()
    token_store = usage_store = None
    if engine is not None:
        try:
            from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore

            token_store, usage_store = DbTokenStore(engine), DbUsageStore(engine)
        except ImportError:  # pragma: no cover - stores always ship with the engine
            pass
    return ZohoClient(config, token_store=token_store, usage_store=usage_store)


def format_table(headers: list[str], rows: list[list[Any]], max_width: int = 70) -> str:
    """A plain text table; long cells are cut with an ellipsis."""

    def cell(v) -> str:
        s = "" if v is None else " ".join(str(v).split())
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    return "\n".join(out)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# --- the health check -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthThresholds:
    activity_hours: float = 24.0  # a run must have started within this many hours
    stuck_after_s: float = 900.0  # a `syncing` claim older than this is stuck
    heartbeat_stale_s: float = 120.0  # a run whose heartbeat is older is dead (SyncSettings.run_stale_after_s)
    max_failed: int = 10  # failed rows (not dead-lettered) above this fail the check; 1..max warn
    max_dead_lettered: int = 0
    max_backlog_age_s: float = 3600.0  # the oldest due row may wait this long
    min_success_rate: float = 0.9  # over 24 h; below warns
    budget_warn_ratio: float = 0.8  # API calls today / daily budget above this warns; >= 1 fails

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "HealthThresholds":
        env = os.environ if env is None else env

        def num(name, default, kind=float):
            return number(name, default, kind, env)

        stale_default = num("ZOHO_SYNC_RUN_STALE_AFTER_S", 120.0)
        return cls(
            activity_hours=num("ZOHO_HEALTH_ACTIVITY_HOURS", 24.0),
            stuck_after_s=num("ZOHO_STUCK_AFTER_S", 900.0),
            heartbeat_stale_s=num("ZOHO_HEALTH_HEARTBEAT_STALE_S", stale_default),
            max_failed=num("ZOHO_HEALTH_MAX_FAILED", 10, int),
            max_dead_lettered=num("ZOHO_HEALTH_MAX_DEAD_LETTERED", 0, int),
            max_backlog_age_s=num("ZOHO_HEALTH_MAX_BACKLOG_AGE_S", 3600.0),
            min_success_rate=num("ZOHO_HEALTH_MIN_SUCCESS_RATE", 0.9),
            budget_warn_ratio=num("ZOHO_HEALTH_BUDGET_WARN_RATIO", 0.8),
        )


@dataclass
class Check:
    category: str
    name: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    checks: list[Check] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def add(self, category, name, status, message, **details) -> Check:
        c = Check(category, name, status, message, details)
        self.checks.append(c)
        return c

    @property
    def healthy(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1

    def category_status(self, category: str) -> str:
        statuses = [c.status for c in self.checks if c.category == category]
        for s in (FAIL, WARN, OK):
            if s in statuses:
                return s
        return SKIP

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def as_dict(self) -> dict:
        return {"healthy": self.healthy, "exit_code": self.exit_code, "generated_at": self.generated_at,
                "categories": {cat: self.category_status(cat) for cat in CATEGORIES},
                "checks": [asdict(c) for c in self.checks]}


def _migration_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from zoho_pipeline.source.admin import VERSION_TABLE

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def check_database(report: HealthReport, engine: sa.Engine) -> bool:
    from zoho_pipeline.source import admin

    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001
        report.add("database", "reachable", FAIL, f"cannot connect to {shown_url(engine)}: "
                   f"{str(exc).splitlines()[0][:200]}")
        return False
    report.add("database", "reachable", OK, f"connected to {shown_url(engine)}", dialect=engine.dialect.name)
    missing = admin.missing_provider_tables(engine)
    if missing:
        report.add("database", "provider_tables", FAIL, f"missing the provider's table(s): {', '.join(missing)}",
                   missing=missing)
        return False
    report.add("database", "provider_tables", OK, "the five provider tables exist")
    try:
        current, head = _migration_revision(engine), admin.head()
    except Exception as exc:  # noqa: BLE001
        report.add("database", "migrations", FAIL, f"cannot read the migration version: {exc}")
        return False
    if current != head:
        report.add("database", "migrations", FAIL,
                   f"migrations at {current or 'none'}, head is {head}: run `zoho-pipeline db upgrade`",
                   current=current, head=head)
        return current is not None
    report.add("database", "migrations", OK, f"migrations at head ({head})", current=current, head=head)
    return True


def check_activity(report: HealthReport, engine: sa.Engine, th: HealthThresholds, enabled: bool,
                   now: datetime) -> None:
    from zoho_pipeline.sync import queries as Q

    since = now - timedelta(hours=th.activity_hours)
    runs = Q.runs_since(engine, since)
    n = sum(runs.values())
    if n:
        report.add("activity", "recent_runs", OK, f"{n} run(s) in the last {th.activity_hours:g} h "
                   f"({', '.join(f'{v} {k}' for k, v in sorted(runs.items()))})", runs=runs)
    elif not enabled:
        report.add("activity", "recent_runs", WARN, f"no run in the last {th.activity_hours:g} h "
                   "(ENABLE_ZOHO_SYNC=false)", runs=runs)
    else:
        report.add("activity", "recent_runs", FAIL, f"no sync run in the last {th.activity_hours:g} h: is the "
                   "Dagster daemon running and the schedule on? (Dagster UI → Automation)", runs=runs)
    finished = [r for r in Q.recent_runs(engine, 20) if r["finished_at"]]
    if finished:
        last = finished[0]
        summary = last.get("summary") or {}
        detail = summary.get("stopped_reason") if isinstance(summary, dict) else None
        msg = f"last finished run {last['run_id']} {last['status']} at {last['finished_at']}"
        msg += f" ({detail})" if detail else ""
        status = {"failed": FAIL, "partial": WARN, "stopped": WARN}.get(last["status"], OK)
        report.add("activity", "last_run", status, msg, run=last["run_id"], run_status=last["status"])
    dead = [r for r in Q.live_runs(engine, th.heartbeat_stale_s, now) if not r["alive"]]
    if dead:
        report.add("activity", "heartbeat", WARN, f"{len(dead)} run(s) marked running with a heartbeat older than "
                   f"{human_duration(th.heartbeat_stale_s)} (died without finishing): "
                   + ", ".join(f"{r['run_id']} (last beat {r['heartbeat_at']})" for r in dead[:5]),
                   runs=[r["run_id"] for r in dead])
    else:
        report.add("activity", "heartbeat", OK, "no run with a dead heartbeat")
    stuck = {e: Q.stuck_rows(engine, e, th.stuck_after_s, limit=20, heartbeat_stale_s=th.heartbeat_stale_s,
                             now=now) for e in Q.entities()}
    total = sum(len(v) for v in stuck.values())
    if total:
        sample = [f"{r['label']} ({r['reason']})" for rows in stuck.values() for r in rows][:5]
        report.add("activity", "stuck_rows", FAIL, f"{total} row(s) stuck in syncing: {'; '.join(sample)}",
                   per_entity={e: len(v) for e, v in stuck.items() if v})
    else:
        report.add("activity", "stuck_rows", OK, "no row stuck in syncing")


def check_api(report: HealthReport, engine: sa.Engine | None, enabled: bool, config=None, client=None,
              skip: bool = False) -> None:
    from zoho_pipeline.sync import queries as Q
    from zoho_pipeline.zoho.errors import AUTH, BUDGET_EXHAUSTED, RATE_LIMITED, ZohoError

    try:
        config = config or (client.config if client is not None else zoho_config_from_env())
    except ValueError as exc:
        report.add("api", "configuration", FAIL, str(exc))
        return
    if skip:
        report.add("api", "connectivity", SKIP, "skipped (--no-api)")
    elif not enabled:
        report.add("api", "connectivity", SKIP, "skipped: ENABLE_ZOHO_SYNC=false, the pipeline makes no calls")
    elif missing_credentials(config):
        report.add("api", "connectivity", FAIL, "ZOHO credentials not configured: set "
                   + ", ".join(missing_credentials(config)), missing=missing_credentials(config))
    else:
        own = client is None
        try:
            client = client or build_client(engine, config)
            org = client.check_connection()
            report.add("api", "connectivity", OK, f"token valid; organization {org.get('name') or ''} "
                       f"({config.organization_id}) reachable at {config.base_url}".replace("  ", " "),
                       organization=org.get("name"), base_url=config.base_url)
        except ZohoError as exc:
            if exc.kind == AUTH:
                msg = (f"ZOHO refused the credentials ({exc}): refresh token revoked or wrong client/org? "
                       "See runbook: token revoked")
                report.add("api", "connectivity", FAIL, msg, error_code=exc.error_code)
            elif exc.kind in (RATE_LIMITED, BUDGET_EXHAUSTED):
                report.add("api", "connectivity", WARN, f"ZOHO is rate limiting us: {exc}", error_code=exc.error_code)
            else:
                report.add("api", "connectivity", FAIL, f"ZOHO unreachable or failing: {exc}",
                           error_code=exc.error_code)
        except Exception as exc:  # noqa: BLE001
            report.add("api", "connectivity", FAIL, f"ZOHO unreachable: {type(exc).__name__}: {exc}")
        finally:
            if own and client is not None:
                client.close()
    if engine is not None and config.organization_id:
        try:
            used = Q.api_calls_today(engine, config.organization_id)
        except Exception:  # noqa: BLE001 - database problems are reported by the database category
            return
        budget = max(1, int(config.daily_budget))
        ratio = used / budget
        status = FAIL if ratio >= 1 else WARN if ratio >= HealthThresholds.from_env().budget_warn_ratio else OK
        report.add("api", "daily_budget", status, f"{used} of {budget} API calls used today (UTC) "
                   f"({ratio:.0%})", used=used, budget=budget)


def check_integrity(report: HealthReport, engine: sa.Engine, th: HealthThresholds, now: datetime) -> None:
    from zoho_pipeline.sync import queries as Q

    counts = Q.status_counts(engine)
    no_id = {e: Q.synced_without_id_count(engine, e) for e in counts}
    n = sum(no_id.values())
    if n:
        sample = [r["label"] for e, k in no_id.items() if k for r in Q.synced_without_id(engine, e, 3)][:5]
        report.add("integrity", "synced_without_id", FAIL, f"{n} row(s) marked synced without a ZOHO id: "
                   + "; ".join(sample), per_entity={e: k for e, k in no_id.items() if k})
    else:
        report.add("integrity", "synced_without_id", OK, "every synced row has its ZOHO id")
    failed = {e: c["failed"] for e, c in counts.items() if c["failed"]}
    nf = sum(failed.values())
    status = FAIL if nf > th.max_failed else WARN if nf else OK
    report.add("integrity", "failed_rows", status,
               f"{nf} failed row(s) (threshold {th.max_failed})"
               + (": " + ", ".join(f"{k} {e}" for e, k in failed.items()) if failed else ""), per_entity=failed)
    dead = {e: c["dead_lettered"] for e, c in counts.items() if c["dead_lettered"]}
    nd = sum(dead.values())
    report.add("integrity", "dead_lettered", FAIL if nd > th.max_dead_lettered else WARN if nd else OK,
               f"{nd} dead-lettered row(s) (threshold {th.max_dead_lettered})"
               + (": " + ", ".join(f"{k} {e}" for e, k in dead.items()) if dead else "")
               + (" — fix, then `zoho-pipeline retry --failed`" if nd else ""), per_entity=dead)
    ages = {e: Q.oldest_due_age_s(engine, e, now) for e in counts}
    due = {e: Q.due_count(engine, e, now) for e in counts}
    oldest = max((a for a in ages.values() if a is not None), default=None)
    if oldest is None:
        report.add("integrity", "backlog_age", OK, "nothing waiting to sync", due=due)
    else:
        worst = max((e for e in ages if ages[e] is not None), key=lambda e: ages[e])
        report.add("integrity", "backlog_age", FAIL if oldest > th.max_backlog_age_s else OK,
                   f"{sum(due.values())} row(s) due; oldest waits {human_duration(oldest)} ({worst}; "
                   f"threshold {human_duration(th.max_backlog_age_s)})", due=due,
                   oldest_age_s={e: round(a) for e, a in ages.items() if a is not None})
    rate = Q.success_rate(engine, now - timedelta(hours=24))
    if rate["rate"] is None:
        report.add("integrity", "success_rate", OK, "no attempts in the last 24 h", **rate)
    else:
        report.add("integrity", "success_rate", WARN if rate["rate"] < th.min_success_rate else OK,
                   f"{rate['rate']:.1%} of {rate['attempts']} attempts succeeded in 24 h "
                   f"({rate['failed']} failed, {rate['retrying']} retrying)", **rate)


def run_health(engine: sa.Engine, *, thresholds: HealthThresholds | None = None, enabled: bool | None = None,
               check_api_connectivity: bool = True, config=None, client=None,
               now: datetime | None = None) -> HealthReport:
    """All four categories. `client`: reuse one (Dagster resource); else one is built from the environment."""
    from zoho_pipeline.sync.settings import SyncSettings

    th = thresholds or HealthThresholds.from_env()
    enabled = SyncSettings.from_env().enabled if enabled is None else enabled
    now = now or datetime.now(timezone.utc)
    report = HealthReport()
    db_ok = check_database(report, engine)
    if db_ok:
        for category, fn in (("activity", lambda: check_activity(report, engine, th, enabled, now)),
                             ("integrity", lambda: check_integrity(report, engine, th, now))):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a broken query is a failed check, never a crash
                report.add(category, "query", FAIL, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    else:
        for cat in ("activity", "integrity"):
            report.add(cat, "database", SKIP, "skipped: the database is not usable")
    check_api(report, engine if db_ok else None, enabled, config=config, client=client,
              skip=not check_api_connectivity)
    report.checks.sort(key=lambda c: CATEGORIES.index(c.category))
    return report


# --- rendering --------------------------------------------------------------------------------------------------


def render_text(report: HealthReport, detailed: bool = False) -> str:
    lines = [f"zoho-pipeline health: {'HEALTHY' if report.healthy else 'UNHEALTHY'}  ({report.generated_at})", ""]
    for cat in CATEGORIES:
        checks = [c for c in report.checks if c.category == cat]
        status = report.category_status(cat)
        lines.append(f"{_MARK[status]} {CATEGORY_TITLES[cat]}: {status}")
        for c in checks:
            if detailed or c.status in (FAIL, WARN):
                lines.append(f"    {_MARK[c.status]} {c.name}: {c.message}")
                if detailed and c.details:
                    for k, v in c.details.items():
                        if v not in (None, {}, []):
                            lines.append(f"        {k}: {v}")
    lines += ["", "exit 0 healthy, 1 unhealthy · runbook: docs/runbook.md"]
    return "\n".join(lines)


def health_event(report: HealthReport):
    """The report as an alert event (also the body of `health --email`)."""
    from zoho_pipeline.ops.alerts import AlertEvent

    bad = [c for c in report.checks if c.status in (FAIL, WARN)]
    return AlertEvent(
        kind="check_failed" if not report.healthy else "check_recovered",
        severity="error" if not report.healthy else ("warning" if bad else "info"),
        title=f"ZOHO sync health: {'UNHEALTHY' if not report.healthy else 'healthy'}"
              + (f" ({len(report.failures())} failing check(s))" if not report.healthy else ""),
        summary="; ".join(f"{CATEGORY_TITLES[c]}: {report.category_status(c)}" for c in CATEGORIES),
        details={f"{c.category}/{c.name}": f"{c.status.upper()} — {c.message}" for c in report.checks},
        rows=[{"entity": c.category, "label": c.name, "status": c.status, "error": c.message} for c in bad],
    )
