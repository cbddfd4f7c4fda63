"""The Dagster layer against the real emulator and real source databases: definitions load, every asset
materializes with the same metadata keys, a 3-month backfill is one run limited to those months, the sensor,
the schedules and the checks."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest
import sqlalchemy as sa

from zoho_pipeline.defs.assets import ALL_ASSETS, PARTITIONED_ASSETS, UNPARTITIONED_ASSETS
from zoho_pipeline.defs.checks import ENTITY_CHECKS
from zoho_pipeline.defs.schedules import zoho_sync_schedule
from zoho_pipeline.defs.sensors import zoho_source_changes_sensor
from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support.dagster import DEMO_CUSTOMERS, demo_db, make_resources, materialize

STABLE_KEYS = {"created", "updated", "unchanged", "failed", "retried", "api_calls", "rate_limited", "duration_s",
               "rows_per_minute", "backlog", "adopted", "dead_lettered", "prerequisites", "failures", "report"}


# One in-memory instance kept for the whole module: Dagster keeps weak references to the instance a sensor or
# schedule context was built with, and a later run fails once that instance is gone.
_KEPT_INSTANCE = dg.DagsterInstance.ephemeral()


@contextlib.contextmanager
def _instance():
    yield _KEPT_INSTANCE


def metadata_by_asset(result) -> dict[str, dict]:
    out = {}
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization
        out.setdefault(mat.asset_key.to_user_string(), {k: v.value for k, v in mat.metadata.items()})
    return out


def checks_by_name(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{ev.asset_key.to_user_string()}.{ev.check_name}": ev for ev in result.get_asset_check_evaluations()}


# --- loading -----------------------------------------------------------------------------------------------------


def test_definitions_load_and_validate():
    from zoho_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert {a.key.to_user_string() for a in ALL_ASSETS} == {
        "zoho_plans", "zoho_customers", "zoho_subscriptions", "zoho_invoices", "zoho_payments"}
    for name in ("zoho_sync_job", "zoho_billing_sync_job", "zoho_full_sync_job", "zoho_resync_job",
                 "zoho_retry_job", "zoho_reconciliation_job"):
        job = defs.resolve_job_def(name)
        assert job.tags.get("zoho_sync") == "1", name
    for asset in ALL_ASSETS:
        assert asset.group_names_by_key[asset.key] == "zoho_billing"
        assert asset.specs_by_key[asset.key].kinds == {"postgres", "zoho"}
    assert all(a.partitions_def is not None for a in PARTITIONED_ASSETS)
    assert all(a.partitions_def is None for a in UNPARTITIONED_ASSETS)


def test_dagster_cli_validates_the_code_location(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m",
                           "zoho_pipeline.definitions"], capture_output=True, text=True, timeout=180,
                          env={**_clean_env(), "DAGSTER_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _clean_env():
    import os

    return {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}


def test_schedules_and_sensors_stopped_unless_production(monkeypatch):
    import importlib

    import zoho_pipeline.defs.automation as automation

    monkeypatch.delenv("DAGSTER_DEPLOYMENT", raising=False)
    assert automation.default_sensor_status() == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", "production")
    assert automation.default_schedule_status() == dg.DefaultScheduleStatus.RUNNING
    importlib.reload(automation)


# --- assets ------------------------------------------------------------------------------------------------------


def _sync_everything(url, zoho_config, instance=None, checks=(), **zoho):
    """Every asset over the months holding due invoices and payments: what the schedule launches."""
    from zoho_pipeline.defs.jobs import sync_target

    resources = make_resources(url, zoho_config, **zoho)
    partition_key, tags = sync_target(resources["source"].engine())
    return materialize(ALL_ASSETS, resources, instance=instance, checks=checks, partition_key=partition_key,
                       tags=tags)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_asset_materializes_with_stable_metadata(request, backend, emulator, zoho_config):
    url = demo_db(request.getfixturevalue(f"{backend.replace('postgres', 'pg')}_url"))
    result = _sync_everything(url, zoho_config)
    assert result.success
    meta = metadata_by_asset(result)
    assert set(meta) == {a.key.to_user_string() for a in ALL_ASSETS}
    for name, m in meta.items():
        assert STABLE_KEYS <= set(m), (name, STABLE_KEYS - set(m))
        assert isinstance(m["failures"], dg.TableMetadataValue) or hasattr(m["failures"], "records")
    assert meta["zoho_customers"]["created"] > 0
    assert meta["zoho_customers"]["api_calls"] > 0
    # A second run finds nothing new: the same keys, no creates.
    again = metadata_by_asset(_sync_everything(url, zoho_config))
    assert set(again["zoho_customers"]) == set(meta["zoho_customers"])
    assert again["zoho_customers"]["created"] == 0


def test_partitioned_backfill_of_three_months_is_one_run_limited_to_them(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    engine = sa.create_engine(url)
    inv = T.customer_invoices
    with engine.connect() as conn:
        dates = sorted(d for d in conn.execute(sa.select(inv.c.invoice_date).where(
            inv.c.invoice_type != "recurring", inv.c.status != "draft")).scalars())
    months = sorted({date(d.year, d.month, 1) for d in dates})
    assert len(months) >= 4, months

    def add_months(d, n):
        y, m = divmod(d.month - 1 + n, 12)
        return date(d.year + y, m + 1, 1)

    first, last = months[0], add_months(months[0], 2)
    end = add_months(first, 3)
    resources = make_resources(url, zoho_config)
    tags = {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}
    result = materialize(PARTITIONED_ASSETS, resources, tags=tags)
    assert result.success
    partitions = sorted({ev.partition for ev in result.get_asset_materialization_events()
                         if ev.asset_key == dg.AssetKey("zoho_invoices")})
    assert partitions == [add_months(first, i).isoformat() for i in range(3)]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(inv.c.invoice_date, inv.c.zoho_sync_status, inv.c.zoho_billing_invoice_id)
                            .where(inv.c.invoice_type != "recurring", inv.c.status != "draft")).all()
    inside = [r for r in rows if first <= r.invoice_date < end]
    outside = [r for r in rows if not first <= r.invoice_date < end]
    assert inside and outside
    assert all(r.zoho_billing_invoice_id is None for r in outside)
    assert sum(1 for r in inside if r.zoho_sync_status == "synced") >= len(inside) - 3  # a few bad demo rows


def test_kill_switch_records_metadata_and_does_not_fail(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    result = materialize([ALL_ASSETS[1]], make_resources(url, zoho_config, enabled=False))
    assert result.success
    meta = metadata_by_asset(result)["zoho_customers"]
    assert meta["stopped_reason"] == "kill_switch"
    assert meta["api_calls"] == 0 and meta["created"] == 0
    assert "kill switch" in meta["summary"]
    assert emulator.stats()["requests"] == 0


def test_rejected_credentials_fail_the_asset_with_a_clear_message(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    result = materialize([ALL_ASSETS[1]], make_resources(url, zoho_config, client_secret="wrong"))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "credentials" in failure.step_failure_data.error.message


# --- sensor and schedule -----------------------------------------------------------------------------------------


def _insert_customer(url: str) -> str:
    import uuid

    engine = sa.create_engine(url)
    now = datetime.now(timezone.utc)
    cid = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(T.customers.insert().values(
            id=cid, email=f"new-{cid[:8]}@example.co.za", first_name="Lerato", last_name="Dlamini",
            account_type="residential", country="ZA", status="active", created_at=now, updated_at=now))
    engine.dispose()
    return cid


def test_sensor_requests_one_run_per_change(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    resources = make_resources(url, zoho_config)
    assert _sync_everything(url, zoho_config).success
    with _instance() as instance:
        first = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        cursor = first.cursor if isinstance(first, dg.SensorResult) else None
        # after a full sync only the deliberately bad demo rows remain due; the cursor is set either way
        assert cursor
        nothing = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                                     resources=resources))
        assert isinstance(nothing, dg.SkipReason)
        _insert_customer(url)
        changed = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                                     resources=resources))
        assert isinstance(changed, dg.SensorResult)
        assert [r.job_name for r in changed.run_requests] == ["zoho_sync_job"]
        assert changed.run_requests[0].tags["zoho_sync"] == "1"
        assert json.loads(changed.cursor)["customers"]["rows"] == json.loads(cursor)["customers"]["rows"] + 1
        again = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, cursor=changed.cursor,
                                                                   resources=resources))
        assert isinstance(again, dg.SkipReason)


def test_sensor_requests_the_changed_invoice_month(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    assert _sync_everything(url, zoho_config).success
    resources = make_resources(url, zoho_config)
    with _instance() as instance:
        cursor = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, resources=resources)).cursor
        engine = sa.create_engine(url)
        inv = T.customer_invoices
        with engine.begin() as conn:
            row = conn.execute(sa.select(inv.c.id, inv.c.invoice_date).where(
                inv.c.zoho_sync_status == "synced").limit(1)).one()
            newest = max(json.loads(cursor)["invoices"]["max_updated_at"], datetime.now(timezone.utc).isoformat())
            conn.execute(inv.update().where(inv.c.id == row.id).values(
                updated_at=datetime.fromisoformat(newest) + timedelta(seconds=1),
                due_date=row.invoice_date + timedelta(days=45)))
        engine.dispose()
        result = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                                    resources=resources))
        assert isinstance(result, dg.SensorResult)
        billing = [r for r in result.run_requests if r.job_name == "zoho_billing_sync_job"]
        assert [r.partition_key for r in billing] == [f"{row.invoice_date:%Y-%m}-01"]


def test_sensor_and_schedule_skip_when_the_kill_switch_is_off(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    resources = make_resources(url, zoho_config, enabled=False)
    with _instance() as instance:
        assert isinstance(zoho_source_changes_sensor(dg.build_sensor_context(instance=instance,
                                                                             resources=resources)), dg.SkipReason)
        sched = zoho_sync_schedule(dg.build_schedule_context(instance=instance, resources=resources))
        assert isinstance(sched, dg.SkipReason)


def test_kill_switch_from_the_environment(monkeypatch):
    from zoho_pipeline.defs.resources import zoho_resource_from_env

    monkeypatch.setenv("ENABLE_ZOHO_SYNC", "false")
    assert zoho_resource_from_env().enabled is False
    monkeypatch.setenv("ENABLE_ZOHO_SYNC", "true")
    assert zoho_resource_from_env().enabled is True


def test_schedule_requests_a_tagged_full_sync(sqlite_url, zoho_config):
    resources = make_resources(demo_db(sqlite_url), zoho_config)
    with _instance() as instance:
        ctx = dg.build_schedule_context(instance=instance, resources=resources,
                                        scheduled_execution_time=datetime(2025, 3, 1, 12, 5, tzinfo=timezone.utc))
        req = zoho_sync_schedule(ctx)
    assert isinstance(req, dg.RunRequest)
    assert req.tags["zoho_sync"] == "1"
    # the demo has due invoices in several months: one run over their range
    assert req.partition_key is None and req.tags["dagster/asset_partition_range_start"] < req.tags[
        "dagster/asset_partition_range_end"]
    assert zoho_sync_schedule.job_name == "zoho_full_sync_job"
    assert zoho_sync_schedule.cron_schedule == "*/5 * * * *"


# --- checks ------------------------------------------------------------------------------------------------------


def test_checks_pass_when_synced_and_point_at_corrupted_rows(sqlite_url, emulator, zoho_config):
    url = demo_db(sqlite_url)
    resources = make_resources(url, zoho_config)
    result = _sync_everything(url, zoho_config, checks=ENTITY_CHECKS)
    assert result.success
    checks = checks_by_name(result)
    assert len(checks) == 4 * len(ALL_ASSETS)
    for name, ev in checks.items():
        if name.endswith(("no_stuck_syncing", "synced_rows_have_zoho_id")):
            assert ev.passed, name

    engine = sa.create_engine(url)
    c = T.customers.c
    with engine.begin() as conn:
        synced = conn.execute(sa.select(c.id).where(c.zoho_sync_status == "synced").limit(2)).scalars().all()
        conn.execute(T.customers.update().where(c.id == synced[0]).values(zoho_billing_customer_id=None))
        conn.execute(T.customers.update().where(c.id == synced[1]).values(
            zoho_sync_status="syncing", zoho_claimed_by="dead-run",
            zoho_claimed_at=datetime.now(timezone.utc) - timedelta(hours=2)))
    engine.dispose()
    customer_checks = [ch for ch in ENTITY_CHECKS if next(iter(ch.check_keys)).asset_key == dg.AssetKey("zoho_customers")]
    after = checks_by_name(materialize([], resources, checks=customer_checks,
                                       selection=dg.AssetSelection.checks(*customer_checks)))
    missing = after["zoho_customers.synced_rows_have_zoho_id"]
    stuck = after["zoho_customers.no_stuck_syncing"]
    assert not missing.passed and not stuck.passed
    assert missing.severity == dg.AssetCheckSeverity.ERROR and stuck.severity == dg.AssetCheckSeverity.ERROR
    assert synced[0] in {r.data["entity_id"] for r in missing.metadata["rows"].records}
    assert synced[1] in {r.data["entity_id"] for r in stuck.metadata["rows"].records}


def test_environment_and_reconciliation_checks(sqlite_url, emulator, zoho_config):
    from zoho_pipeline.defs.checks import zoho_environment, zoho_matches_source

    url = demo_db(sqlite_url)
    resources = make_resources(url, zoho_config)
    assert _sync_everything(url, zoho_config).success
    result = materialize([], resources, checks=[zoho_environment, zoho_matches_source],
                         selection=dg.AssetSelection.checks(zoho_environment, zoho_matches_source))
    checks = checks_by_name(result)
    assert checks["zoho_customers.api_reachable"].passed
    assert checks["zoho_payments.migrations_at_head"].passed
    assert checks["zoho_customers.matches_source"].passed, checks["zoho_customers.matches_source"].description
    assert checks["zoho_invoices.matches_source"].metadata["sampled"].value > 0
