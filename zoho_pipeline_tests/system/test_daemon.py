"""The deployment shape for real: a gRPC code server, the daemon and the webserver as separate processes sharing a
Postgres-backed DAGSTER_HOME. A customer inserted into the source is synced to ZOHO by a sensor-launched run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS

pytestmark = pytest.mark.daemon

BIN = Path(sys.executable).parent
DEADLINE_S = 150

RUNS_QUERY = """
query Runs($tag: String!) {
  runsOrError(filter: {tags: [{key: "zoho_trigger", value: $tag}]}) {
    __typename
    ... on Runs { results { runId jobName status } }
    ... on PythonError { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{name} did not listen on {port} within {timeout}s")


def test_sensor_launched_run_syncs_a_new_customer(tmp_path, make_pg_database, emulator, zoho_config, monkeypatch):
    from zoho_pipeline.cli import sync as sync_cmd
    from zoho_pipeline.source.migrate import create_demo

    source_url = make_pg_database()
    dagster_pg = make_pg_database()  # postgresql+psycopg2://: dagster-postgres reads it with SQLAlchemy
    create_demo(source_url, customers=8, seed=3)

    env = {
        "SOURCE_DATABASE_URL": source_url,
        "ZOHO_API_BASE_URL": zoho_config.api_base_url,
        "ZOHO_ACCOUNTS_URL": zoho_config.accounts_url,
        "ZOHO_CLIENT_ID": TEST_CREDENTIALS["client_id"],
        "ZOHO_CLIENT_SECRET": TEST_CREDENTIALS["client_secret"],
        "ZOHO_REFRESH_TOKEN": TEST_CREDENTIALS["refresh_token"],
        "ZOHO_ORGANIZATION_ID": TEST_CREDENTIALS["organization_id"],
        "ZOHO_RATE_LIMIT_PER_MINUTE": "100000",
        "ZOHO_DAILY_BUDGET": "10000000",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert sync_cmd.main(["--json"]) in (0, 1)  # the demo data synced (its few bad rows fail)

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: {env: DAGSTER_PG_URL}\n"
        "concurrency:\n  runs:\n    tag_concurrency_limits:\n      - key: zoho_sync\n        limit: 1\n"
        "  pools:\n    default_limit: 1\n"
        "telemetry:\n  enabled: false\n"
    )
    grpc_port, web_port = _free_port(), _free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {grpc_port}\n"
        "      location_name: zoho_pipeline\n"
    )
    proc_env = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": dagster_pg,
        "DAGSTER_DEPLOYMENT": "production",
        "PYTHONUNBUFFERED": "1",
    }
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("grpc", "daemon", "webserver")}
    procs: dict[str, subprocess.Popen] = {}

    def start(name, cmd):
        procs[name] = subprocess.Popen(
            cmd, env=proc_env, cwd=tmp_path, stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True
        )

    try:
        start(
            "grpc",
            [
                str(BIN / "dagster"),
                "api",
                "grpc",
                "-m",
                "zoho_pipeline.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(grpc_port),
            ],
        )
        _wait_port(grpc_port, procs["grpc"], "code server")
        # Inserted before the daemon starts, so its first sensor tick sees it instead of the one 60 s later.
        customer_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        engine = sa.create_engine(source_url)
        with engine.begin() as conn:
            conn.execute(
                T.customers.insert().values(
                    id=customer_id,
                    email=f"daemon-{customer_id[:8]}@example.co.za",
                    first_name="Sipho",
                    last_name="Daemon",
                    account_type="residential",
                    country="ZA",
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )

        start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])
        start(
            "webserver", [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)]
        )
        _wait_port(web_port, procs["webserver"], "webserver")

        deadline = time.monotonic() + DEADLINE_S
        succeeded = None
        seen = []
        while time.monotonic() < deadline and succeeded is None:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited: {(tmp_path / f'{name}.log').read_text()[-3000:]}"
            resp = requests.post(
                f"http://127.0.0.1:{web_port}/graphql",
                json={"query": RUNS_QUERY, "variables": {"tag": "sensor"}},
                timeout=10,
            )
            data = resp.json()["data"]["runsOrError"]
            assert data["__typename"] == "Runs", data
            seen = data["results"]
            assert not any(r["status"] == "FAILURE" for r in seen), seen
            succeeded = next((r for r in seen if r["status"] == "SUCCESS" and r["jobName"] == "zoho_sync_job"), None)
            if succeeded is None:
                time.sleep(2)
        assert succeeded, (
            f"no sensor-launched run succeeded within {DEADLINE_S}s: {seen}\n"
            + (tmp_path / "daemon.log").read_text()[-3000:]
        )

        with engine.connect() as conn:
            zoho_id = conn.execute(
                sa.select(T.customers.c.zoho_billing_customer_id).where(T.customers.c.id == customer_id)
            ).scalar_one()
        engine.dispose()
        assert zoho_id
        from zoho_pipeline.zoho.client import ZohoClient

        with ZohoClient(zoho_config) as client:
            customer = client.get(f"/customers/{zoho_id}")["customer"]
        assert customer["email"] == f"daemon-{customer_id[:8]}@example.co.za"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for f in logs.values():
            f.close()
