"""Schedules: the incremental sync every few minutes, and the daily reconciliation."""

import dagster as dg

from zoho_pipeline.defs import cli_runs
from zoho_pipeline.defs.jobs import SYNC_TAGS, sync_target, zoho_all_entities_sync_job, zoho_reconciliation_job
from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource
from zoho_pipeline.defs.switches import KILL_SWITCH_SKIP, default_schedule_status
from zoho_pipeline.env import text

SYNC_CRON = text("ZOHO_SYNC_CRON", "*/5 * * * *")
RECONCILE_CRON = text("ZOHO_RECONCILE_CRON", "30 2 * * *")
TIMEZONE = text("ZOHO_SCHEDULE_TIMEZONE", "UTC")


@dg.schedule(
    job=zoho_all_entities_sync_job,
    cron_schedule=SYNC_CRON,
    execution_timezone=TIMEZONE,
    default_status=default_schedule_status(),
    description="Every due row of every entity (over the months holding due invoices and payments). A run still in progress "
    "makes the next one queue (zoho_sync tag limit 1), never run twice at once.",
)
def zoho_sync_schedule(
    context: dg.ScheduleEvaluationContext, source: SourceDatabaseResource, engine: SyncEngineResource
):
    cli_runs.fail_dead_runs_of(context, engine.run_stale_after_s)  # its run must not queue behind a dead one
    if not engine.enabled:
        return dg.SkipReason(KILL_SWITCH_SKIP)
    partition_key, tags = sync_target(source.engine())
    return dg.RunRequest(partition_key=partition_key, tags={**SYNC_TAGS, **tags, "zoho_trigger": "schedule"})


@dg.schedule(
    job=zoho_reconciliation_job,
    cron_schedule=RECONCILE_CRON,
    execution_timezone=TIMEZONE,
    default_status=default_schedule_status(),
    description="Daily: credentials, migrations, and ZOHO compared with the source (budgeted API calls).",
)
def zoho_reconciliation_schedule(context: dg.ScheduleEvaluationContext, engine: SyncEngineResource):
    if not engine.enabled:
        return dg.SkipReason(KILL_SWITCH_SKIP)
    return dg.RunRequest(tags={**SYNC_TAGS, "zoho_trigger": "reconciliation"})


ALL_SCHEDULES = [zoho_sync_schedule, zoho_reconciliation_schedule]
