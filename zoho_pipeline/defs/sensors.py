"""Sensors: one polls the source database for new or changed rows and starts a sync within a minute; one sends an
alert when a sync run fails."""


import hashlib
import json
from datetime import date

import dagster as dg

from zoho_pipeline.defs import source_state as st
from zoho_pipeline.defs.automation import KILL_SWITCH_SKIP, default_sensor_status
from zoho_pipeline.defs.jobs import ALL_JOBS, SYNC_TAGS, zoho_billing_sync_job, zoho_sync_job
from zoho_pipeline.defs.partitions import month_key, monthly_partitions
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource


CORE_ENTITIES = ("plans", "customers", "subscriptions")
BILLING_ENTITIES = ("invoices", "payments")
MAX_MONTH_RUNS = 6  # more changed months than this: one billing run over every due month instead


def _changed(before: dict | None, now: dict) -> bool:
    """New work: rows added or removed, a newer updated_at, or more rows due than before. (Due rows going down is
    the sync's own progress and starts nothing.)"""
    if before is None:
        return now["due"] > 0
    return (now["rows"] != before.get("rows") or now["max_updated_at"] != before.get("max_updated_at")
            or now["due"] > before.get("due", 0))


def _digest(marks: dict) -> str:
    return hashlib.sha1(json.dumps(marks, sort_keys=True).encode()).hexdigest()[:12]


def plan_requests(engine, previous: dict | None, marks: dict, partition_keys: set[str]) -> list[dg.RunRequest]:
    """The runs one change of the source needs: the core sync when plans, customers or subscriptions changed; the
    billing sync for each changed month of invoices or payments. run_key comes from the new cursor, so one
    change starts one run even when a tick is evaluated twice."""
    digest = _digest(marks)
    previous = previous or {}
    requests = []
    changed = {e for e in marks if _changed(previous.get(e), marks[e])}
    if changed & set(CORE_ENTITIES):
        requests.append(dg.RunRequest(job_name=zoho_sync_job.name, run_key=f"core:{digest}",
                                      tags={**SYNC_TAGS, "zoho_trigger": "sensor",
                                            "zoho_changed": ",".join(sorted(changed & set(CORE_ENTITIES)))}))
    months: set[date] = set()
    for entity in changed & set(BILLING_ENTITIES):
        since = (previous.get(entity) or {}).get("max_updated_at")
        if since and marks[entity]["rows"] == (previous.get(entity) or {}).get("rows") \
                and marks[entity]["max_updated_at"] == since:
            since = None  # only more rows came due (retries): look at every due row
        months |= st.changed_months(engine, entity, since)
    keys = sorted(month_key(m) for m in months)
    billing_tags = {**SYNC_TAGS, "zoho_trigger": "sensor"}
    if keys and (len(keys) > MAX_MONTH_RUNS or not set(keys) <= partition_keys):
        requests.append(dg.RunRequest(job_name=zoho_billing_sync_job.name, run_key=f"billing:all:{digest}",
                                      tags={**billing_tags, "zoho_months": f"{keys[0]}..{keys[-1]}"}))
    else:
        requests += [dg.RunRequest(job_name=zoho_billing_sync_job.name, partition_key=k,
                                   run_key=f"billing:{k}:{digest}", tags=billing_tags) for k in keys]
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
    partition_keys = set(monthly_partitions.get_partition_keys(dynamic_partitions_store=None))
    requests = plan_requests(engine, previous, marks, partition_keys)
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
