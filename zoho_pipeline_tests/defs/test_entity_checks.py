"""The per-entity database checks run as one step per entity (issue 12: each step costs a sync run its start, output
and success events in Dagster's event log), yet each check keeps its own key: selected alone, it runs alone; one
that raises fails the step and the others are still evaluated, as when each was its own op."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan

from zoho_pipeline.defs import checks as C
from zoho_pipeline.defs.assets import ALL_ASSETS, PARTITIONED_ASSETS, UNPARTITIONED_ASSETS
from zoho_pipeline.defs.resources import SourceDatabaseResource
from zoho_pipeline_tests.support.dagster import demo_db, materialize

NAMES = {"no_stuck_syncing", "failures_under_threshold", "synced_rows_have_zoho_id", "backlog_fresh"}
CUSTOMERS = dg.AssetKey("zoho_customers")
SYNC_JOBS = {
    "zoho_sync_job": UNPARTITIONED_ASSETS,
    "zoho_billing_sync_job": PARTITIONED_ASSETS,
    "zoho_all_entities_sync_job": ALL_ASSETS,
}


@pytest.mark.parametrize("job_name", sorted(SYNC_JOBS))
def test_a_sync_job_has_one_check_step_per_entity(job_name, monkeypatch):
    from zoho_pipeline.definitions import defs

    monkeypatch.setenv("SOURCE_DATABASE_URL", "sqlite:///never-opened.db")  # the plan resolves the resources' config
    for name in ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_ORGANIZATION_ID"):
        monkeypatch.setenv(name, "x")
    job = defs.resolve_job_def(job_name)
    assets = SYNC_JOBS[job_name]
    check_keys = job.asset_layer.asset_graph.asset_check_keys
    assert {(k.asset_key, k.name) for k in check_keys} == {(a.key, n) for a in assets for n in NAMES}
    steps = [s.key for s in create_execution_plan(job).steps]
    check_steps = [s for s in steps if s not in {a.op.name for a in assets}]
    # four checks an entity, one step an entity (the sync jobs run no other check): 20 steps were 5
    assert len(check_steps) == len(assets), check_steps


def _only(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {ev.check_name: ev for ev in result.get_asset_check_evaluations()}


def test_a_check_selected_alone_runs_alone(sqlite_url):
    resources = {"source": SourceDatabaseResource(url=demo_db(sqlite_url))}
    key = dg.AssetCheckKey(CUSTOMERS, "synced_rows_have_zoho_id")
    result = materialize([], resources, checks=C.ENTITY_CHECKS, selection=dg.AssetSelection.checks(key))
    assert result.success
    evaluations = _only(result)
    assert list(evaluations) == ["synced_rows_have_zoho_id"]
    assert evaluations["synced_rows_have_zoho_id"].asset_key == CUSTOMERS


def test_a_check_that_raises_fails_the_step_and_the_others_are_evaluated(sqlite_url, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("backlog query broke")

    monkeypatch.setattr(C.V, "backlog_age", broken)
    resources = {"source": SourceDatabaseResource(url=demo_db(sqlite_url))}
    customer_checks = [c for c in C.ENTITY_CHECKS if next(iter(c.check_keys)).asset_key == CUSTOMERS]
    result = materialize([], resources, checks=customer_checks, selection=dg.AssetSelection.checks(*customer_checks))
    assert not result.success
    assert set(_only(result)) == NAMES - {"backlog_fresh"}
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1 and "backlog query broke" in failures[0].step_failure_data.error.to_string()
