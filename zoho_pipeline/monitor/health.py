"""The health check: four categories, each check `ok`, `warn`, `skip` or `fail`; healthy when nothing fails.

- database: reachable; the provider's five tables exist; the pipeline's migrations are at head.
- activity: a sync run started in the last N hours; the last finished run did not fail; no run has a dead
  heartbeat; no row is stuck in `syncing` (the stuck_rows verdict).
- api: the token works and the organization is reachable (`check_connection`: 1 call, plus a token refresh when
  the shared cache is cold); API calls today vs the daily budget.
  Decision: with ENABLE_ZOHO_SYNC=false the connectivity check is *skipped* (status `skip`, healthy: the switch is
  a deliberate state and the pipeline makes no calls); with sync enabled and credentials missing it *fails* (every
  run would fail). `--no-api` skips it explicitly, e.g. for a liveness probe that must not spend API calls.
- integrity: the verdicts on synced rows without a ZOHO id, failed and dead-lettered rows and the age of the
  oldest due row (how far ZOHO lags the source), the worst entity deciding; the 24 h success rate.

The verdicts and their thresholds are monitor.verdicts' and monitor.thresholds', the same the Dagster checks and
`zoho-pipeline alert` present. The report these checks fill, and its text and alert forms, are health_report.py's.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import sqlalchemy as sa

from zoho_pipeline.monitor import verdicts as V
from zoho_pipeline.monitor.health_report import CATEGORIES, HealthReport, human_duration
from zoho_pipeline.monitor.history import api_calls_today, live_runs, recent_runs, runs_since, success_rate
from zoho_pipeline.monitor.thresholds import Thresholds
from zoho_pipeline.monitor.verdicts import FAIL, OK, SKIP, WARN
from zoho_pipeline.source import migrate
from zoho_pipeline.source.database import missing_provider_tables, shown_url, utcnow
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.errors import AUTH, BUDGET_EXHAUSTED, RATE_LIMITED, ZohoError

HEALTH_MAX_WAIT_S = 10.0  # the API probe waits this long for the shared pace at most, then says why it did not call


def check_database(report: HealthReport, engine: sa.Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001
        report.add(
            "database", "reachable", FAIL, f"cannot connect to {shown_url(engine)}: {str(exc).splitlines()[0][:200]}"
        )
        return False
    report.add("database", "reachable", OK, f"connected to {shown_url(engine)}", dialect=engine.dialect.name)
    missing = missing_provider_tables(engine)
    if missing:
        report.add(
            "database",
            "provider_tables",
            FAIL,
            f"missing the provider's table(s): {', '.join(missing)}",
            missing=missing,
        )
        return False
    report.add("database", "provider_tables", OK, "the five provider tables exist")
    try:
        with engine.connect() as conn:
            current = migrate.revision_of(conn)
        head = migrate.head()
    except Exception as exc:  # noqa: BLE001
        report.add("database", "migrations", FAIL, f"cannot read the migration version: {exc}")
        return False
    if current != head:
        report.add(
            "database",
            "migrations",
            FAIL,
            f"migrations at {current or 'none'}, head is {head}: run `zoho-pipeline db upgrade`",
            current=current,
            head=head,
        )
        return current is not None
    report.add("database", "migrations", OK, f"migrations at head ({head})", current=current, head=head)
    return True


def _present(
    report: HealthReport, category: str, name: str, verdicts: list[V.Verdict], ok_message: str, message: str, **details
) -> None:
    """One health line from the verdicts of every entity: the worst status decides."""
    status = V.worst(v.status for v in verdicts)
    per_entity = {v.entity: v.count for v in verdicts if v.count}
    report.add(category, name, status, ok_message if status == OK else message, per_entity=per_entity, **details)


def check_activity(
    report: HealthReport, engine: sa.Engine, th: Thresholds, enabled: bool, now: datetime, stuck: list[V.Verdict]
) -> None:
    since = now - timedelta(hours=th.activity_hours)
    runs = runs_since(engine, since)
    n = sum(runs.values())
    if n:
        report.add(
            "activity",
            "recent_runs",
            OK,
            f"{n} run(s) in the last {th.activity_hours:g} h "
            f"({', '.join(f'{v} {k}' for k, v in sorted(runs.items()))})",
            runs=runs,
        )
    elif not enabled:
        report.add(
            "activity",
            "recent_runs",
            WARN,
            f"no run in the last {th.activity_hours:g} h (ENABLE_ZOHO_SYNC=false)",
            runs=runs,
        )
    else:
        report.add(
            "activity",
            "recent_runs",
            FAIL,
            f"no sync run in the last {th.activity_hours:g} h: is the "
            "Dagster daemon running and the schedule on? (Dagster UI → Automation)",
            runs=runs,
        )
    finished = [r for r in recent_runs(engine, 20) if r["finished_at"]]
    if finished:
        last = finished[0]
        summary = last.get("summary") or {}
        detail = summary.get("stopped_reason") if isinstance(summary, dict) else None
        msg = f"last finished run {last['run_id']} {last['status']} at {last['finished_at']}"
        msg += f" ({detail})" if detail else ""
        status = {"failed": FAIL, "partial": WARN, "stopped": WARN}.get(last["status"], OK)
        report.add("activity", "last_run", status, msg, run=last["run_id"], run_status=last["status"])
    dead = [r for r in live_runs(engine, th.heartbeat_stale_s, now) if not r["alive"]]
    if dead:
        report.add(
            "activity",
            "heartbeat",
            WARN,
            f"{len(dead)} run(s) marked running with a heartbeat older than "
            f"{human_duration(th.heartbeat_stale_s)} (died without finishing): "
            + ", ".join(f"{r['run_id']} (last beat {r['heartbeat_at']})" for r in dead[:5]),
            runs=[r["run_id"] for r in dead],
        )
    else:
        report.add("activity", "heartbeat", OK, "no run with a dead heartbeat")
    sample = [f"{r['label']} ({r['reason']})" for v in stuck for r in v.rows][:5]
    _present(
        report,
        "activity",
        "stuck_rows",
        stuck,
        "no row stuck in syncing",
        f"{sum(v.count for v in stuck)} row(s) stuck in syncing: {'; '.join(sample)}",
    )


def check_api(
    report: HealthReport,
    engine: sa.Engine | None,
    enabled: bool,
    th: Thresholds,
    config=None,
    client=None,
    skip: bool = False,
) -> None:
    try:
        config = config or (client.config if client is not None else ZohoConfig.from_env())
    except ValueError as exc:
        report.add("api", "configuration", FAIL, str(exc))
        return
    if skip:
        report.add("api", "connectivity", SKIP, "skipped (--no-api)")
    elif not enabled:
        report.add("api", "connectivity", SKIP, "skipped: ENABLE_ZOHO_SYNC=false, the pipeline makes no calls")
    elif config.missing_credentials():
        report.add(
            "api",
            "connectivity",
            FAIL,
            "ZOHO credentials not configured: set " + ", ".join(config.missing_credentials()),
            missing=config.missing_credentials(),
        )
    else:
        own = client is None
        try:
            # a probe never waits out a pause or a full window: it says so (HEALTH_MAX_WAIT_S)
            client = client or zoho_client(
                dataclasses.replace(config, max_rate_limit_wait_s=min(config.max_rate_limit_wait_s, HEALTH_MAX_WAIT_S)),
                engine,
            )
            paused = client.limiter.shared_pause_s() if hasattr(client, "limiter") else 0.0
            if paused > HEALTH_MAX_WAIT_S:
                report.add(
                    "api",
                    "connectivity",
                    WARN,
                    f"ZOHO rate limit: the organization is paused after a 429 for {paused:.0f}s more (a lockout "
                    "this or another process met); not calling until it ends",
                    paused_s=round(paused, 1),
                )
                return
            org = client.check_connection()
            report.add(
                "api",
                "connectivity",
                OK,
                f"token valid; organization {org.get('name') or ''} "
                f"({config.organization_id}) reachable at {config.base_url}".replace("  ", " "),
                organization=org.get("name"),
                base_url=config.base_url,
            )
        except ZohoError as exc:
            if exc.kind == AUTH:
                msg = (
                    f"ZOHO refused the credentials ({exc}): refresh token revoked or wrong client/org? "
                    "See runbook: token revoked"
                )
                report.add("api", "connectivity", FAIL, msg, error_code=exc.error_code)
            elif exc.kind in (RATE_LIMITED, BUDGET_EXHAUSTED):
                report.add("api", "connectivity", WARN, f"ZOHO is rate limiting us: {exc}", error_code=exc.error_code)
            else:
                report.add(
                    "api", "connectivity", FAIL, f"ZOHO unreachable or failing: {exc}", error_code=exc.error_code
                )
        except Exception as exc:  # noqa: BLE001
            report.add("api", "connectivity", FAIL, f"ZOHO unreachable: {type(exc).__name__}: {exc}")
        finally:
            if own and client is not None:
                client.close()
    if engine is not None and config.organization_id:
        try:
            used = api_calls_today(engine, config.organization_id)
        except Exception:  # noqa: BLE001 - database problems are reported by the database category
            return
        budget = max(1, int(config.daily_budget))
        ratio = used / budget
        status = FAIL if ratio >= 1 else WARN if ratio >= th.budget_warn_ratio else OK
        report.add(
            "api",
            "daily_budget",
            status,
            f"{used} of {budget} API calls used today (UTC) ({ratio:.0%})",
            used=used,
            budget=budget,
        )


def check_integrity(
    report: HealthReport, engine: sa.Engine, th: Thresholds, now: datetime, verdicts: dict[str, list[V.Verdict]]
) -> None:
    no_id = verdicts["synced_without_id"]
    sample = [r["label"] for v in no_id for r in v.rows[:3]][:5]
    _present(
        report,
        "integrity",
        "synced_without_id",
        no_id,
        "every synced row has its ZOHO id",
        f"{sum(v.count for v in no_id)} row(s) marked synced without a ZOHO id: " + "; ".join(sample),
    )
    for fact, what, hint in (
        ("failed_rows", "failed row(s)", ""),
        ("dead_lettered", "dead-lettered row(s)", " — fix, then `zoho-pipeline retry --failed`"),
    ):
        found = verdicts[fact]
        n = sum(v.count for v in found)
        limit = th.max_failed if fact == "failed_rows" else th.max_dead_lettered
        listed = ", ".join(f"{v.count} {v.entity}" for v in found if v.count)
        status = V.worst(v.status for v in found)
        report.add(
            "integrity",
            fact,
            status,
            f"{n} {what} (threshold {limit} per entity)" + (f": {listed}{hint}" if n else ""),
            per_entity={v.entity: v.count for v in found if v.count},
        )
    ages = {v.entity: v.figures["oldest_due_age_s"] for v in verdicts["backlog_age"] if v.count}
    due = {v.entity: v.count for v in verdicts["backlog_age"]}
    if not ages:
        report.add("integrity", "backlog_age", OK, "nothing waiting to sync", due=due)
    else:
        worst_entity = max(ages, key=ages.get)
        report.add(
            "integrity",
            "backlog_age",
            V.worst(v.status for v in verdicts["backlog_age"]),
            f"{sum(due.values())} row(s) due; oldest waits {human_duration(ages[worst_entity])} "
            f"({worst_entity}; threshold {human_duration(th.max_backlog_age_s)})",
            due=due,
            oldest_age_s={e: round(a) for e, a in ages.items()},
        )
    rate = success_rate(engine, now - timedelta(hours=24))
    if rate["rate"] is None:
        report.add("integrity", "success_rate", OK, "no attempts in the last 24 h", **rate)
    else:
        report.add(
            "integrity",
            "success_rate",
            WARN if rate["rate"] < th.min_success_rate else OK,
            f"{rate['rate']:.1%} of {rate['attempts']} attempts succeeded in 24 h "
            f"({rate['failed']} failed, {rate['retrying']} retrying)",
            **rate,
        )


def run_health(
    engine: sa.Engine,
    *,
    thresholds: Thresholds | None = None,
    enabled: bool | None = None,
    check_api_connectivity: bool = True,
    config=None,
    client=None,
    now: datetime | None = None,
) -> HealthReport:
    """All four categories. `client`: reuse one (Dagster resource); else one is built from the environment."""
    th = thresholds or Thresholds.from_env()
    enabled = SyncSettings.from_env().enabled if enabled is None else enabled
    now = now or utcnow()
    report = HealthReport()
    db_ok = check_database(report, engine)
    if db_ok:
        try:
            verdicts = V.judge(engine, th, now=now)
            check_activity(report, engine, th, enabled, now, verdicts["stuck_rows"])
            check_integrity(report, engine, th, now, verdicts)
        except Exception as exc:  # noqa: BLE001 - a broken query is a failed check, never a crash
            report.add("integrity", "query", FAIL, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    else:
        for cat in ("activity", "integrity"):
            report.add(cat, "database", SKIP, "skipped: the database is not usable")
    check_api(
        report, engine if db_ok else None, enabled, th, config=config, client=client, skip=not check_api_connectivity
    )
    report.checks.sort(key=lambda c: CATEGORIES.index(c.category))
    return report
