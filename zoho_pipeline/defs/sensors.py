"""Sensors: one polls the source database for new or changed rows and starts a sync within a minute; one sends an
alert when a run fails; one sends an alert when an ERROR check starts failing and when it recovers
(zoho_pipeline.defs.alerting)."""

import hashlib
import json

import dagster as dg

from zoho_pipeline.defs import alerting, cli_runs
from zoho_pipeline.defs.checks import ALL_CHECKS
from zoho_pipeline.defs.jobs import SYNC_TAGS, zoho_billing_sync_job, zoho_sync_job
from zoho_pipeline.defs.partitions import partition_target
from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource
from zoho_pipeline.defs.switches import KILL_SWITCH_SKIP, default_sensor_status
from zoho_pipeline.monitor import changes

CORE_ENTITIES = ("plans", "customers", "subscriptions")
BILLING_ENTITIES = ("invoices", "payments")


def _changed(before: dict | None, now: dict) -> bool:
    """New work: rows added or removed, a newer updated_at, or more rows due than before. (Due rows going down is
    the sync's own progress and starts nothing.)"""
    if before is None:
        return now["due"] > 0
    return (
        now["rows"] != before.get("rows")
        or now["max_updated_at"] != before.get("max_updated_at")
        or now["due"] > before.get("due", 0)
    )


def _digest(marks: dict) -> str:
    return hashlib.sha1(json.dumps(marks, sort_keys=True).encode()).hexdigest()[:12]


def plan_requests(engine, previous: dict | None, marks: dict) -> list[dg.RunRequest]:
    """The runs one change of the source needs: the core sync when plans, customers or subscriptions changed; one
    billing sync over the months whose invoices or payments changed. run_key comes from the new cursor, so one
    change starts one run even when a tick is evaluated twice."""
    digest = _digest(marks)
    previous = previous or {}
    requests = []
    changed = {e for e in marks if _changed(previous.get(e), marks[e])}
    core = sorted(changed & set(CORE_ENTITIES))
    if core:
        requests.append(
            dg.RunRequest(
                job_name=zoho_sync_job.name,
                run_key=f"core:{digest}",
                tags={**SYNC_TAGS, "zoho_trigger": "sensor", "zoho_changed": ",".join(core)},
            )
        )
    billing = sorted(changed & set(BILLING_ENTITIES))
    if billing:
        since = {}
        for entity in billing:
            before = previous.get(entity) or {}
            moved = marks[entity]["rows"] != before.get("rows") or marks[entity]["max_updated_at"] != before.get(
                "max_updated_at"
            )
            # rows changed: only those; only more rows came due (retries): every due row
            since[entity] = before.get("max_updated_at") if moved else None
        keys = changes.due_month_keys(engine, billing, since)
        if keys:
            partition_key, tags = partition_target(keys)
            requests.append(
                dg.RunRequest(
                    job_name=zoho_billing_sync_job.name,
                    partition_key=partition_key,
                    run_key=f"billing:{keys[0]}..{keys[-1]}:{digest}",
                    tags={**SYNC_TAGS, **tags, "zoho_trigger": "sensor", "zoho_changed": ",".join(billing)},
                )
            )
    return requests


@dg.sensor(
    jobs=[zoho_sync_job, zoho_billing_sync_job],
    minimum_interval_seconds=60,
    default_status=default_sensor_status(),
    description="Polls the source for new or changed rows (per-table newest updated_at, row and due counts) "
    "and starts a sync: the core job for plans/customers/subscriptions, the billing job for the "
    "months whose invoices or payments changed.",
)
def zoho_source_changes_sensor(
    context: dg.SensorEvaluationContext, source: SourceDatabaseResource, engine: SyncEngineResource
):
    cli_runs.fail_dead_runs_of(context, engine.run_stale_after_s)  # before anything queues
    if not engine.enabled:
        return dg.SkipReason(KILL_SWITCH_SKIP)
    engine = source.engine()
    marks = changes.watermarks(engine)
    previous = json.loads(context.cursor) if context.cursor else None
    if previous is not None and previous == marks:
        return dg.SkipReason("no new or changed rows in the source")
    requests = plan_requests(engine, previous, marks)
    cursor = json.dumps(marks, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("source changed but nothing is due"), cursor=cursor)
    context.log.info(f"{len(requests)} run(s) requested: {', '.join(r.run_key for r in requests)}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def run_failure_event(run, message: str) -> dict:
    """The alert for a failed run, as the fields of zoho_pipeline.monitor.alerts.AlertEvent."""
    return alerting.run_failure_event(run, message).as_dict()


@dg.run_failure_sensor(
    default_status=default_sensor_status(),
    description="Sends an alert (email/webhook, zoho_pipeline.monitor.alerts) when a run of this code "
    "location fails: the sync jobs, the retry job, and asset materializations or "
    "backfills launched from the asset graph. ALERT_DRY_RUN=true prints and logs "
    "what would be sent instead.",
)
def zoho_run_failure_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    for step in context.get_step_failure_events()[:3]:  # why, not only which steps
        error = step.step_failure_data.error
        if error is not None:
            message += f"\n{step.step_key}: {error.message.strip()[:600]}"
    alerting.deliver(alerting.run_failure_event(run, message), context.log)


CHECK_DESCRIPTIONS = {spec.key: spec.description for check in ALL_CHECKS for spec in check.check_specs}


@dg.sensor(
    minimum_interval_seconds=120,
    default_status=default_sensor_status(),
    description="Every 2 minutes: the latest evaluation of every asset check; one alert (email/webhook) when "
    "a check turns failing at ERROR severity, naming the rows from its metadata, and one when it "
    "recovers. State per check in the source's zoho_pipeline_state (alert:check:...). "
    "ALERT_DRY_RUN=true prints and logs instead of sending.",
)
def zoho_check_alert_sensor(context: dg.SensorEvaluationContext, source: SourceDatabaseResource):
    outcomes = alerting.alert_on_checks(
        source.engine(), context.instance, CHECK_DESCRIPTIONS, context.log, descriptions=CHECK_DESCRIPTIONS
    )
    failing = sorted(o["check"] for o in outcomes if o["state"] == "failing")
    changed = [f"{o['check']} {o['action']}" for o in outcomes if o["action"] != "unchanged"]
    return dg.SkipReason(
        f"{len(outcomes)} check(s) evaluated, {len(failing)} failing at ERROR"
        + (f": {', '.join(failing[:5])}" + (" …" if len(failing) > 5 else "") if failing else "")
        + (f"; {'; '.join(changed)}" if changed else "; no change of state")
    )


ALL_SENSORS = [zoho_source_changes_sensor, zoho_run_failure_sensor, zoho_check_alert_sensor]
