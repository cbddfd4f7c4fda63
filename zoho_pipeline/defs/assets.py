"""One asset per ZOHO entity, downstream of two external assets Dagster does not materialize: the provider's
database and the ZOHO Billing API (the deployment-wide checks sit on those). Each materialization runs the engine
for its entity and turns the RunReport into metadata with the same keys every time, so the UI plots them across
runs. A retry is the same asset with `ids` or `all_failed` in its config: the rows are requeued and synced inside
the run, so every write to ZOHO happens in Dagster's `zoho_api` pool."""

import time
from datetime import timedelta

import dagster as dg
from pydantic import Field

from zoho_pipeline.defs.diffs import diff_metadata
from zoho_pipeline.defs.partitions import monthly_partitions, partition_months
from zoho_pipeline.defs.recurring_links import link_metadata
from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource, ZohoBillingResource
from zoho_pipeline.monitor.queries import failed_ids, status_counts
from zoho_pipeline.monitor.thresholds import Thresholds
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.report import STOP_AUTH, STOP_KILL_SWITCH, STOP_UNREACHABLE, EntityReport, RunReport
from zoho_pipeline.sync.requeue import requeue
from zoho_pipeline.sync.settings import MODES

GROUP = "zoho_billing"
KINDS = {"postgres", "zoho"}
POOL = "zoho_api"
OWNERS = ["team:billing-ops"]  # who the UI names for these assets (edit for your team)
MAX_FAILURE_ROWS = 50  # rows in the failures table of one materialization
REPORT_FAILURES = 200  # failures kept in the `report` JSON (the sync command lists them)

# The numeric keys every materialization carries, in the order the CLI prints them.
COUNT_KEYS = (
    "due",
    "created",
    "updated",
    "unchanged",
    "adopted",
    "failed",
    "retried",
    "dead_lettered",
    "waiting",
    "prerequisites",
    "api_calls",
    "rate_limited",
    "backlog",
    "would_create",
    "would_update",
    "invalid",
)

FAILURES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("entity_id", "string"),
        dg.TableColumn("label", "string"),
        dg.TableColumn("error_code", "string"),
        dg.TableColumn("error", "string"),
        dg.TableColumn("api_call", "string"),  # the inspector entry: `zoho-pipeline calls --id N`
    ]
)


class SyncConfig(dg.Config):
    mode: str = Field(
        default="due",
        description="due: new/changed/retry-due rows; failed: failed and "
        "dead-lettered rows again; all: every row (a full resync; unchanged rows cost no call)",
    )
    dry_run: bool = Field(
        default=False,
        description="map and validate only: report what would be sent, with each changed row's fields old → new "
        "(the `diff` metadata); no call to ZOHO",
    )
    ids: list[str] = Field(
        default_factory=list,
        description="retry: requeue these rows (source ids, any status "
        "but syncing) and sync exactly them now, whatever their month",
    )
    all_failed: bool = Field(
        default=False,
        description="retry: requeue every failed, retrying and dead-lettered row of the entity and sync them now",
    )
    force: bool = Field(
        default=False,
        description="with ids or all_failed: also forget the last payload hash, so "
        "unchanged rows are sent again (after ZOHO was edited by hand)",
    )


def _stopper(context, every_s: float = 5.0):
    """should_stop for the engine: true once the Dagster run is being terminated (checked at most every 5 s)."""
    state = {"at": 0.0, "stop": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["at"] >= every_s:
            state["at"] = now
            run = context.instance.get_run_by_id(context.run_id)
            state["stop"] = run is not None and run.status in (
                dg.DagsterRunStatus.CANCELING,
                dg.DagsterRunStatus.CANCELED,
            )
        return state["stop"]

    return should_stop


def report_metadata(report: RunReport, entity: str) -> dict:
    """The materialization metadata of `entity` from a run report. Same keys every time."""
    rep = report.entities.get(entity) or EntityReport(entity=entity)
    others = [r for name, r in report.entities.items() if name != entity]
    api_calls = report.api_calls or sum(r.api_calls for r in report.entities.values())
    duration = report.duration_s or rep.duration_s
    failures = [f for f in report.failures][:MAX_FAILURE_ROWS]
    meta = {key: int(getattr(rep, key)) for key in COUNT_KEYS if hasattr(rep, key)}
    meta.update(
        prerequisites=sum(r.prerequisites for r in others),
        api_calls=int(api_calls),
        rate_limited=sum(r.rate_limited for r in report.entities.values()),
        duration_s=dg.MetadataValue.float(round(float(duration), 3)),
        rows_per_minute=dg.MetadataValue.float(float(rep.rows_per_minute)),
        dry_run=dg.MetadataValue.bool(report.dry_run),
        stopped_reason=dg.MetadataValue.text(report.stopped_reason or ""),
        failures=dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "entity_id": f.entity_id,
                        "label": f.label,
                        "error_code": f.error_code or "",
                        "error": f.error[:500],
                        "api_call": f"zoho-pipeline calls --id {f.call_id}" if f.call_id else "",
                    }
                )
                for f in failures
            ],
            schema=FAILURES_SCHEMA,
        ),
    )
    if SPECS[entity].before_sync is not None:  # invoices: the recurring-invoice links (issue 15)
        meta.update(link_metadata(rep.before_sync))
    data = report.as_dict()
    for ent in data["entities"].values():
        ent["failures"] = ent["failures"][:REPORT_FAILURES]
    meta["report"] = dg.MetadataValue.json(data)
    return meta


