"""`scripts/dev.py` (what `make dev` runs) as a real process for the system tests: its GraphQL API (what the UI
itself calls), the processes it started (read from /proc, independently of dev.py's own walk), and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from zoho_pipeline_tests.support.emulator import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 240
RUN_S = 150

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

RUN_EVENTS = """
query Events($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events { __typename
  ... on MessageEvent { message stepKey } ... on ErrorEvent { error { message } } } } } }
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
                if run["status"] != "SUCCESS":  # why, in the assertion that follows
                    run["errors"] = self.run_errors(run_id)
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout}s"
            self.remember_processes()
            time.sleep(2)

    def run_errors(self, run_id: str) -> list[str]:
        """The failure messages of a run's event log (what the UI's run page shows in red)."""
        events = self.gql(RUN_EVENTS, id=run_id)["logsForRun"].get("events") or []
        return [
            f"{e.get('stepKey') or '-'}: {e.get('message')} {(e.get('error') or {}).get('message', '')}"[:2000]
            for e in events
            if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent")
            and (e.get("error") or e["__typename"] != "EngineEvent")
        ]

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
