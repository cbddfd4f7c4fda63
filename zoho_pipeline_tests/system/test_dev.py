"""`make dev` for real: `scripts/dev.py` on an empty demo folder makes the demo first, then runs the emulator from
the demo's state and `dagster dev` with the demo's settings. The UI's code location loads, schedules and sensors
run, a run launched from the UI syncs (the demo's settings reach it), and Ctrl-C stops every process it started.

One dev server for the whole module (starting it costs a demo sync and a code location load); the tests run in
file order and the last one stops it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support.browser import Shots, chromium_or_skip
from zoho_pipeline_tests.support.dev_server import FINISHED, LAUNCH, RUNS, DevServer, alive

pytestmark = pytest.mark.daemon

SENSOR_S = 240  # the sensor ticks every 60 s; then the core and billing runs
BACKFILL_S = 180


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    server = DevServer(tmp_path_factory.mktemp("dev"))
    try:
        server.location = server.wait_loaded()
        yield server
    finally:
        server.kill()


def test_make_dev_makes_the_demo_and_runs_the_product(dev):
    # no demo in the folder: dev.py made one (a sync through Dagster) before starting anything
    log = dev.log(tail=None)
    assert "No demo in" in log and "$ zoho-pipeline sync" in log, log[:3000]
    settings = dev.settings()
    assert settings["SOURCE_DATABASE_URL"].endswith("source.db")
    repo = dev.location["repositories"][0]
    assert dev.location["name"] == "zoho_pipeline"

    # schedules and sensors run on the embedded default (DAGSTER_DEPLOYMENT=demo)
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
        "zoho_sync_schedule": "RUNNING",
        "zoho_reconciliation_schedule": "RUNNING",
    }
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors["zoho_source_changes_sensor"] == "RUNNING" and set(sensors.values()) == {"RUNNING"}

    # the emulator came back from the demo's state file: the customers the demo synced are in ZOHO
    engine = sa.create_engine(settings["SOURCE_DATABASE_URL"])
    with engine.connect() as conn:
        synced = conn.execute(
            sa.select(sa.func.count()).where(T.customers.c.zoho_billing_customer_id.is_not(None))
        ).scalar()
    token = requests.post(
        f"{settings['ZOHO_ACCOUNTS_URL']}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": settings["ZOHO_CLIENT_ID"],
            "client_secret": settings["ZOHO_CLIENT_SECRET"],
            "refresh_token": settings["ZOHO_REFRESH_TOKEN"],
        },
        timeout=10,
    ).json()["access_token"]
    listed = requests.get(
        f"{settings['ZOHO_API_BASE_URL']}/customers",
        headers={
            "Authorization": f"Zoho-oauthtoken {token}",
            "X-com-zoho-subscriptions-organizationid": settings["ZOHO_ORGANIZATION_ID"],
        },
        params={"per_page": 200},
        timeout=10,
    ).json()["customers"]
    assert synced >= 5 and len(listed) == synced

    # the monthly partitions start at the data's first month, not two empty years before it
    from zoho_pipeline.source.demo_month import first_month

    keys = dev.gql(PARTITIONS)["assetNodes"][0]["partitionKeys"]
    assert keys[0] == settings["ZOHO_PARTITIONS_START"] == first_month(engine).isoformat()
    assert keys[-1] == datetime.now(UTC).date().replace(day=1).isoformat()  # the open current month

    # what used to fail with "SOURCE_DATABASE_URL is not set": a run launched from the UI (a full resync)
    selector = {"repositoryLocationName": dev.location["name"], "repositoryName": repo["name"]}
    config = {"ops": {"zoho_customers": {"config": {"mode": "all"}}}}
    params = {"selector": {**selector, "jobName": "zoho_sync_job"}, "runConfigData": config}
    launched = dev.gql(LAUNCH, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run = dev.wait_run(launched["run"]["runId"])
    assert run["status"] == "SUCCESS", (run, dev.log())


def _zoho_get(settings: dict, path: str, **params) -> dict:
    token = requests.post(
        f"{settings['ZOHO_ACCOUNTS_URL']}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": settings["ZOHO_CLIENT_ID"],
            "client_secret": settings["ZOHO_CLIENT_SECRET"],
            "refresh_token": settings["ZOHO_REFRESH_TOKEN"],
        },
        timeout=10,
    ).json()["access_token"]
    return requests.get(
        f"{settings['ZOHO_API_BASE_URL']}{path}",
        headers={
            "Authorization": f"Zoho-oauthtoken {token}",
            "X-com-zoho-subscriptions-organizationid": settings["ZOHO_ORGANIZATION_ID"],
        },
        params={"per_page": 200, **params},
        timeout=10,
    ).json()


def test_a_month_played_from_the_cli_and_the_launchpad_is_synced_on_its_own(dev):
    settings = dev.settings()
    engine = sa.create_engine(settings["SOURCE_DATABASE_URL"])
    zoho_invoices_before = len(_zoho_get(settings, "/invoices", filter_by="Status.All")["invoices"])
    clock_before = requests.get(f"{settings['ZOHO_ACCOUNTS_URL']}/__emulator__/clock", timeout=10).json()["now"]

    # `make month`: the CLI with the demo's settings
    env = {**os.environ, **settings}
    cli = Path(sys.executable).parent / "zoho-pipeline"
    out = subprocess.run([str(cli), "demo", "month", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    assert first["new_customers"] >= 2 and first["recurring_invoices"] > 0, first
    assert first["payments_on_time"] + first["payments_late"] > 0, first
    # ZOHO's clock moved to the billing day (forward from where the demo left it)
    assert first["zoho_clock"].startswith(first["month"] + "T06:00") and first["zoho_clock"] > clock_before, (
        first,
        clock_before,
    )

    # the Launchpad's month job plays the next month
    repo = dev.location["repositories"][0]
    assert "zoho_demo_month_job" in {j["name"] for j in repo["jobs"]}
    selector = {"repositoryLocationName": dev.location["name"], "repositoryName": repo["name"]}
    params = {"selector": {**selector, "jobName": "zoho_demo_month_job"}, "runConfigData": {}}
    launched = dev.gql(LAUNCH, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    month_run = dev.wait_run(launched["run"]["runId"])
    assert month_run["status"] == "SUCCESS", (month_run, dev.log())
    clock = requests.get(f"{settings['ZOHO_ACCOUNTS_URL']}/__emulator__/clock", timeout=10).json()["now"]
    second = (date.fromisoformat(first["month"]) + timedelta(days=32)).replace(day=1)
    assert clock.startswith(f"{second.isoformat()}T06:00"), (clock, first)

    # both months reach ZOHO: every new customer (synced by the month itself, before ZOHO's renewal)
    c = T.customers.c
    new = sa.select(sa.func.count()).where(c.created_at > datetime.fromisoformat(first["period_start"]))
    synced = new.where(c.zoho_billing_customer_id.is_not(None))
    deadline = time.monotonic() + SENSOR_S
    while True:
        with engine.connect() as conn:
            added, done = conn.execute(new).scalar(), conn.execute(synced).scalar()
        if added and done == added:
            break
        assert time.monotonic() < deadline, f"{done}/{added} new customers synced after {SENSOR_S}s: {dev.log()}"
        dev.remember_processes()
        time.sleep(3)
    assert added >= 2 * first["new_customers"] - 1
    # the month's account changes were synced by the month itself (the CLI's run, the job's op), before ZOHO's
    # renewal; its billing run and payments by the automation, not by the test: the source sensor, or the 5-minute
    # schedule when its tick came first
    while True:
        runs = [
            (job, r["status"], {t["key"]: t["value"] for t in r["tags"]}.get("zoho_trigger"))
            for job in ("zoho_sync_job", "zoho_billing_sync_job", "zoho_all_entities_sync_job")
            for r in dev.gql(RUNS, job=job)["runsOrError"]["results"]
        ]
        automatic = [r for r in runs if r[2] in ("sensor", "schedule")]  # still running its later assets, or done
        if automatic:
            break
        assert time.monotonic() < deadline, f"no sensor or schedule run after {SENSOR_S}s: {runs} {dev.log()}"
        dev.remember_processes()
        time.sleep(3)
    assert all(status != "FAILURE" for _, status, _ in automatic), runs
    # ZOHO renewed the subscriptions on the two billing days and raised their invoices
    zoho_invoices = len(_zoho_get(settings, "/invoices", filter_by="Status.All")["invoices"])
    assert zoho_invoices > zoho_invoices_before


PARTITIONS = """
{ assetNodes(assetKeys: [{path: ["zoho_invoices"]}]) { partitionKeys } }
"""

BACKFILLS = """
{ partitionBackfillsOrError(limit: 5) { __typename ... on PartitionBackfills { results { id status partitionNames
  assetSelection { path } runs(limit: 5) { runId status } } } } }
