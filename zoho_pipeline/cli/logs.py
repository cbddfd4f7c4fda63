"""`zoho-pipeline logs`: the attempt log (zoho_sync_logs), newest first, each line naming its row as a person
knows it (customer name and email, "<package> for <email>", invoice number, transaction id), never only a uuid.

    zoho-pipeline logs --status failed --since 2h
    zoho-pipeline logs --entity invoices --since 2025-06-01 --limit 100 --offset 100
    zoho-pipeline logs --row INV-2025-000123 --entity invoices        (one row's history)

Exit 0 (also when nothing matches), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json

from zoho_pipeline.cli.common import command_parser, entity_arg, format_table, open_source, row_id
from zoho_pipeline.monitor import history

OUTCOMES = ("synced", "unchanged", "failed", "retrying", "dead_lettered", "dry_run")


def _parser() -> argparse.ArgumentParser:
    p = command_parser("logs", "The sync attempt log, newest first.")
    p.add_argument("--entity", type=entity_arg, help="plans, customers, subscriptions, invoices or payments")
    p.add_argument(
        "--status",
        "--outcome",
        dest="status",
        action="append",
        help=f"outcome to show ({', '.join(OUTCOMES)}); repeatable; 'failed' includes dead letters",
    )
    p.add_argument("--since", help="ISO time (2025-06-01T08:00, UTC when no offset) or a duration: 30m, 2h, 7d")
    p.add_argument(
        "--row", help="one row's history: its id, or email / invoice number / transaction id (needs --entity)"
    )
    p.add_argument("--run", help="only lines of this run id")
    p.add_argument("--limit", type=int, default=50, help="lines per page (default 50)")
    p.add_argument("--offset", type=int, default=0, help="lines to skip (paging)")
    p.add_argument("--json", action="store_true", help="JSON lines array")
    return p


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    entity = args.entity
    try:
        history.parse_since(args.since)
    except ValueError as exc:
        parser.error(str(exc))
    if args.row and not entity:
        parser.error("--row needs --entity")
    if args.limit < 0 or args.offset < 0:
        parser.error("--limit and --offset must not be negative")
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        lines = history.recent_logs(
            engine,
            entity=entity,
            outcome=args.status,
            since=args.since,
            limit=args.limit + 1,
            offset=args.offset,
            entity_id=row_id(engine, entity, args.row),
            run_id=args.run,
        )
        has_more = len(lines) > args.limit
        lines = lines[: args.limit]
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(lines, indent=2, default=str))
        return 0
    if not lines:
        print("no log lines match")
        return 0
    print(
        format_table(
            ["time", "entity", "row", "action", "outcome", "code", "error", "attempt", "run"],
            [
                [
                    x["time"],
                    x["entity"],
                    x["label"],
                    x["action"],
                    x["outcome"],
                    x["error_code"] or "",
                    x["error"] or "",
                    x["attempt"] or "",
                    x["run_id"] or "",
                ]
                for x in lines
            ],
        )
    )
    more = f" · next page: --offset {args.offset + args.limit}" if has_more else ""
    print(f"\n{len(lines)} line(s), offset {args.offset}{more}")
    return 0
