"""`zoho-pipeline calls`: the API call inspector, the last calls to ZOHO (newest first) with what was sent and
what ZOHO answered (the bodies of failed calls; ZOHO_INSPECTOR_BODIES=all keeps every call's), personal and
secret fields redacted (the runbook lists them).

    zoho-pipeline calls --failed --since 2h
    zoho-pipeline calls --entity customers --row thandi@example.co.za        (one row's calls)
    zoho-pipeline calls --id 7312845127418923                                (the call a failure names)

Exit 0 (also when nothing matches), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json

from zoho_pipeline.cli.common import command_parser, entity_arg, format_table, open_source, row_id
from zoho_pipeline.monitor import calls, history


def _parser() -> argparse.ArgumentParser:
    p = command_parser("calls", "The last API calls to ZOHO, newest first, with their request and response.")
    p.add_argument("--entity", type=entity_arg, help="plans, customers, subscriptions, invoices or payments")
    p.add_argument("--row", help="one row's calls: its id, or email / invoice number / transaction id (needs --entity)")
    p.add_argument("--id", type=int, dest="call_id", help="one call, as a failure names it")
    p.add_argument(
        "--failed", action="store_true", help="only calls that failed (no response, HTTP ≥ 400, a ZOHO code)"
    )
    p.add_argument("--since", help="ISO time (UTC when no offset) or a duration: 30m, 2h, 7d")
    p.add_argument("--run", help="only calls of this run id (a Dagster run id covers all its assets)")
    p.add_argument("--limit", type=int, default=20, help="calls to show (default 20)")
    p.add_argument("--bodies", action="store_true", help="print each call's request and response bodies")
    p.add_argument("--json", action="store_true", help="JSON array, bodies included")
    return p


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        since = history.parse_since(args.since)
    except ValueError as exc:
        parser.error(str(exc))
    if args.row and not args.entity:
        parser.error("--row needs --entity")
    if args.limit < 0:
        parser.error("--limit must not be negative")
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        found_calls = calls.recent_calls(
            engine,
            entity=args.entity,
            entity_id=row_id(engine, args.entity, args.row),
            failed=args.failed,
            since=since,
            call_id=args.call_id,
            run_id=args.run,
            limit=args.limit,
        )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(found_calls, indent=2, default=str, ensure_ascii=False))
        return 0
    if not found_calls:
        print("no API calls match (the inspector keeps the last ZOHO_INSPECTOR_CALLS calls)")
        return 0
    print(
        format_table(
            ["id", "time", "entity", "row", "call", "status", "code", "ms"],
            [
                [
                    c["id"],
                    c["time"],
                    c["entity_type"] or "",
                    c["entity_id"] or "",
                    f"{c['method']} {c['path_template']}",
                    c["status"] if c["status"] is not None else (c["error"] or "no response"),
                    "" if c["zoho_code"] is None else c["zoho_code"],
                    c["duration_ms"],
                ]
                for c in found_calls
            ],
        )
    )
    if args.bodies or args.call_id is not None:
        for c in found_calls:
            print(
                f"\n#{c['id']} {c['method']} {c['path']}" + (f"  query {json.dumps(c['query'])}" if c["query"] else "")
            )
            if c["request_body"] is None and c["response_body"] is None:
                print("  (no bodies: they are kept for failed calls; ZOHO_INSPECTOR_BODIES=all keeps every call's)")
                continue
            print("  request:  " + json.dumps(c["request_body"], ensure_ascii=False))
            print("  response: " + json.dumps(c["response_body"], ensure_ascii=False))
    return 0
