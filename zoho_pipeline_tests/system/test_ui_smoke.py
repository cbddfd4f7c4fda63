"""What a newcomer sees in the UI: `dagster-webserver -m zoho_pipeline.definitions` as a real process on a temporary
SQLite DAGSTER_HOME, asked through its GraphQL API (what the UI itself calls): the five assets of group zoho_billing
with their edges, invoices and payments partitioned monthly, every asset check, the jobs with their launchpad
config, the schedules and sensors, and a three-month invoice backfill accepted as one asset backfill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from zoho_pipeline.defs.assets import ALL_ASSETS
from zoho_pipeline.defs.checks import ALL_CHECKS
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS

pytestmark = pytest.mark.daemon

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 45

WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message }
    ... on RepositoryLocation { name repositories { name
      jobs { name description }
      schedules { name cronSchedule pipelineName }
      sensors { name sensorType minIntervalSeconds description } } } } } } } }
"""

ASSETS = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } isPartitioned partitionKeys
  partitionDefinition { type description } backfillPolicy { policyType }
  assetChecksOrError { __typename ... on AssetChecks { checks { name description } } } } }
"""

RUN_CONFIG = """
query Config($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) { __typename ... on RunConfigSchema { rootDefaultYaml } } }
"""

VALID = """
query Valid($selector: PipelineSelector!, $config: RunConfigData!) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
    __typename ... on RunConfigValidationInvalid { errors { message } } } }
"""

BACKFILL = """
mutation Backfill($months: [String!]!) {
  launchPartitionBackfill(backfillParams: {assetSelection: [{path: ["zoho_invoices"]}], partitionNames: $months}) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""

BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename ... on PartitionBackfill { status numPartitions partitionNames isAssetBackfill assetSelection { path } } } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _GraphQL:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/graphql"

    def __call__(self, query: str, **variables) -> dict:
        resp = requests.post(self.url, json={"query": query, "variables": variables}, timeout=30)
        body = resp.json()
        assert resp.status_code == 200 and "errors" not in body, body
        return body["data"]