def raise_if_unworkable(report: RunReport, entity: str) -> None:
    """Fail the Dagster run (and so alert) when ZOHO could not be worked with at all; row failures never do."""
    detail = report.stopped_detail or report.stopped_reason
    if report.stopped_reason == STOP_AUTH:
        raise dg.Failure(
            description=f"ZOHO rejected the credentials or organization: {detail}. Check ZOHO_CLIENT_ID / "
            "ZOHO_CLIENT_SECRET / ZOHO_REFRESH_TOKEN / ZOHO_ORGANIZATION_ID.",
            metadata=report_metadata(report, entity),
        )
    if report.stopped_reason == STOP_UNREACHABLE:
        raise dg.Failure(
            description=f"ZOHO could not be reached: {detail}. No row was charged an attempt; the next run "
            "continues. Check ZOHO's status page, the network and ZOHO_REGION / ZOHO_API_BASE_URL.",
            metadata=report_metadata(report, entity),
        )


def summary_line(report: RunReport, entity: str) -> str:
    rep = report.entities.get(entity) or EntityReport(entity=entity)
    if report.stopped_reason == STOP_KILL_SWITCH:
        return "Sync disabled by the kill switch (ENABLE_ZOHO_SYNC=false): nothing was sent to ZOHO."
    text = (
        f"{entity}: {rep.created} created, {rep.updated} updated, {rep.unchanged} unchanged, "
        f"{rep.adopted} adopted, {rep.failed} failed, {rep.retried} to retry; {rep.backlog} still due; "
        f"{report.api_calls} API calls in {report.duration_s:.1f}s"
    )
    if report.dry_run:
        text = (
            f"DRY RUN {entity}: would create {rep.would_create}, would update {rep.would_update}, {rep.invalid} invalid"
        )
        links = rep.before_sync or {}
        if links.get("estimate"):  # sync/entities/recurring_estimate.py
            text += f"; recurring invoices: {links['would_link']} would be linked, {links['waiting']} would wait"
    if report.stopped_reason:
        text += f" (stopped: {report.stopped_reason}{': ' + report.stopped_detail if report.stopped_detail else ''})"
    return text


def _requeue(context, engine, entity: str, config: SyncConfig) -> list[str] | None:
    """A retry's rows, requeued: the given ids, or every failed one (listed before requeueing clears them)."""
    if not (config.ids or config.all_failed):
        return None
    if config.mode != "due" or config.dry_run:
        raise dg.Failure(
            description="ids and all_failed requeue rows and sync them now: leave mode at due and dry_run off"
        )
    ids = list(config.ids) or failed_ids(engine, entity)
    requeued = requeue(engine, entity, ids=ids, force=config.force)
    context.log.info(f"requeued {requeued} of {len(ids)} {entity} row(s)")
    return ids


def sync_entity(
    context,
    entity: str,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine_knobs: SyncEngineResource,
    config: SyncConfig,
    months=None,
) -> dg.MaterializeResult:
    """Run the engine for one entity and return its materialization. Failing rows do not fail the asset;
    rejected credentials do."""
    from zoho_pipeline.sync.engine import run_sync

    if config.mode not in MODES:
        raise dg.Failure(description=f"mode must be one of {', '.join(MODES)} (got {config.mode!r})")
    engine = source.engine()
    ids = _requeue(context, engine, entity, config)
    months = None if ids is not None else months  # a retry syncs the rows asked for, whatever their month
    scope = f" for {months[0]:%Y-%m} to before {months[1]:%Y-%m}" if months else ""
    context.log.info(f"syncing {entity} (mode={config.mode}{', dry run' if config.dry_run else ''}){scope}")
    with zoho.client(engine) as client:
        report = run_sync(
            engine,
            client,
            engine_knobs.settings(),
            entities=[entity],
            mode=config.mode,
            months=months,
            ids=None if ids is None else {entity: ids},
            dry_run=config.dry_run,
            diff=config.dry_run,
            run_id=f"{context.run_id}:{entity}",
            should_stop=_stopper(context),
        )
    line = summary_line(report, entity)
    raise_if_unworkable(report, entity)
    if report.stopped_reason == STOP_KILL_SWITCH:
        context.log.warning(line)
    else:
        context.log.info(line)
    for f in report.failures[:10]:
        context.log.warning(f"failed {f.entity} {f.label}: [{f.error_code}] {f.error}")
    meta = report_metadata(report, entity)
    meta["summary"] = dg.MetadataValue.text(line)
    meta["requeued"] = len(ids or [])
    if config.dry_run:
        meta.update(diff_metadata(context, report, entity))
    meta["dagster/row_count"] = status_counts(engine, entity)[entity]["synced"]  # rows ZOHO holds
    return dg.MaterializeResult(metadata=meta)