"""

BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


STATUSES = """
{ assetNodes(assetKeys: [{path: ["zoho_invoices"]}]) { assetPartitionStatuses { __typename
  ... on TimePartitionStatuses { ranges { status startKey endKey } } } } }
"""


def _materialized(dev, keys: list[str]) -> set[str]:
    """The partitions Dagster holds as materialized (green), from the ranges the UI draws."""
    ranges = dev.gql(STATUSES)["assetNodes"][0]["assetPartitionStatuses"]["ranges"]
    done = set()
    for r in ranges:
        if r["status"] == "MATERIALIZED":
            done |= set(keys[keys.index(r["startKey"]) : keys.index(r["endKey"]) + 1])
    return done


def _count(page, label: str) -> int:
    """The number in the partitions view's "<label> (N)" filter."""
    return int(re.search(rf"{label} \((\d+)\)", page.inner_text("body")).group(1))


def _dismiss_welcome(page) -> None:
    """Dagster's community dialog shows on an instance's first visit, sometimes seconds after the page loaded (seen
    in CI: it covered the graph as the walk clicked zoho_invoices). Playwright's locator handler skips it whenever it
    appears before an action, however late."""
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())


def browser_walkthrough(dev, page, shot) -> dict:
    """What a data team does in the UI: the asset graph, zoho_invoices, a three-month backfill from its partitions,
    the materialization's counts, and the failure table of a failing check. Returns what it saw."""
    seen = {}
    # 1. the asset graph of group zoho_billing: the five assets in their order
    _dismiss_welcome(page)
    page.goto(f"{dev.url}/asset-groups/zoho_billing")
    for name in ("zoho_plans", "zoho_customers", "zoho_subscriptions", "zoho_invoices", "zoho_payments"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    shot("asset-graph")

    # 2. zoho_invoices from the graph, then its partitions: one per month of the demo's data
    page.get_by_text("zoho_invoices", exact=True).first.click()
    page.get_by_text("Backfills all partitions in a single run").wait_for(timeout=30_000)  # its sidebar
    shot("zoho-invoices-in-the-graph")
    page.get_by_text("View in Asset Catalog").click()
    page.wait_for_url("**/assets/zoho_invoices**", timeout=30_000)
    page.get_by_text("Partitions", exact=True).first.click()
    keys = dev.gql(PARTITIONS)["assetNodes"][0]["partitionKeys"]
    months = keys[-4:-1]  # three months before the open current one
    page.get_by_text(f"{len(keys)} Partitions", exact=False).first.wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"Missing \(\d+\)")).wait_for(timeout=30_000)
    missing_before = _count(page, "Missing")
    assert set(months) <= set(keys) - _materialized(dev, keys)  # months the demo has not reached yet: grey
    shot("zoho-invoices-partitions")

    # 3. a backfill of three months, launched from the partitions view
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Show all partitions").click()
    box = dialog.locator("input").first
    box.fill(f"[{months[0]}...{months[-1]}]")
    box.press("Enter")
    dialog.get_by_text("3 partitions", exact=True).wait_for(timeout=10_000)
    shot("backfill-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    dialog.wait_for(state="hidden", timeout=30_000)

    deadline = time.monotonic() + BACKFILL_S
    while True:
        found = dev.gql(BACKFILLS)["partitionBackfillsOrError"]["results"]
        backfill = next((b for b in found if sorted(b["partitionNames"] or []) == months), None)
        assert backfill is not None, found
        if backfill["status"] in BACKFILL_DONE and backfill["runs"] and backfill["runs"][0]["status"] in FINISHED:
            break
        assert time.monotonic() < deadline, f"backfill still {backfill} after {BACKFILL_S}s: {dev.log()}"
        dev.remember_processes()
        time.sleep(2)
    seen["backfill"] = backfill
    [run] = backfill["runs"]  # one run for the three months: the assets' single-run backfill policy
    assert run["status"] == "SUCCESS", (backfill, dev.log())

    # 4. the partitions are green (materialized, none failed), and a month's materialization shows its counts
    page.goto(f"{dev.url}/assets/zoho_invoices?view=partitions")
    page.get_by_text("Failed (0)").wait_for(timeout=30_000)
    assert set(months) <= _materialized(dev, keys)
    page.get_by_text(re.compile(r"Missing \(\d+\)")).wait_for(timeout=30_000)
    assert _count(page, "Missing") <= missing_before - 3
    shot("partitions-green-after-backfill")
    page.get_by_text(months[1], exact=True).first.click()
    details = page.locator("body")
    details.get_by_text(run["runId"][:8]).first.wait_for(timeout=30_000)
    for key in ("created", "updated", "unchanged", "failed", "api_calls", "rows_per_minute"):
        details.get_by_text(key, exact=True).first.wait_for(timeout=10_000)
    shot("partition-metadata-counts")
    seen["materialization"] = page.inner_text("body")

    # 5. the failing check of the demo's bad invoices, and its table of failures with reasons
    page.goto(f"{dev.url}/assets/zoho_invoices?view=checks")
    page.get_by_text("failures_under_threshold", exact=True).first.click()
    page.get_by_text("Failed", exact=True).first.wait_for(timeout=30_000)
    page.get_by_text("error", exact=True).first.wait_for(timeout=30_000)
    shot("failed-rows-check")
    seen["check"] = page.inner_text("body")

    # 6. a month of business from the Launchpad: zoho_demo_month_job, launched and watched to success
    page.goto(f"{dev.url}/locations/{dev.location['name']}/jobs/zoho_demo_month_job/playground")
    launch = page.get_by_role("button", name="Launch run")
    launch.wait_for(timeout=30_000)
    shot("month-launchpad")
    launch.click()
    page.wait_for_url("**/runs/**", timeout=30_000)
    run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0].split("/")[0]
    month_run = dev.wait_run(run_id)
    assert month_run["status"] == "SUCCESS", (month_run, dev.log())
    page.reload()
    page.get_by_text("Success", exact=False).first.wait_for(timeout=30_000)
    page.get_by_text("recurring_invoices", exact=False).first.wait_for(timeout=30_000)  # the step's output
    shot("month-run-succeeded")
    seen["month_run"] = run_id
    return seen


