"""`zoho-pipeline retry`: requeue failed or dead-lettered rows and sync them now, through the same engine as the
scheduled runs (claims, parents first, look-up before any second create, rate limits).

    zoho-pipeline retry invoices INV-2025-000123 INV-2025-000124     rows by id or by what a person knows them by
    zoho-pipeline retry customers thandi@example.co.za                (email, invoice number, transaction id, ...)
    zoho-pipeline retry --failed                                      every failed / retrying / dead-lettered row
    zoho-pipeline retry --failed --entity payments
    zoho-pipeline retry --failed --no-sync                            only requeue: the next scheduled run syncs
    zoho-pipeline retry customers ID --force                          resend even if unchanged (ZOHO edited by hand)

Exit 0 when every requeued row synced (or was requeued with --no-sync), 1 when some failed again or a given row
does not exist, 2 on a usage error or when the sync cannot start (no credentials, ENABLE_ZOHO_SYNC=false).
"""

from __future__ import annotations

import argparse
import json
import sys

from zoho_pipeline.cli.common import command_parser, entity_arg, format_table, open_source
from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.sync.requeue import requeue
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline.zoho.config import ZohoConfig


def _parser() -> argparse.ArgumentParser:
    p = command_parser("retry", "Requeue failed or dead-lettered rows and sync them now.")
    p.add_argument("entity", nargs="?", type=entity_arg, help="plans, customers, subscriptions, invoices or payments")
    p.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="row ids, or emails (customers), invoice numbers, transaction ids, plan codes, ZOHO ids",
    )
    p.add_argument("--failed", action="store_true", help="every failed, retrying or dead-lettered row")
    p.add_argument("--entity", dest="entity_opt", type=entity_arg, help="with --failed: only this entity")
    p.add_argument("--no-sync", action="store_true", help="only requeue; the next scheduled run picks them up")
    p.add_argument(
        "--force",
        action="store_true",
        help="also forget the last payload hash, so unchanged rows are sent to ZOHO again",
    )
    p.add_argument("--json", action="store_true", help="machine-readable outcome")
    return p


def _print_report(report, labels: dict) -> None:
    rows = []
    for name, rep in report.entities.items():
        rows.append(
            [
                name,
                rep.created,
                rep.updated,
                rep.adopted,
                rep.unchanged,
                rep.failed,
                rep.retried,
                rep.dead_lettered,
                rep.api_calls,
            ]
        )
    print(
        format_table(
            ["entity", "created", "updated", "adopted", "unchanged", "failed", "retrying", "dead", "api calls"], rows
        )
    )
    if report.failures:
        print("\nStill failing:")
        print(
            format_table(
                ["entity", "row", "code", "error", "dead-lettered"],
                [
                    [f.entity, f.label, f.error_code or "", f.error, "yes" if f.dead_lettered else ""]
                    for f in report.failures
                ],
            )
        )
    if report.stopped_reason:
        print(f"\nrun stopped: {report.stopped_reason} {report.stopped_detail or ''}".rstrip())


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.failed and args.ids:
        parser.error("give either ENTITY ID [ID ...] or --failed, not both")
    if not args.failed and not (args.entity and args.ids):
        parser.error("give ENTITY ID [ID ...], or --failed [--entity E]")
    entity = args.entity_opt or args.entity
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        return _retry(engine, args, entity)
    finally:
        engine.dispose()


def _retry(engine, args, entity: str | None) -> int:
    from zoho_pipeline.sync.settings import SyncSettings

    settings = SyncSettings.from_env()
    out: dict = {"requeued": {}, "not_found": [], "synced": None}
    ids_by_entity: dict[str, list[str]] = {}
    exit_code = 0
    if args.failed:
        for e in Q.entities(entity):
            ids = Q.failed_ids(engine, e)
            if ids:
                ids_by_entity[e] = ids
    else:
        found, missing = Q.resolve_ids(engine, entity, args.ids)
        if missing:
            out["not_found"] = missing
            print(f"not found in {entity}: {', '.join(missing)}", file=sys.stderr)
            exit_code = 1
        if found:
            ids_by_entity[entity] = sorted(set(found.values()))
    for e, ids in ids_by_entity.items():
        out["requeued"][e] = requeue(engine, e, ids=ids, force=args.force)
    total = sum(out["requeued"].values())
    labels = {e: Q.labels_for(engine, e, ids) for e, ids in ids_by_entity.items()}
    if not args.json:
        if total:
            print(f"requeued {total} row(s): " + ", ".join(f"{n} {e}" for e, n in out["requeued"].items() if n))
            for e, ids in ids_by_entity.items():
                for i in ids[:20]:
                    print(f"  {e}: {labels[e].get(i, i)}")
                if len(ids) > 20:
                    print(f"  … and {len(ids) - 20} more {e}")
        else:
            print("nothing to requeue" + (" (rows currently syncing are left to their run)" if ids_by_entity else ""))
    if args.no_sync or not total:
        if args.json:
            print(json.dumps(out, indent=2))
        return exit_code
    if not settings.enabled:
        print(
            "ENABLE_ZOHO_SYNC is false: rows requeued, nothing sent; they sync once the switch is back on",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps(out, indent=2))
        return 2
    config = ZohoConfig.from_env()
    if config.missing_credentials():
        print(
            "rows requeued, but ZOHO credentials are missing ("
            + ", ".join(config.missing_credentials())
            + "): the next scheduled run will sync them",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps(out, indent=2))
        return 2
    from zoho_pipeline.sync.engine import run_sync

    with zoho_client(config, engine) as client:
        report = run_sync(
            engine,
            client,
            settings,
            entities=list(ids_by_entity),
            mode="due",
            ids={e: ids for e, ids in ids_by_entity.items()},
        )
    out["synced"] = report.as_dict()
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print()
        _print_report(report, labels)
    return max(exit_code, 1 if report.exit_code else 0)
