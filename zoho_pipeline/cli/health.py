"""`zoho-pipeline health`: the health check for cron, a probe, or a morning look.

    zoho-pipeline health              one line per category, problems listed
    zoho-pipeline health --detailed   every check with its figures
    zoho-pipeline health --json       machine-readable
    zoho-pipeline health --email      an email (headers, plain text + HTML) ready for `sendmail -t`
    zoho-pipeline health --no-api     skip the ZOHO call (for frequent probes)

Exit 0 healthy, 1 unhealthy, 2 usage error (no database given).
"""

from __future__ import annotations

import argparse
import json
import sys

from zoho_pipeline.cli.common import command_parser, open_source
from zoho_pipeline.monitor import alerts, health_report
from zoho_pipeline.monitor import health as H
from zoho_pipeline.monitor.thresholds import thresholds_help


def _parser() -> argparse.ArgumentParser:
    p = command_parser(
        "health",
        "Health of the ZOHO sync in four categories: database, recent activity, API connectivity, "
        "data integrity. Exit 0 healthy, 1 unhealthy.",
        epilog="Thresholds (the Dagster checks and `alert` use the same): " + thresholds_help(),
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--detailed", action="store_true", help="every check with its figures")
    mode.add_argument("--json", action="store_true", help="JSON report")
    mode.add_argument(
        "--email",
        action="store_true",
        help="print an RFC 5322 email (multipart plain text + HTML), e.g. `| sendmail -t`",
    )
    p.add_argument(
        "--send",
        action="store_true",
        help="with --email: send it to the alert targets (ALERT_*) instead of printing it",
    )
    p.add_argument("--no-api", action="store_true", help="skip the ZOHO connectivity call")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        report = H.run_health(engine, check_api_connectivity=not args.no_api)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    elif args.email:
        settings = alerts.AlertSettings.from_env()
        event = health_report.health_event(report)
        if args.send:
            result = alerts.send_alert(event, settings)
            print(
                f"sent to: {', '.join(result['sent']) or 'nothing'}"
                + "".join(f"\n{ch} failed: {msg}" for ch, msg in result["errors"].items()),
                file=sys.stderr,
            )
        else:
            print(alerts.build_email(event, settings).as_string())
    else:
        print(health_report.render_text(report, detailed=args.detailed))
    return report.exit_code