# Systems Dagster reads and writes but does not materialize: the deployment-wide checks sit on them.
SOURCE_DATABASE = dg.AssetSpec(
    "source_database",
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description="The provider's billing database (SOURCE_DATABASE_URL), the source of truth.",
)
ZOHO_API = dg.AssetSpec(
    "zoho_billing_api",
    group_name=GROUP,
    kinds={"zoho"},
    owners=OWNERS,
    description="ZOHO Billing's API for the organization (ZOHO_ORGANIZATION_ID), or the emulator.",
)
EXTERNAL_ASSETS = [SOURCE_DATABASE, ZOHO_API]


def _freshness() -> dg.FreshnessPolicy:
    """ "The sync has not run" shows in the UI: failing after the activity window `health` uses, warning once the
    backlog may be late."""
    th = Thresholds.from_env()
    fail, warn = timedelta(hours=th.activity_hours), timedelta(seconds=th.max_backlog_age_s)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn if warn < fail else None)


_COMMON = dict(group_name=GROUP, kinds=KINDS, pool=POOL, owners=OWNERS, freshness_policy=_freshness())
# Monthly partitions; a backfill of many months is one run over their range.
_PARTITIONED = dict(**_COMMON, partitions_def=monthly_partitions, backfill_policy=dg.BackfillPolicy.single_run())


@dg.asset(**_COMMON, deps=EXTERNAL_ASSETS, description="Service packages → ZOHO products and plans.")
def zoho_plans(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
) -> dg.MaterializeResult:
    return sync_entity(context, "plans", source, zoho, engine, config)


@dg.asset(**_COMMON, deps=[*EXTERNAL_ASSETS, zoho_plans], description="Customers → ZOHO customers.")
def zoho_customers(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
) -> dg.MaterializeResult:
    return sync_entity(context, "customers", source, zoho, engine, config)


@dg.asset(
    **_COMMON,
    deps=[*EXTERNAL_ASSETS, zoho_plans, zoho_customers],
    description="Active services → ZOHO subscriptions (ZOHO then raises the monthly invoices).",
)
def zoho_subscriptions(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
) -> dg.MaterializeResult:
    return sync_entity(context, "subscriptions", source, zoho, engine, config)


@dg.asset(
    **_PARTITIONED,
    deps=[*EXTERNAL_ASSETS, zoho_customers, zoho_subscriptions],
    description="Manual invoices → ZOHO invoices, and the provider's recurring invoices linked to the ones ZOHO "
    "raised from the subscriptions (months before a subscription reached ZOHO pushed as plain invoices), "
    "partitioned by invoice_date month. A run without a partition syncs every due invoice.",
)
def zoho_invoices(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
) -> dg.MaterializeResult:
    return sync_entity(context, "invoices", source, zoho, engine, config, partition_months(context))


@dg.asset(
    **_PARTITIONED,
    deps=[*EXTERNAL_ASSETS, zoho_invoices],
    description="Completed payments → ZOHO payments applied to their invoices, partitioned by completed_at "
    "month. A run without a partition syncs every due payment.",
)
def zoho_payments(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
) -> dg.MaterializeResult:
    return sync_entity(context, "payments", source, zoho, engine, config, partition_months(context))


UNPARTITIONED_ASSETS = [zoho_plans, zoho_customers, zoho_subscriptions]
PARTITIONED_ASSETS = [zoho_invoices, zoho_payments]
ALL_ASSETS = UNPARTITIONED_ASSETS + PARTITIONED_ASSETS
ENTITY_OF_ASSET = {
    "zoho_plans": "plans",
    "zoho_customers": "customers",
    "zoho_subscriptions": "subscriptions",
    "zoho_invoices": "invoices",
    "zoho_payments": "payments",
}
ASSET_OF_ENTITY = {v: k for k, v in ENTITY_OF_ASSET.items()}
