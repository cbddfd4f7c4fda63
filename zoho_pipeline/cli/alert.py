"""`zoho-pipeline alert`: alert on failed / dead-lettered rows and rows stuck in `syncing`, once per change of state.

Run it from cron (or let the Dagster sensors do the same): the first run that sees failed rows sends one alert;
later runs stay quiet while the state is unchanged; the run that finds everything clean sends one recovery.

Exit codes: 0 nothing failing, 1 something failing (alerted now or before) or a target could not be reached,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from zoho_pipeline.cli.common import command_parser, format_table, open_source
from zoho_pipeline.monitor import alerts
from zoho_pipeline.monitor.thresholds import Thresholds
from zoho_pipeline.monitor.verdicts import judge


def _parser() -> argparse.ArgumentParser:
    th = Thresholds.from_env()
    p = command_parser(
        "alert",
        "Send an alert (email and/or webhook) when rows fail, are dead-lettered or are stuck, and one "
        "when they recover. State is kept in the database, so a cron job alerts once per change.",
        epilog="Targets: ALERT_SMTP_HOST/PORT/USER/PASSWORD, ALERT_EMAIL_FROM/TO, ALERT_WEBHOOK_URL, "
        "ALERT_WEBHOOK_FORMAT=slack|discord|generic. Thresholds: ZOHO_MAX_FAILED_ROWS, ZOHO_MAX_DEAD_LETTERED, "
        "ZOHO_STUCK_AFTER_S (the Dagster checks and `health` use the same).",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing, keep the state")
    p.add_argument("--test", action="store_true", help="send a test alert to every target (ignores state)")
    p.add_argument("--json", action="store_true", help="machine-readable outcome")
    p.add_argument(
        "--stuck-after",
        type=float,
        default=th.stuck_after_s,
        metavar="SECONDS",
        help=f"a syncing claim older than this is stuck (default ZOHO_STUCK_AFTER_S, {th.stuck_after_s:g})",
    )
    p.add_argument(
        "--threshold",
        type=int,
        default=th.max_failed,
        help=f"failed rows of an entity above this alert (default ZOHO_MAX_FAILED_ROWS, {th.max_failed}); "
        "any dead-lettered row above ZOHO_MAX_DEAD_LETTERED alerts too",
    )
    return p


def evaluate(
    engine,
    threshold: int | None = None,
    stuck_after_s: float | None = None,
    settings: alerts.AlertSettings | None = None,
) -> list[tuple[str, bool, alerts.AlertEvent]]:
    """(state key, is_failing, event) for the verdicts the `alert` command watches (monitor.alerts)."""
    th = Thresholds.from_env()
    changes = {k: v for k, v in (("max_failed", threshold), ("stuck_after_s", stuck_after_s)) if v is not None}
    th = dataclasses.replace(th, **changes)
    return alerts.verdict_alerts(judge(engine, th), settings or alerts.AlertSettings.from_env())


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = alerts.AlertSettings.from_env()
    if args.test:
        event = alerts.AlertEvent(
            kind="test",
            severity="info",
            title="zoho-pipeline test alert",
            summary="If you can read this, alerts reach you.",
            details={"targets": ", ".join(settings.channels) or "none"},
        )
        result = alerts.send_alert(event, settings, dry_run=args.dry_run)
        if not settings.channels:
            print(
                "no alert target configured (set ALERT_SMTP_HOST + ALERT_EMAIL_TO and/or ALERT_WEBHOOK_URL)",
                file=sys.stderr,
            )
            return 2
        if not args.dry_run:
            print(
                f"sent to: {', '.join(result['sent']) or 'nothing'}"
                + "".join(f"\n{ch} failed: {msg}" for ch, msg in result["errors"].items())
            )
        return 1 if result["errors"] else 0
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        outcomes = []
        for key, failing, event in evaluate(engine, args.threshold, args.stuck_after, settings=settings):
            outcomes.append(
                alerts.alert_on_state_change(
                    engine,
                    key,
                    failing,
                    event,
                    settings,
                    dry_run=args.dry_run,
                    out=sys.stderr if args.json else sys.stdout,
                )
            )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "targets": settings.channels, "checks": outcomes}, indent=2))
    else:
        if not settings.channels:
            print("note: no alert target configured; states are recorded, nothing is sent", file=sys.stderr)
        rows = [
            [
                o["key"],
                o["state"],
                o["previous"] or "-",
                o["action"] + (" (dry run)" if args.dry_run and o["result"] else ""),
                ", ".join(o["result"]["sent"]) if o["result"] else "",
                "; ".join(f"{k}: {v}" for k, v in o["result"]["errors"].items()) if o["result"] else "",
            ]
            for o in outcomes
        ]
        print(format_table(["check", "state", "was", "action", "sent to", "errors"], rows))
    failing = any(o["state"] == "failing" for o in outcomes)
    errors = any(o["result"] and o["result"]["errors"] for o in outcomes)
    return 1 if failing or errors else 0