@pytest.fixture
def webserver(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # SQLite storage under DAGSTER_HOME
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ALERT_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            "SOURCE_DATABASE_URL": f"sqlite:///{tmp_path / 'source.db'}",
            "ZOHO_CLIENT_ID": TEST_CREDENTIALS["client_id"],
            "ZOHO_CLIENT_SECRET": TEST_CREDENTIALS["client_secret"],
            "ZOHO_REFRESH_TOKEN": TEST_CREDENTIALS["refresh_token"],
            "ZOHO_ORGANIZATION_ID": TEST_CREDENTIALS["organization_id"],
            "ZOHO_API_BASE_URL": "http://127.0.0.1:9/billing/v1",
            "ZOHO_ACCOUNTS_URL": "http://127.0.0.1:9",
        }
    )
    log_path = tmp_path / "webserver.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-m", "zoho_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        gql = _GraphQL(port)
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert proc.poll() is None, f"webserver exited: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"webserver not ready in {STARTUP_S}s: {log_path.read_text()[-3000:]}"
            try:
                entries = gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["loadStatus"] == "LOADED":
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        location = entries[0]["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        yield gql, location
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_the_ui_shows_the_whole_code_location(webserver):
    gql, location = webserver
    repo = location["repositories"][0]
    selector = {"repositoryLocationName": location["name"], "repositoryName": repo["name"]}

    # assets: five in zoho_billing downstream of the two external systems, their edges as defined, invoices and
    # payments monthly (one-run backfills)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in gql(ASSETS)["assetNodes"]}
    expected = {a.key.to_user_string(): a for a in ALL_ASSETS}
    external = {"source_database", "zoho_billing_api"}
    assert (
        set(nodes) - external
        == set(expected)
        == {"zoho_plans", "zoho_customers", "zoho_subscriptions", "zoho_invoices", "zoho_payments"}
    )
    assert external <= set(nodes)
    for name, node in ((n, nodes[n]) for n in expected):
        assert node["groupName"] == "zoho_billing", name
        deps = {"/".join(d["path"]) for d in node["dependencyKeys"]}
        assert deps == {k.to_user_string() for k in expected[name].asset_deps[expected[name].key]}, name
    assert {"/".join(d["path"]) for d in nodes["zoho_customers"]["dependencyKeys"]} == {"zoho_plans", *external}
    assert "zoho_customers" in {"/".join(d["path"]) for d in nodes["zoho_subscriptions"]["dependencyKeys"]}
    assert {"/".join(d["path"]) for d in nodes["zoho_payments"]["dependencyKeys"]} == {"zoho_invoices", *external}
    for name in ("zoho_invoices", "zoho_payments"):
        node = nodes[name]
        assert node["isPartitioned"] and node["partitionDefinition"]["type"] == "TIME_WINDOW"
        assert node["partitionDefinition"]["description"].startswith("Monthly")
        assert node["backfillPolicy"]["policyType"] == "SINGLE_RUN"
        assert len(node["partitionKeys"]) >= 3 and all(k.endswith("-01") for k in node["partitionKeys"])
    for name in ("zoho_plans", "zoho_customers", "zoho_subscriptions"):
        assert not nodes[name]["isPartitioned"], name

    # every asset check, each with its description
    shown = {
        (name, c["name"])
        for name, node in nodes.items()
        for c in node["assetChecksOrError"]["checks"]
        if c["description"]
    }
    defined = {(k.asset_key.to_user_string(), k.name) for check in ALL_CHECKS for k in check.check_keys}
    # per entity; api and migrations once; reconcile and drift per entity; the ledger once, on zoho_payments
    assert shown == defined and len(defined) == 4 * 5 + 2 + 5 + 5 + 1
    assert ("zoho_payments", "zoho_ledger_matches_source") in defined

    # jobs, with what the launchpad asks for
    jobs = {j["name"] for j in repo["jobs"]}
    assert {"zoho_sync_job", "zoho_billing_sync_job", "zoho_all_entities_sync_job", "zoho_reconciliation_job"} <= jobs
    # a resync and a retry are asset config on the sync job, shown with their defaults in the Launchpad
    resync = gql(RUN_CONFIG, selector={**selector, "pipelineName": "zoho_sync_job"})["runConfigSchemaOrError"]
    for op in ("zoho_plans", "zoho_customers", "zoho_subscriptions"):
        assert f"  {op}:\n    config:\n      all_failed: false\n      dry_run: false\n" in resync["rootDefaultYaml"]
        assert "      mode: due\n" in resync["rootDefaultYaml"]
    assert "client_secret:\n        env: ZOHO_CLIENT_SECRET" in resync["rootDefaultYaml"]  # the name, never the value
    assert TEST_CREDENTIALS["client_secret"] not in resync["rootDefaultYaml"]
    assert "max_workers: 4" in resync["rootDefaultYaml"]  # the engine's knobs, one resource
    retry = {**selector, "pipelineName": "zoho_sync_job"}
    for op, config in (("zoho_customers", {"all_failed": True}), ("zoho_plans", {"ids": ["a-uuid"]})):
        valid = gql(VALID, selector=retry, config={"ops": {op: {"config": config}}})
        assert valid["isPipelineConfigValid"]["__typename"] == "PipelineConfigValidationValid", valid
    invalid = gql(VALID, selector=retry, config={"ops": {"zoho_customers": {"config": {"entity": "customers"}}}})
    assert "entity" in invalid["isPipelineConfigValid"]["errors"][0]["message"]

    # schedules and sensors
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert schedules["zoho_sync_schedule"]["pipelineName"] == "zoho_all_entities_sync_job"
    assert "zoho_reconciliation_schedule" in schedules
    sensors = {s["name"]: s for s in repo["sensors"]}
    assert set(sensors) >= {"zoho_source_changes_sensor", "zoho_run_failure_sensor", "zoho_check_alert_sensor"}
    assert sensors["zoho_run_failure_sensor"]["sensorType"] == "RUN_STATUS"
    assert sensors["zoho_check_alert_sensor"]["minIntervalSeconds"] == 120

    # a three-month invoice backfill, as the UI launches it from the asset graph: one asset backfill
    months = nodes["zoho_invoices"]["partitionKeys"][:3]
    launched = gql(BACKFILL, months=months)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = gql(BACKFILL_STATUS, id=launched["backfillId"])["partitionBackfillOrError"]
    assert backfill["isAssetBackfill"] and backfill["numPartitions"] == 3
    assert backfill["partitionNames"] == months
    assert backfill["assetSelection"] == [{"path": ["zoho_invoices"]}]
