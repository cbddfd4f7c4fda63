"""`zoho-pipeline status`: where the sync stands, at a glance.

Per entity: rows by status (pending, syncing, synced, retrying, failed, dead-lettered), rows due now and how long
the oldest has waited; the 24 h success rate; the newest failures with their reasons; API calls used today against
the organization's daily budget; and the backlog with an estimate of the time to clear it.

The estimate assumes one API call per due row (a create or an update; a row whose payload is unchanged costs none,
a missing parent or a look-up after a timeout costs more): `--calls-per-row` changes it. Time = calls ÷
ZOHO_RATE_LIMIT_PER_MINUTE; when the calls exceed what is left of today's ZOHO_DAILY_BUDGET, the rest waits for the
next UTC day(s).

Exit 0 (status is informational; use `health` for a verdict), 2 when no database is given or a variable is
malformed (the report is still printed, the malformed variable named, every other one shown as it is).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import fields
from datetime import UTC, datetime, timedelta

from zoho_pipeline.cli.common import command_parser, format_table, open_source
from zoho_pipeline.env import ConfigError, number, text
from zoho_pipeline.monitor import history
from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.monitor.health_report import human_duration
from zoho_pipeline.source.database import shown_url
from zoho_pipeline.sync.entities import entity_name
from zoho_pipeline.zoho.config import ENV_VARS as ZOHO_ENV_VARS
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.limiter import paced_seconds


def _parser() -> argparse.ArgumentParser:
    p = command_parser("status", "Per-entity sync counts, success rate, recent failures, API budget and backlog ETA.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--entity", help="only this entity (plans, customers, subscriptions, invoices, payments)")
    p.add_argument("--failures", type=int, default=10, metavar="N", help="recent failures to list (default 10)")
    p.add_argument(
        "--calls-per-row",
        type=float,
        default=1.0,
        metavar="X",
        help="API calls assumed per due row for the ETA (default 1: one create or update)",
    )
    return p


def estimate(
    due_rows: int,
    calls_per_row: float,
    rate_per_minute: int,
    daily_budget: int,
    used_today: int,
    now: datetime | None = None,
) -> dict:
    """Calls and seconds to clear `due_rows`, paced at `rate_per_minute` within the daily budget."""
    now = now or datetime.now(UTC)
    calls = math.ceil(due_rows * calls_per_row)
    rate = max(1, int(rate_per_minute))
    budget = max(1, int(daily_budget))
    remaining = max(0, budget - used_today)
    if calls <= remaining:
        eta, spills = paced_seconds(calls, rate), 0
    else:
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        over = calls - remaining
        spills = math.ceil(over / budget)
        eta = (
            (midnight - now).total_seconds() + (spills - 1) * 86400 + paced_seconds(over - (spills - 1) * budget, rate)
        )
    return {
        "due_rows": due_rows,
        "calls_per_row": calls_per_row,
        "estimated_calls": calls,
        "rate_limit_per_minute": rate,
        "remaining_budget_today": remaining,
        "eta_s": round(eta, 1),
        "days_over_budget": spills,
        "assumption": f"{calls_per_row:g} API call(s) per due row at {rate} calls/min within "
        f"{budget} calls/day; unchanged rows cost 0, parents and look-ups more",
    }


def collect(engine, entity: str | None = None, failures: int = 10, calls_per_row: float = 1.0, config=None) -> dict:
    """Everything `status` shows, as a dict (also its --json)."""
    now = datetime.now(UTC)
    selected = Q.entities(entity)
    counts = Q.status_counts(engine, selected)
    backlog = Q.backlog(engine, selected, now)
    per_entity = {e: {**counts[e], **backlog[e]} for e in selected}
    config_errors: list[str] = []
    try:
        config = config or ZohoConfig.from_env()
        org, rate, budget = config.organization_id, config.requests_per_minute, config.daily_budget
    except ConfigError as exc:  # show the bad variable, and every other one as it is (never "not set")
        config_errors = [message for _, message in exc.problems]
        org, rate, budget = _each_alone(exc.variables)
    used = history.api_calls_today(engine, org) if org else 0
    due = sum(b["due"] for b in backlog.values())
    recent = history.recent_logs(engine, entity=entity, outcome="failed", since="24h", limit=failures)
    runs = history.recent_runs(engine, 1)
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "database": shown_url(engine),
        "entities": per_entity,
        "totals": {**Q.totals(counts), "due": due},
        "success_rate_24h": history.success_rate(engine, "24h"),
        "recent_failures": recent,
        "failing_rows": [r for e in selected for r in Q.failed_rows(engine, e, limit=failures)][:failures],
        "api": {
            "organization_id": org or None,
            "calls_today": used,
            "daily_budget": budget,
            "budget_used": round(used / budget, 4) if budget else None,
            "rate_limit_per_minute": rate,
        },
        "backlog": estimate(due, calls_per_row, rate, budget, used, now),
        "last_run": runs[0] if runs else None,
        "config_errors": config_errors,
    }


def _each_alone(bad: list[str]) -> tuple[str, int, int]:
    """Organization, pace and budget read one by one, a malformed one at its default (the error is shown)."""
    vars_, defaults = ZOHO_ENV_VARS, {f.name: f.default for f in fields(ZohoConfig)}

    def read(field: str, kind):
        name = vars_[field]
        return defaults[field] if name in bad else number(name, defaults[field], kind)

    org = text(vars_["organization_id"]) or ""
    return org, read("requests_per_minute", int), read("daily_budget", int)


def render(data: dict) -> str:
    out = [f"ZOHO sync status  {data['generated_at']}  ({data['database']})", ""]
    for message in data.get("config_errors") or []:
        out += [f"Configuration error: {message}"]
    if data.get("config_errors"):
        out.append("")
    headers = [
        "entity",
        "total",
        "synced",
        "pending",
        "syncing",
        "retrying",
        "failed",
        "dead-lettered",
        "due",
        "oldest due",
    ]
    rows = [
        [
            e,
            c["total"],
            c["synced"],
            c["pending"],
            c["syncing"],
            c["retrying"],
            c["failed"],
            c["dead_lettered"],
            c["due"],
            human_duration(c["oldest_due_age_s"]),
        ]
        for e, c in data["entities"].items()
    ]
    t = data["totals"]
    rows.append(
        [
            "TOTAL",
            t["total"],
            t["synced"],
            t["pending"],
            t["syncing"],
            t["retrying"],
            t["failed"],
            t["dead_lettered"],
            t["due"],
            "",
        ]
    )
    out.append(format_table(headers, rows))
    sr = data["success_rate_24h"]
    out.append("")
    if sr["rate"] is None:
        out.append("Success rate (24 h): no attempts")
    else:
        out.append(
            f"Success rate (24 h): {sr['rate']:.1%} of {sr['attempts']} attempts "
            f"({sr['failed']} failed, {sr['retrying']} retrying)"
        )
    api = data["api"]
    org = api["organization_id"] or "(ZOHO_ORGANIZATION_ID not set)"
    pct = f" ({api['budget_used']:.0%})" if api["budget_used"] is not None else ""
    out.append(
        f"API calls today (UTC): {api['calls_today']} of {api['daily_budget']}{pct} for organization {org}; "
        f"rate limit {api['rate_limit_per_minute']}/min"
    )
    b = data["backlog"]
    if b["due_rows"]:
        line = (
            f"Backlog: {b['due_rows']} row(s) due ≈ {b['estimated_calls']} call(s) ≈ "
            f"{human_duration(b['eta_s'])} to clear"
        )
        if b["days_over_budget"]:
            line += (
                f" (exceeds today's remaining budget of {b['remaining_budget_today']}: spills into "
                f"{b['days_over_budget']} more day(s))"
            )
        out.append(line)
        out.append(f"  assumption: {b['assumption']}")
    else:
        out.append("Backlog: nothing due")
    run = data["last_run"]
    if run:
        out.append(
            f"Last run: {run['run_id']} {run['status']} (started {run['started_at']}, "
            f"{'finished ' + run['finished_at'] if run['finished_at'] else 'heartbeat ' + run['heartbeat_at']})"
        )
    else:
        out.append("Last run: none recorded")
    if data["failing_rows"]:
        out += ["", "Rows failing now (dead-lettered first):"]
        out.append(
            format_table(
                ["entity", "row", "code", "error", "attempts", "dead-lettered"],
                [
                    [
                        r["entity"],
                        r["label"],
                        r["error_code"] or "",
                        r["error"] or "",
                        r["attempts"],
                        "yes" if r["dead_lettered"] else "",
                    ]
                    for r in data["failing_rows"]
                ],
            )
        )
    if data["recent_failures"]:
        out += ["", "Recent failed attempts (24 h, newest first):"]
        out.append(
            format_table(
                ["time", "entity", "row", "outcome", "code", "error"],
                [
                    [r["time"], r["entity"], r["label"], r["outcome"], r["error_code"] or "", r["error"] or ""]
                    for r in data["recent_failures"]
                ],
            )
        )
    if data["totals"]["failed"] or data["totals"]["dead_lettered"]:
        out += [
            "",
            "Retry: zoho-pipeline retry --failed [--entity E]   ·   details: zoho-pipeline logs --status failed",
        ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.entity:
        try:
            args.entity = entity_name(args.entity)
        except ValueError as exc:
            print(f"zoho-pipeline status: {exc}")
            return 2
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        data = collect(engine, args.entity, args.failures, args.calls_per_row)
    finally:
        engine.dispose()
    print(json.dumps(data, indent=2, default=str) if args.json else render(data))
    return 2 if data["config_errors"] else 0
