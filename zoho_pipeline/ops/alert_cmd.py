"""`zoho-pipeline alert`: alert on failed / dead-lettered rows and rows stuck in `syncing`, once per change of state.

Run it from cron (or let the Dagster sensors do the same): the first run that sees failed rows sends one alert;
later runs stay quiet while the state is unchanged; the run that finds everything clean sends one recovery.

Exit codes: 0 nothing failing, 1 something failing (alerted now or before) or a target could not be reached,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from zoho_pipeline.ops import alerts
from zoho_pipeline.ops.health import command_parser, format_table, open_source
from zoho_pipeline.sync import queries as Q


def _parser() -> argparse.ArgumentParser:
    p = command_parser(
        "alert",
        "Send an alert (email and/or webhook) when rows fail, are dead-lettered or are stuck, and one "
                    "when they recover. State is kept in the database, so a cron job alerts once per change.",
        epilog="Targets: ALERT_SMTP_HOST/PORT/USER/PASSWORD, ALERT_EMAIL_FROM/TO, ALERT_WEBHOOK_URL, "
               "ALERT_WEBHOOK_FORMAT=slack|discord|generic. Threshold: ALERT_FAILED_THRESHOLD (default 0).")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing, keep the state")
    p.add_argument("--test", action="store_true", help="send a test alert to every target (ignores state)")
    p.add_argument("--json", action="store_true", help="machine-readable outcome")
    p.add_argument("--stuck-after", type=float, default=float(os.environ.get("ZOHO_STUCK_AFTER_S") or 900),
                   metavar="SECONDS", help="a syncing claim older than this is stuck (default 900)")
    p.add_argument("--threshold", type=int, default=int(os.environ.get("ALERT_FAILED_THRESHOLD") or 0),
                   help="alert when failed + dead-lettered rows exceed this (default 0)")
    return p


def _ui_link(settings: alerts.AlertSettings, path: str) -> str | None:
    return settings.dagster_ui_url.rstrip("/") + path if settings.dagster_ui_url else None


def evaluate(engine, threshold: int = 0, stuck_after_s: float = 900.0, heartbeat_stale_s: float | None = None,
             settings: alerts.AlertSettings | None = None) -> list[tuple[str, bool, alerts.AlertEvent]]:
    """(state key, is_failing, event) for the checks the `alert` command watches."""
    from zoho_pipeline.sync.settings import SyncSettings

    settings = settings or alerts.AlertSettings.from_env()
    stale = heartbeat_stale_s if heartbeat_stale_s is not None else SyncSettings.from_env().run_stale_after_s
    counts = Q.status_counts(engine)
    failed_rows, per_entity = [], {}
    for entity, c in counts.items():
        n = c["failed"] + c["dead_lettered"]
        if n:
            per_entity[entity] = f"{c['failed']} failed, {c['dead_lettered']} dead-lettered"
            failed_rows += Q.failed_rows(engine, entity, limit=50)
    total_failed = sum(c["failed"] for c in counts.values())
    total_dead = sum(c["dead_lettered"] for c in counts.values())
    severity = "critical" if total_dead else "error"
    failed_event = alerts.AlertEvent(
        kind="failed_rows", severity=severity,
        title=f"{total_failed + total_dead} row(s) failed to sync to ZOHO"
              + (f" ({total_dead} dead-lettered)" if total_dead else ""),
        summary="These rows are not in ZOHO Billing (or ZOHO is out of date for them). Dead-lettered rows are not "
                "retried automatically: fix the cause, then `zoho-pipeline retry --failed` or launch zoho_retry_job.",
        details=per_entity, rows=failed_rows, link=_ui_link(settings, "/assets/zoho_customers"))
    stuck = []
    for entity in counts:
        stuck += Q.stuck_rows(engine, entity, stuck_after_s, limit=50, heartbeat_stale_s=stale)
    stuck_event = alerts.AlertEvent(
        kind="stuck_rows", severity="error",
        title=f"{len(stuck)} row(s) stuck in 'syncing'",
        summary="A run claimed these rows and did not finish them (it died or hangs). The next run re-checks them "
                "in ZOHO before any new create; if none is running, start one (Dagster UI → Jobs → zoho_sync_job).",
        details={"stuck after (s)": stuck_after_s, "runs": ", ".join(sorted({s["claimed_by"] or "?" for s in stuck}))},
        rows=stuck, link=_ui_link(settings, "/runs"))
    return [("failed_rows", total_failed + total_dead > threshold, failed_event),
            ("stuck_rows", bool(stuck), stuck_event)]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = alerts.AlertSettings.from_env()
    if args.test:
        event = alerts.AlertEvent(kind="test", severity="info", title="zoho-pipeline test alert",
                                  summary="If you can read this, alerts reach you.", details={"targets": ", ".join(
                                      settings.channels) or "none"})
        result = alerts.send_alert(event, settings, dry_run=args.dry_run)
        if not settings.channels:
            print("no alert target configured (set ALERT_SMTP_HOST + ALERT_EMAIL_TO and/or ALERT_WEBHOOK_URL)",
                  file=sys.stderr)
            return 2
        if not args.dry_run:
            print(f"sent to: {', '.join(result['sent']) or 'nothing'}"
                  + "".join(f"\n{ch} failed: {msg}" for ch, msg in result["errors"].items()))
        return 1 if result["errors"] else 0
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        outcomes = []
        for key, failing, event in evaluate(engine, args.threshold, args.stuck_after, settings=settings):
            outcomes.append(alerts.alert_on_state_change(engine, key, failing, event, settings, dry_run=args.dry_run,
                                                         out=sys.stderr if args.json else sys.stdout))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "targets": settings.channels, "checks": outcomes}, indent=2))
    else:
        if not settings.channels:
            print("note: no alert target configured; states are recorded, nothing is sent", file=sys.stderr)
        rows = [[o["key"], o["state"], o["previous"] or "-", o["action"] + (" (dry run)" if args.dry_run and
                                                                            o["result"] else ""),
                 ", ".join(o["result"]["sent"]) if o["result"] else "",
                 "; ".join(f"{k}: {v}" for k, v in o["result"]["errors"].items()) if o["result"] else ""]
                for o in outcomes]
        print(format_table(["check", "state", "was", "action", "sent to", "errors"], rows))
    failing = any(o["state"] == "failing" for o in outcomes)
    errors = any(o["result"] and o["result"]["errors"] for o in outcomes)
    return 1 if failing or errors else 0
