"""`make dev` for real: `scripts/dev.py` on an empty demo folder makes the demo first, then runs the emulator from
the demo's state and `dagster dev` with the demo's settings. The UI's code location loads, schedules and sensors
run, a run launched from the UI syncs (the demo's settings reach it), and Ctrl-C stops every process it started.

One dev server for the whole module (starting it costs a demo sync and a code location load); the tests run in
file order and the last one stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support.emulator import free_port

pytestmark = pytest.mark.daemon

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 240
RUN_S = 150
SENSOR_S = 240  # the sensor ticks every 60 s; then the core and billing runs

WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message }
    ... on RepositoryLocation { name repositories { name jobs { name }
      schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } } } } }
"""

LAUNCH = """
mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""

RUN = """
query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status jobName tags { key value } } } }
"""

RUNS = """
query Runs($job: String!) { runsOrError(filter: {pipelineName: $job}) { __typename
  ... on Runs { results { runId status tags { key value } } } } }
"""

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


class GraphQL:
    def __init__(self, url: str):
        self.url = f"{url}/graphql"

    def __call__(self, query: str, **variables) -> dict:
        resp = requests.post(self.url, json={"query": query, "variables": variables}, timeout=30)
        body = resp.json()
        assert resp.status_code == 200 and "errors" not in body, body
        return body["data"]


def read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def descendants(pid: int) -> set[int]:
    """The living processes below `pid`, from /proc (the test's own walk, not dev.py's)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class DevServer:
    """scripts/dev.py as `make dev` runs it, in a session of its own; every process seen below it is remembered."""

    def __init__(self, tmp: Path):
        self.demo = tmp / ".demo"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "dev.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ZOHO_", "ALERT_", "SOURCE_"))}
        env["DAGSTER_HOME"] = str(tmp / "dagster_home")
        cmd = [sys.executable, str(REPO / "scripts" / "dev.py"), "--dir", str(self.demo), "--port", str(self.port)]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--customers", "6", "--seed", "5"],
                env=env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.seen: set[int] = set()
        self.gql = GraphQL(self.url)

    def log(self, tail: int | None = 4000) -> str:
        text = self.log_path.read_text()
        return text if tail is None else text[-tail:]

    def remember_processes(self) -> None:
        self.seen |= descendants(self.proc.pid)

    def wait_loaded(self) -> dict:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert self.proc.poll() is None, f"dev.py exited {self.proc.returncode}: {self.log()}"
            assert time.monotonic() < deadline, f"the UI did not load in {STARTUP_S}s: {self.log()}"
            self.remember_processes()
            try:
                entries = self.gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["loadStatus"] == "LOADED":
                    return entries[0]["locationOrLoadError"]
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)

    def settings(self) -> dict[str, str]:
        return read_env_file(self.demo / ".env")

    def wait_run(self, run_id: str, timeout: float = RUN_S) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.gql(RUN, id=run_id)["runOrError"]
            if run["status"] in FINISHED:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout}s"
            self.remember_processes()
            time.sleep(2)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it to `make dev`: SIGINT to dev.py (its children have their own groups)."""
        self.remember_processes()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for pid in self.seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


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


def test_a_month_played_from_the_cli_and_the_launchpad_is_synced_by_the_sensor(dev):
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
    assert first["zoho_clock"].startswith(first["month"] + "T06:00") and first["zoho_clock"] > clock_before

    # the Launchpad's month job plays the next month
    repo = dev.location["repositories"][0]
    assert "zoho_demo_month_job" in {j["name"] for j in repo["jobs"]}
    selector = {"repositoryLocationName": dev.location["name"], "repositoryName": repo["name"]}
    params = {"selector": {**selector, "jobName": "zoho_demo_month_job"}, "runConfigData": {}}
    launched = dev.gql(LAUNCH, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    assert dev.wait_run(launched["run"]["runId"])["status"] == "SUCCESS", dev.log()
    clock = requests.get(f"{settings['ZOHO_ACCOUNTS_URL']}/__emulator__/clock", timeout=10).json()["now"]
    second = (date.fromisoformat(first["month"]) + timedelta(days=32)).replace(day=1)
    assert clock.startswith(f"{second.isoformat()}T06:00"), clock

    # the sensor syncs both months on its own: every new customer reaches ZOHO
    c = T.customers.c
    new = sa.select(sa.func.count()).where(c.created_at > first["period_start"][:19].replace("T", " "))
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
    sensor_runs = [
        r
        for job in ("zoho_sync_job", "zoho_billing_sync_job")
        for r in dev.gql(RUNS, job=job)["runsOrError"]["results"]
        if {"key": "zoho_trigger", "value": "sensor"} in r["tags"]
    ]
    assert sensor_runs, "no sensor-launched run"
    # ZOHO renewed the subscriptions on the two billing days and raised their invoices
    zoho_invoices = len(_zoho_get(settings, "/invoices", filter_by="Status.All")["invoices"])
    assert zoho_invoices > zoho_invoices_before


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
