"""Jobs. Every run that talks to ZOHO carries the tag zoho_sync=1 (dagster.yaml limits those to one at a time) and
its steps use the pool zoho_api (limited to 1), so a second run queues instead of duplicating work.

Retries and full resyncs are not jobs of their own: they are the assets' config (`mode`, `ids`, `all_failed`,
`force`) on any of these jobs, set in the Launchpad or by `zoho-pipeline retry` / `sync --mode`."""

import dagster as dg

from zoho_pipeline.defs.assets import ALL_ASSETS, PARTITIONED_ASSETS, UNPARTITIONED_ASSETS
from zoho_pipeline.defs.checks import DEPLOYMENT_CHECKS, ENTITY_CHECKS, zoho_matches_source
from zoho_pipeline.defs.drift import zoho_drift
from zoho_pipeline.defs.ledger import zoho_ledger_matches_source
from zoho_pipeline.defs.partitions import all_months_target, monthly_partitions, partition_target
from zoho_pipeline.monitor import changes
from zoho_pipeline.sync.settings import ENTITY_ORDER

SYNC_TAGS = {"zoho_sync": "1"}
# One process per run, not one per step: the steps run one after another anyway (the chain of assets and the
# zoho_api pool of 1), and a subprocess per asset and check made a sensor-launched run take minutes on a small host.
SYNC_EXECUTOR = dg.in_process_executor


def _with_db_checks(assets) -> dg.AssetSelection:
    """The assets plus their database checks; the API-spending checks stay in the reconciliation job."""
    keys = {a.key for a in assets}
    checks = [c for c in ENTITY_CHECKS if next(iter(c.check_keys)).asset_key in keys]
    return dg.AssetSelection.assets(*assets).without_checks() | dg.AssetSelection.checks(*checks)


zoho_sync_job = dg.define_asset_job(
    "zoho_sync_job",
    executor_def=SYNC_EXECUTOR,
    selection=_with_db_checks(UNPARTITIONED_ASSETS),
    tags=SYNC_TAGS,
    description="Plans, customers and subscriptions (the unpartitioned entities). Asset config `mode` all is a full "
    "resync of them; `ids` / `all_failed` retry rows.",
)

zoho_billing_sync_job = dg.define_asset_job(
    "zoho_billing_sync_job",
    executor_def=SYNC_EXECUTOR,
    selection=_with_db_checks(PARTITIONED_ASSETS),
    partitions_def=monthly_partitions,
    tags=SYNC_TAGS,
    description="Invoices and payments of one month (or a range of months as one run). Parents missing in ZOHO "
    "are synced first by the engine.",
)

# Unpartitioned assets + ONE partitions definition may share a job. What the schedule, `zoho-pipeline sync` and
# `zoho-pipeline retry` launch, over the range of months holding due invoices and payments (sync_target).
zoho_all_entities_sync_job = dg.define_asset_job(
    "zoho_all_entities_sync_job",
    executor_def=SYNC_EXECUTOR,
    selection=_with_db_checks(ALL_ASSETS),
    partitions_def=monthly_partitions,
    tags=SYNC_TAGS,
    description="Every entity in dependency order: plans → customers → subscriptions → invoices → payments.",
)

zoho_reconciliation_job = dg.define_asset_job(
    "zoho_reconciliation_job",
    selection=dg.AssetSelection.checks(*DEPLOYMENT_CHECKS, zoho_matches_source, zoho_drift, zoho_ledger_matches_source),
    tags=SYNC_TAGS,
    description="Credentials, migrations, a sampled comparison of ZOHO with the source, the drift of what we "
    "sent (API calls budgeted) and the ledger: every customer's balance in ZOHO equal to the source's.",
)


def sync_target(engine, entities=ENTITY_ORDER, mode: str = "due") -> tuple[str | None, dict]:
    """(partition_key, tags) of one zoho_all_entities_sync_job run syncing every due row of `entities`: the range
    of months holding due invoices and payments (all months for mode failed/all)."""
    if mode != "due":
        return all_months_target()
    return partition_target(changes.due_month_keys(engine, entities))


ALL_JOBS = [zoho_sync_job, zoho_billing_sync_job, zoho_all_entities_sync_job, zoho_reconciliation_job]
