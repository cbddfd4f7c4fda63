"""`zoho-pipeline sync`: run zoho_all_entities_sync_job in this process through Dagster, so the run, its metadata and its checks
land in the instance's history like any scheduled run, then print a per-entity summary.

Exit 0 when every due row synced, 1 when some rows failed or were left due (they are listed), 2 when the run itself
failed (credentials rejected, source unreachable, a bug).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import re
import sys
import uuid
from dataclasses import fields
from pathlib import Path

from zoho_pipeline.cli.sync_summary import format_summary
from zoho_pipeline.env import choice, text
from zoho_pipeline.sync import diff
from zoho_pipeline.sync.report import EntityReport, Failure, RunReport
from zoho_pipeline.sync.settings import ENTITY_ORDER, MODES

DIFF_ROWS_LISTED = 200  # rows printed by --diff; the full diff is in the files the run wrote

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # ZOHO_SYNC_LOG_LEVEL
MEASURED_LAST = ("backlog", "in_doubt", "still_retrying", "next_attempt_at")  # what is left, not what was done


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}", value):
        raise argparse.ArgumentTypeError("expected YYYY-MM, e.g. 2025-03")
    return f"{value}-01"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoho-pipeline sync",
        description="Sync the source database to ZOHO Billing now, as a Dagster run (recorded in DAGSTER_HOME).",
    )
    p.add_argument(
        "--entity",
        action="append",
        choices=ENTITY_ORDER,
        metavar="ENTITY",
        help=f"only this entity (repeatable; missing parents are synced too): {', '.join(ENTITY_ORDER)}",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="due",
        help="due: new, changed and retry-due rows (default); failed: failed and dead-lettered rows again; "
        "all: every row (unchanged rows cost no API call)",
    )
    p.add_argument(
        "--month",
        type=_month,
        metavar="YYYY-MM",
        help="only invoices dated and payments completed in this month (its Dagster partition)",
    )
    p.add_argument("--dry-run", action="store_true", help="map and validate only: show what would be sent")
    p.add_argument(
        "--diff",
        action="store_true",
        help="with --dry-run: per row that would change, its fields old → new (creates: the whole payload)",
    )
    p.add_argument("--json", action="store_true", help="print the merged run report as JSON")
    return p


# --- running the job ---------------------------------------------------------------------------------------------


def instance_for_cli():
    """The instance in DAGSTER_HOME (made when the directory does not exist yet, as `make` names it before any
    run), else an ephemeral one with a note that the run is not kept."""
    import dagster as dg

    if text("DAGSTER_HOME"):
        home = Path(text("DAGSTER_HOME"))
        home.mkdir(parents=True, exist_ok=True)
        # two CLI runs on a fresh DAGSTER_HOME would both create Dagster's SQLite storage ("table runs already
        # exists", "more than one head"): the first to take the lock creates it, the others find it made
        with open(home / ".zoho-pipeline-init.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            instance = dg.DagsterInstance.get()
            instance.get_runs(limit=1)
            instance.all_instigator_state()
        return instance, None
    return dg.DagsterInstance.ephemeral(), (
        "note: DAGSTER_HOME is not set, so this run is not kept; set it (make "
        "demo uses .dagster_home) to see the run in `dagster dev`"
    )


def run_job(
    entities,
    mode: str = "due",
    month: str | None = None,
    dry_run: bool = False,
    instance=None,
    retry: dict | None = None,
    trigger: str = "cli",
):
    """Execute zoho_all_entities_sync_job in-process for the assets of `entities`, with their database checks.
    `retry`: asset config that requeues rows first ({"ids": [...], "force": bool} per entity), over every month.
    Returns the ExecuteInProcessResult."""
    import dagster as dg

    from zoho_pipeline.definitions import defs
    from zoho_pipeline.defs import cli_runs
    from zoho_pipeline.defs.assets import ASSET_OF_ENTITY
    from zoho_pipeline.defs.jobs import SYNC_TAGS, sync_target, zoho_all_entities_sync_job
    from zoho_pipeline.defs.resources import resources_from_env

    job = defs.resolve_job_def(zoho_all_entities_sync_job.name)
    assets = {e: dg.AssetKey(ASSET_OF_ENTITY[e]) for e in entities}
    # the selected assets and their database checks (not the API-spending reconciliation)
    checks = {k for k in job.asset_layer.asset_graph.asset_check_keys if k.asset_key in assets.values()}
    job = job.get_subset(asset_selection=set(assets.values()), asset_check_selection=checks)
    config = {e: {"mode": mode, "dry_run": dry_run, **(retry or {}).get(e, {})} for e in entities}
    run_config = {
        "ops": {key.to_python_identifier(): {"config": config[e]} for e, key in assets.items()},
        # the summary is the output; the full event log is in the run (dagster dev)
        "loggers": {"console": {"config": {"log_level": choice("ZOHO_SYNC_LOG_LEVEL", "warning", LOG_LEVELS).upper()}}},
    }
    if month:
        partition_key, range_tags = month, {}
    else:
        partition_key, range_tags = sync_target(_source_engine(), entities, "all" if retry else mode)
    resources = resources_from_env()  # this process's environment now, not when definitions were first imported
    settings = resources["engine"].settings()
    instance = instance or dg.DagsterInstance.ephemeral()
    cli_runs.fail_dead_runs(instance, settings.run_stale_after_s)  # a killed CLI run must not hold the queue
    run_id = str(uuid.uuid4())
    with cli_runs.Heartbeat(instance, run_id, settings.heartbeat_interval_s):
        return job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=partition_key,
            raise_on_error=False,
            resources=resources,
            run_id=run_id,
            tags={
                **SYNC_TAGS,
                **range_tags,
                **cli_runs.run_tags(),
                "zoho_trigger": trigger,
                **({"zoho_dry_run": "1"} if dry_run else {}),
            },
        )


def materializations(result) -> dict[str, dict]:
    """{asset key: metadata values} of the first materialization of each asset in an in-process run."""
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out.setdefault(mat.asset_key.to_user_string(), {k: v.value for k, v in mat.metadata.items()})
    return out


def diffs_of(result) -> tuple[list[diff.RowDiff], list[str]]:
    """(every row diff the dry run's assets wrote, in entity order; the files holding them)."""
    from zoho_pipeline.sync.settings import ENTITY_ORDER

    rows, files = [], []
    for meta in materializations(result).values():
        if meta.get("diff_file"):
            files.append(meta["diff_file"])
            rows += [diff.RowDiff.from_dict(d) for d in json.loads(Path(meta["diff_file"]).read_text())]
    rows.sort(key=lambda d: (ENTITY_ORDER.index(d.entity), d.entity_id))
    return rows, files


def _source_engine():
    from zoho_pipeline.defs.resources import SourceDatabaseResource

    url = text("SOURCE_DATABASE_URL")
    if not url:
        raise RuntimeError("SOURCE_DATABASE_URL is not set (a SQLAlchemy URL of the provider's database)")
    return SourceDatabaseResource(url=url).engine()


def _entity_report(data: dict) -> EntityReport:
    names = {f.name for f in fields(EntityReport)}
    rep = EntityReport(**{k: v for k, v in data.items() if k in names and k != "failures"})
    rep.failures = [Failure(**f) for f in data.get("failures") or []]
    return rep


def merge_reports(reports: list[tuple[str, dict]], run_id: str) -> RunReport:
    """One RunReport from the reports the assets stored in their metadata (in run order). Counts add up; what is
    left of each entity (backlog, in doubt, still retrying) is the one measured last."""
    merged = RunReport(run_id=run_id)
    for _asset_entity, data in reports:
        merged.dry_run = merged.dry_run or data.get("dry_run", False)
        merged.api_calls += data.get("api_calls") or 0
        merged.duration_s += data.get("duration_s") or 0.0
        merged.setup_calls += data.get("setup_calls") or 0
        if data.get("stopped_reason") and not merged.stopped_reason:
            merged.stopped_reason, merged.stopped_detail = data["stopped_reason"], data.get("stopped_detail")
        for name, ent in (data.get("entities") or {}).items():
            rep = _entity_report(ent)
            into = merged.entity(name)
            for f in fields(EntityReport):
                if f.name in ("entity", "failures"):
                    continue
                value = getattr(rep, f.name)
                if f.name in MEASURED_LAST:
                    setattr(into, f.name, value)
                elif not isinstance(value, int | float):  # not a count (before_sync): the latest one given
                    if value is not None:
                        setattr(into, f.name, value)
                else:
                    setattr(into, f.name, getattr(into, f.name) + getattr(rep, f.name))
            into.failures.extend(rep.failures)
    merged.entities = {e: merged.entities[e] for e in ENTITY_ORDER if e in merged.entities}
    return merged


def collect(result) -> tuple[RunReport, list[str], list[tuple[str, bool, str]]]:
    """(merged report, step errors, check results (name, passed, description)) of an in-process run."""
    from zoho_pipeline.defs.assets import ENTITY_OF_ASSET

    reports = [
        (ENTITY_OF_ASSET.get(key, key), meta["report"])
        for key, meta in materializations(result).items()
        if "report" in meta
    ]
    errors = []
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            errors.append(f"{event.step_key}: {(err.message if err else event.message or '').strip()}")
        elif event.event_type_value == "RUN_FAILURE" and not errors:
            errors.append((event.message or "run failed").strip())
    checks = [
        (f"{ev.asset_key.to_user_string()}.{ev.check_name}", ev.passed, ev.description or "")
        for ev in result.get_asset_check_evaluations()
    ]
    return merge_reports(reports, result.run_id), errors, checks


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.diff and not args.dry_run:
        parser.error("--diff shows what a run would change: use it with --dry-run")
    entities = args.entity or list(ENTITY_ORDER)
    instance, note = instance_for_cli()
    if note and not args.json:
        print(note, file=sys.stderr)
    try:
        result = run_job(entities, mode=args.mode, month=args.month, dry_run=args.dry_run, instance=instance)
    except Exception as exc:  # noqa: BLE001 - config/launch errors (e.g. an unset env var): the run never started
        print(f"zoho-pipeline sync: the run could not start: {exc}", file=sys.stderr)
        return 2
    report, errors, checks = collect(result)
    code = 2 if (not result.success or errors) else report.exit_code
    if args.json:
        data = report.as_dict()
        if args.diff:
            data["diffs"] = [d.as_dict() for d in diffs_of(result)[0]]
        data.update(
            exit_code=code,
            dagster_run_id=result.run_id,
            errors=errors,
            checks=[{"check": n, "passed": p, "description": d} for n, p, d in checks],
        )
        print(json.dumps(data, indent=2, default=str))
        return code
    from zoho_pipeline.zoho.config import ZohoConfig

    try:
        rate = ZohoConfig.from_env().requests_per_minute
    except ValueError:
        rate = None
    print(f"Dagster run {result.run_id}" + (f" (month {args.month[:7]})" if args.month else ""))
    if report.entities:
        print(format_summary(report, rate))
    if args.diff:
        rows, files = diffs_of(result)
        print("\n" + diff.format_text(rows, limit=DIFF_ROWS_LISTED))
        if len(rows) > DIFF_ROWS_LISTED:
            print("The whole diff: " + ", ".join(files))
        omitted = sum((meta.get("diff_rows_omitted") or 0) for meta in materializations(result).values())
        if omitted:
            print(f"({omitted} more rows would change: a dry run keeps the first diffs only; see the counts above)")
    failed_checks = [(n, d) for n, p, d in checks if not p]
    if checks:
        print(
            f"Checks: {len(checks) - len(failed_checks)} passed, {len(failed_checks)} failed"
            + "".join(f"\n  {n}: {d}" for n, d in failed_checks)
        )
    if errors:
        print("\nThe run failed:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
