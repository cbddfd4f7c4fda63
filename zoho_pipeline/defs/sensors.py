"""Sensors: one polls the source database for new or changed rows and starts a sync within a minute; one sends an
alert when a sync run fails."""


import hashlib
import json

import dagster as dg

from zoho_pipeline.defs import source_state as st
from zoho_pipeline.defs.automation import KILL_SWITCH_SKIP, default_sensor_status
from zoho_pipeline.defs.jobs import ALL_JOBS, SYNC_TAGS, zoho_billing_sync_job, zoho_sync_job
from zoho_pipeline.defs.partitions import partition_target
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource


CORE_ENTITIES = ("plans", "customers", "subscriptions")
BILLING_ENTITIES = ("invoices", "payments")


def _changed(before: dict | None, now: dict) -> bool:
    """New work: rows added or removed, a newer updated_at, or more rows due than before. (Due rows going down is
    the sync's own progress and starts nothing.)"""
    if before is None:
        return now["due"] > 0
    return (now["rows"] != before.get("rows") or now["max_updated_at"] != before.get("max_updated_at")
            or now["due"] > before.get("due", 0))


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
        requests.append(dg.RunRequest(job_name=zoho_sync_job.name, run_key=f"core:{digest}",
                                      tags={**SYNC_TAGS, "zoho_trigger": "sensor", "zoho_changed": ",".join(core)}))
    billing = sorted(changed & set(BILLING_ENTITIES))
    if billing:
        since = {}
        for entity in billing:
            before = previous.get(entity) or {}
            moved = marks[entity]["rows"] != before.get("rows") or marks[entity]["max_updated_at"] != before.get(
                "max_updated_at")
            # rows changed: only those; only more rows came due (retries): every due row
            since[entity] = before.get("max_updated_at") if moved else None
        keys = st.due_month_keys(engine, billing, since)
        if keys:
            partition_key, tags = partition_target(keys)
            requests.append(dg.RunRequest(
                job_name=zoho_billing_sync_job.name, partition_key=partition_key,
                run_key=f"billing:{keys[0]}..{keys[-1]}:{digest}",
                tags={**SYNC_TAGS, **tags, "zoho_trigger": "sensor", "zoho_changed": ",".join(billing)}))
    return requests


@dg.sensor(jobs=[zoho_sync_job, zoho_billing_sync_job], minimum_interval_seconds=60,
           default_status=default_sensor_status(),
           description="Polls the source for new or changed rows (per-table newest updated_at, row and due counts) "
                       "and starts a sync: the core job for plans/customers/subscriptions, the billing job for the "
                       "months whose invoices or payments changed.")
def zoho_source_changes_sensor(context: dg.SensorEvaluationContext, source: SourceDatabaseResource,
                               zoho: ZohoBillingResource):
    if not zoho.enabled:
        return dg.SkipReason(KILL_SWITCH_SKIP)
    engine = source.engine()
    marks = st.watermarks(engine)
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
    """The alert for a failed run, as the fields of zoho_pipeline.ops.alerts.AlertEvent."""
    return {"kind": "run_failed", "severity": "error", "title": f"ZOHO sync run failed: {run.job_name}",
            "summary": message[:2000],
            "details": {"run_id": run.run_id, "job": run.job_name,
                        "partition": run.tags.get("dagster/partition") or "",
                        "trigger": run.tags.get("zoho_trigger") or ""}}


@dg.run_failure_sensor(monitored_jobs=ALL_JOBS, default_status=default_sensor_status(),
                       description="Sends an alert (email/webhook, zoho_pipeline.ops.alerts) when a sync run fails.")
def zoho_run_failure_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    event = run_failure_event(run, context.failure_event.message or "run failed")
    try:
        from zoho_pipeline.ops.alerts import send_alert
    except ImportError:  # alerts not installed: the log line is the alert
        context.log.error(f"{event['title']} ({run.run_id}): {event['summary']} [alerts module not available]")
        return
    outcome = send_alert(event)
    if outcome.get("errors"):
        context.log.error(f"alert for run {run.run_id} not delivered: {outcome['errors']}")
    elif not outcome.get("sent"):
        context.log.warning(f"{event['title']} ({run.run_id}): {event['summary']} [no alert target configured]")


ALL_SENSORS = [zoho_source_changes_sensor, zoho_run_failure_sensor]
