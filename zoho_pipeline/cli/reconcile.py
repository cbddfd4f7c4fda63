"""`zoho-pipeline reconcile`: differences between the source and ZOHO, row by row (read-only).

    zoho-pipeline reconcile                         every entity, every synced row compared
    zoho-pipeline reconcile --entity invoices --sample 200 --max-calls 300
    zoho-pipeline reconcile --json

Kinds of difference: missing_in_zoho, duplicate_in_zoho, unlinked_in_zoho, unknown_in_zoho, mismatch (a field
differs), synced_without_id. Exit 0 when ZOHO matches, 1 when differences exist, 2 on a usage or configuration
error (no database, no ZOHO credentials, ZOHO refused them).
"""

from __future__ import annotations

import argparse
import json
import sys

from zoho_pipeline.cli.common import command_parser, entity_arg, format_table, open_source
from zoho_pipeline.monitor.reconcile import reconcile
from zoho_pipeline.sync.entities import entities as entity_names
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.errors import AUTH, ZohoError


def _parser() -> argparse.ArgumentParser:
    p = command_parser("reconcile", "Compare the source with ZOHO Billing row by row (reads only).")
    p.add_argument("--entity", action="append", type=entity_arg, help="only this entity (repeatable); default all")
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="compare the fields of at most N synced rows per entity (random); default all",
    )
    p.add_argument(
        "--max-calls",
        type=int,
        default=None,
        metavar="M",
        help="API calls this reconcile may spend in total (default: no limit; mind ZOHO_DAILY_BUDGET)",
    )
    p.add_argument(
        "--no-list",
        action="store_true",
        help="do not list ZOHO: compare sampled rows by GET only (no unknown/duplicate detection)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the sample (repeatable audits)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    entities = entity_names(args.entity) if args.entity else None
    config = ZohoConfig.from_env()
    if config.missing_credentials():
        print("ZOHO credentials not configured: set " + ", ".join(config.missing_credentials()), file=sys.stderr)
        return 2
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        with zoho_client(config, engine) as client:
            report = reconcile(
                engine,
                client,
                entities,
                sample=args.sample,
                max_calls=args.max_calls,
                list_zoho=not args.no_list,
                seed=args.seed,
            )
    except ZohoError as exc:
        print(f"reconcile stopped: {exc}", file=sys.stderr)
        return 2 if exc.kind == AUTH else 1
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return report.exit_code
    rows = []
    for name, e in report.entities.items():
        c = e.counts()
        rows.append(
            [
                name,
                e.source_synced,
                "-" if e.zoho_listed is None else e.zoho_listed,
                e.compared,
                c["missing_in_zoho"],
                c["duplicate_in_zoho"],
                c["unlinked_in_zoho"],
                c["unknown_in_zoho"],
                c["mismatch"],
                c["synced_without_id"],
                e.api_calls,
                "yes" if e.complete else "NO",
            ]
        )
    print(
        format_table(
            [
                "entity",
                "synced",
                "in ZOHO",
                "compared",
                "missing",
                "duplicate",
                "unlinked",
                "unknown",
                "mismatch",
                "no id",
                "calls",
                "complete",
            ],
            rows,
        )
    )
    if report.differences:
        print("\nDifferences:")
        print(
            format_table(
                ["entity", "kind", "row", "zoho id", "field", "source", "ZOHO", "note"],
                [
                    [
                        d.entity,
                        d.kind,
                        d.label,
                        d.zoho_id or "",
                        d.field or "",
                        "" if d.source_value is None else d.source_value,
                        "" if d.zoho_value is None else d.zoho_value,
                        d.detail,
                    ]
                    for d in report.differences
                ],
            )
        )
    for name, e in report.entities.items():
        for note in e.notes:
            print(f"note ({name}): {note}")
    print(
        f"\n{len(report.differences)} difference(s); {report.api_calls} API call(s)"
        + ("" if report.complete else " — INCOMPLETE: raise --max-calls for a full verdict")
    )
    return report.exit_code