def test_the_ui_in_a_real_browser(dev):
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            shots = Shots(page, "test_the_ui_in_a_real_browser")
            try:
                seen = browser_walkthrough(dev, page, shots)
            except Exception:
                shots("at-failure")
                raise
        finally:
            browser.close()
    assert [p.name[3:] for p in shots.taken] == [
        "asset-graph.png",
        "zoho-invoices-in-the-graph.png",
        "zoho-invoices-partitions.png",
        "backfill-dialog.png",
        "partitions-green-after-backfill.png",
        "partition-metadata-counts.png",
        "failed-rows-check.png",
        "month-launchpad.png",
        "month-run-succeeded.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in shots.taken)
    # the check's table names the demo's bad invoices with their reasons
    engine = sa.create_engine(dev.settings()["SOURCE_DATABASE_URL"])
    inv = T.customer_invoices.c
    with engine.connect() as conn:
        failed = conn.execute(sa.select(inv.invoice_number).where(inv.zoho_sync_status == "failed")).scalars().all()
    assert failed and any(number in seen["check"] for number in failed), seen["check"][-2000:]


def test_ctrl_c_stops_every_process(dev):
    dev.remember_processes()
    started = set(dev.seen)
    # the emulator, dagster dev, its webserver, daemon and code server at least
    assert len(started) >= 5, started
    assert dev.interrupt() == 0, dev.log()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for p in started if alive(p)}
    assert left == {}, left
    with pytest.raises(requests.ConnectionError):
        requests.get(dev.url, timeout=2)
