"""`zoho-pipeline retry`: requeue failed or dead-lettered rows and sync them now, as a Dagster run of the same job
the schedule launches (the assets' retry config: claims, parents first, look-up before any second create, rate
limits, the zoho_api pool).

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
from zoho_pipeline.cli.sync import collect, instance_for_cli, materializations, run_job
from zoho_pipeline.defs.assets import ENTITY_OF_ASSET
from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.sync.requeue import requeue
from zoho_pipeline.sync.settings import SyncSettings
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


def _rows_asked_for(engine, args, entity: str | None, out: dict) -> dict[str, list[str]]:
    """{entity: source ids}: every failed row (--failed), or the rows the given keys name."""
    if args.failed:
        return {e: ids for e in Q.entities(entity) if (ids := Q.failed_ids(engine, e))}
    found, missing = Q.resolve_ids(engine, entity, args.ids)
    if missing:
        out["not_found"] = missing
        print(f"not found in {entity}: {', '.join(missing)}", file=sys.stderr)
    return {entity: sorted(set(found.values()))} if found else {}


def _print_requeued(out: dict, ids_by_entity: dict, labels: dict) -> None:
    total = sum(out["requeued"].values())
    if not total:
        print("nothing to requeue" + (" (rows currently syncing are left to their run)" if ids_by_entity else ""))
        return
    print(f"requeued {total} row(s): " + ", ".join(f"{n} {e}" for e, n in out["requeued"].items() if n))
    for e, ids in ids_by_entity.items():
        for i in ids[:20]:
            print(f"  {e}: {labels[e].get(i, i)}")
        if len(ids) > 20:
            print(f"  … and {len(ids) - 20} more {e}")


def _cannot_sync() -> str | None:
    """Why a sync cannot start now (the rows are requeued instead, for the next scheduled run), or None."""
    if not SyncSettings.from_env().enabled:
        return "ENABLE_ZOHO_SYNC is false: rows requeued, nothing sent; they sync once the switch is back on"
    missing = ZohoConfig.from_env().missing_credentials()
    if missing:
        return (
            f"rows requeued, but ZOHO credentials are missing ({', '.join(missing)}): the next scheduled run "
            "will sync them"
        )
    return None


def _retry(engine, args, entity: str | None) -> int:
    out: dict = {"requeued": {}, "not_found": [], "synced": None}
    ids_by_entity = _rows_asked_for(engine, args, entity, out)
    exit_code = 1 if out["not_found"] else 0
    labels = {e: Q.labels_for(engine, e, ids) for e, ids in ids_by_entity.items()}
    why_not = None if args.no_sync or not ids_by_entity else _cannot_sync()
    if args.no_sync or why_not or not ids_by_entity:  # requeue only: no call to ZOHO from here
        out["requeued"] = {e: requeue(engine, e, ids=ids, force=args.force) for e, ids in ids_by_entity.items()}
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            _print_requeued(out, ids_by_entity, labels)
        if why_not:
            print(why_not, file=sys.stderr)
            return 2
        return exit_code
    # requeue and sync inside a Dagster run (the assets' retry config), in the zoho_api pool like every sync
    retry = {e: {"ids": ids, "force": args.force} for e, ids in ids_by_entity.items()}
    instance, note = instance_for_cli()
    if note and not args.json:
        print(note, file=sys.stderr)
    result = run_job(list(ids_by_entity), instance=instance, retry=retry, trigger="retry")
    report, errors, _ = collect(result)
    out["requeued"] = {ENTITY_OF_ASSET[k]: m.get("requeued", 0) for k, m in materializations(result).items()}
    out["synced"] = {**report.as_dict(), "dagster_run_id": result.run_id, "errors": errors}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        _print_requeued(out, ids_by_entity, labels)
        print()
        _print_report(report, labels)
        for e in errors:
            print(f"the run failed: {e}", file=sys.stderr)
    if not result.success or errors:
        return 2
    return max(exit_code, 1 if report.exit_code else 0)
