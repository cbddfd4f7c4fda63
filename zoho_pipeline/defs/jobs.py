"""Jobs. Every run that talks to ZOHO carries the tag zoho_sync=1 (dagster.yaml limits those to one at a time) and
its steps use the pool zoho_api (limited to 1), so a second run queues instead of duplicating work."""

import dagster as dg
from pydantic import Field

from zoho_pipeline.defs.assets import (
    ALL_ASSETS,
    ASSET_OF_ENTITY,
    PARTITIONED_ASSETS,
    POOL,
    UNPARTITIONED_ASSETS,
    raise_if_unworkable,
    report_metadata,
    summary_line,
)
from zoho_pipeline.defs.checks import ENTITY_CHECKS, zoho_environment, zoho_matches_source
from zoho_pipeline.defs.partitions import all_months_target, monthly_partitions, partition_target
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline.monitor import changes
from zoho_pipeline.monitor.queries import failed_ids
from zoho_pipeline.sync.requeue import requeue
from zoho_pipeline.sync.settings import ENTITY_ORDER

SYNC_TAGS = {"zoho_sync": "1"}


def _with_db_checks(assets) -> dg.AssetSelection:
    """The assets plus their database checks; the API-spending checks stay in the reconciliation job."""
    keys = {a.key for a in assets}
    checks = [c for c in ENTITY_CHECKS if next(iter(c.check_keys)).asset_key in keys]
    return dg.AssetSelection.assets(*assets).without_checks() | dg.AssetSelection.checks(*checks)


zoho_sync_job = dg.define_asset_job(
    "zoho_sync_job",
    selection=_with_db_checks(UNPARTITIONED_ASSETS),
    tags=SYNC_TAGS,
    description="Incremental sync of plans, customers and subscriptions (the unpartitioned entities).",
)

zoho_billing_sync_job = dg.define_asset_job(
    "zoho_billing_sync_job",
    selection=_with_db_checks(PARTITIONED_ASSETS),
    partitions_def=monthly_partitions,
    tags=SYNC_TAGS,
    description="Invoices and payments of one month (or a range of months as one run). Parents missing in ZOHO "
    "are synced first by the engine.",
)

# Unpartitioned assets + ONE partitions definition may share a job. What the schedule and `zoho-pipeline sync`
# launch, over the range of months holding due invoices and payments (sync_target).
zoho_full_sync_job = dg.define_asset_job(
    "zoho_full_sync_job",
    selection=_with_db_checks(ALL_ASSETS),
    partitions_def=monthly_partitions,
    tags=SYNC_TAGS,
    description="Every entity in dependency order: plans → customers → subscriptions → invoices → payments.",
)

zoho_resync_job = dg.define_asset_job(
    "zoho_resync_job",
    selection=_with_db_checks(UNPARTITIONED_ASSETS),
    tags={**SYNC_TAGS, "zoho_resync": "1"},
    description="Backfill of the unpartitioned entities from the Launchpad: set each asset's config `mode` to "
    "due, failed (failed and dead-lettered rows again) or all (full resync; unchanged rows cost no call).",
)

zoho_reconciliation_job = dg.define_asset_job(
    "zoho_reconciliation_job",
    selection=dg.AssetSelection.checks(zoho_environment, zoho_matches_source),
    tags=SYNC_TAGS,
    description="Credentials, migrations and a sampled comparison of ZOHO with the source (API calls budgeted).",
)


def sync_target(engine, entities=ENTITY_ORDER, mode: str = "due") -> tuple[str | None, dict]:
    """(partition_key, tags) of one zoho_full_sync_job run syncing every due row of `entities`: the range of months
    holding due invoices and payments (all months for mode failed/all)."""
    if mode != "due":
        return all_months_target()
    return partition_target(changes.due_month_keys(engine, entities))


class RetryConfig(dg.Config):
    entity: str = Field(description=f"one of {', '.join(ENTITY_ORDER)}")
    ids: list[str] = Field(default_factory=list, description="source ids (uuid) of the rows to retry")
    all_failed: bool = Field(default=False, description="every failed and dead-lettered row of the entity")


@dg.op(pool=POOL, out={}, description="Requeue failed or dead-lettered rows and sync them now.")
def zoho_retry_op(
    context: dg.OpExecutionContext, config: RetryConfig, source: SourceDatabaseResource, zoho: ZohoBillingResource
):
    from zoho_pipeline.sync.engine import run_sync

    if config.entity not in ENTITY_ORDER:
        raise dg.Failure(description=f"entity must be one of {', '.join(ENTITY_ORDER)} (got {config.entity!r})")
    if not config.ids and not config.all_failed:
        raise dg.Failure(description="give ids or set all_failed: true")
    engine = source.engine()
    # Sync exactly the requeued rows: the given ids, or every failed one (listed before requeueing clears them).
    ids = list(config.ids) or failed_ids(engine, config.entity)
    requeued = requeue(engine, config.entity, ids=ids)
    context.log.info(f"requeued {requeued} of {len(ids)} {config.entity} row(s)")
    ids = {config.entity: ids}
    with zoho.client(engine) as client:
        report = run_sync(
            engine,
            client,
            zoho.settings(),
            entities=[config.entity],
            mode="due",
            ids=ids,
            run_id=f"{context.run_id}:retry",
        )
    context.log.info(summary_line(report, config.entity))
    meta = report_metadata(report, config.entity)
    meta["summary"] = dg.MetadataValue.text(summary_line(report, config.entity))
    yield dg.AssetMaterialization(asset_key=ASSET_OF_ENTITY[config.entity], metadata=meta)
    raise_if_unworkable(report, config.entity)


@dg.job(tags=SYNC_TAGS, description="Requeue failed rows (by id, or all failed of an entity) and sync them now.")
def zoho_retry_job():
    zoho_retry_op()


ASSET_JOBS = [zoho_sync_job, zoho_billing_sync_job, zoho_full_sync_job, zoho_resync_job, zoho_reconciliation_job]
ALL_JOBS = ASSET_JOBS + [zoho_retry_job]
