"""`zoho-pipeline reconcile`: differences between the source and ZOHO, row by row (read-only).

    zoho-pipeline reconcile                         every entity, every synced row compared
    zoho-pipeline reconcile --entity invoices --sample 200 --max-calls 300
    zoho-pipeline reconcile --json
    zoho-pipeline reconcile --ledger [--csv PATH]   every customer's balance in ZOHO against the source's

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
    p.add_argument(
        "--drift",
        action="store_true",
        help="instead: the fields changed in ZOHO since we sent them (one GET per row checked, --sample/--max-calls "
        "apply); `retry ENTITY KEY --force` sends the source's version back",
    )
    p.add_argument(
        "--ledger",
        action="store_true",
        help="instead: every customer's balance in ZOHO against what the source says they owe and hold in credit, "
        "and the linked recurring invoices (list pages only)",
    )
    p.add_argument("--csv", metavar="PATH", help="with --ledger: the table of differences as CSV (- for stdout)")
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
    if args.drift:
        return _drift(args, config, engine, entities)
    if args.ledger:
        from zoho_pipeline.cli import ledger

        return ledger.main(args, config, engine)
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


def _drift(args, config, engine, entities) -> int:
    """`reconcile --drift`: exit 0 nothing drifted, 1 some rows drifted, 2 ZOHO refused the credentials."""
    from zoho_pipeline.monitor.drift import drift
    from zoho_pipeline.sync.diff import show

    try:
        with zoho_client(config, engine) as client:
            report = drift(engine, client, entities, sample=args.sample, max_calls=args.max_calls, seed=args.seed)
    except ZohoError as exc:
        print(f"drift check stopped: {exc}", file=sys.stderr)
        return 2 if exc.kind == AUTH else 1
    finally:
        engine.dispose()
    drifted = report.as_dict()["drifted_rows"]
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return 1 if drifted else 0
    print(
        format_table(
            ["entity", "candidates", "checked", "drifted", "calls", "complete"],
            [
                [n, e.candidates, e.checked, len(e.drifted_ids), e.api_calls, "yes" if e.complete else "no (sample)"]
                for n, e in report.entities.items()
            ],
        )
    )
    if report.drifts:
        print("\nChanged in ZOHO since we sent them:")
        print(
            format_table(
                ["entity", "row", "zoho id", "field", "we sent", "ZOHO holds"],
                [
                    [d.entity, d.label, d.zoho_id, d.field, show(d.field, d.sent), show(d.field, d.zoho)]
                    for d in report.drifts
                ],
            )
        )
        print("\nThe source is the truth: `zoho-pipeline retry ENTITY KEY... --force` sends its version back.")
    print(f"\n{drifted} row(s) drifted; {report.api_calls} API call(s)")
    return 1 if drifted else 0
