"""Issue 12 item 1: a CLI sync killed with SIGKILL never blocks the queue. Its Dagster run (executed in the CLI's
own process, so run monitoring has no worker to watch) is marked failed by the next sensor or schedule tick, or the
next CLI run, once its process is gone; a live one is never touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from zoho_pipeline.defs import cli_runs
from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource
from zoho_pipeline.defs.sensors import zoho_source_changes_sensor
from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline_tests.support.dagster import BACKENDS, dagster_instance
from zoho_pipeline_tests.support.emulator import pipeline_env, start_emulator

BIN = Path(sys.executable).parent
IN_PROGRESS = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def _add_run(instance, tags: dict) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(
        DagsterRun(job_name="zoho_all_entities_sync_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags)
    )
    return run_id


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_runs_whose_process_is_gone_are_failed(backend, request):
    here = socket.gethostname()
    stale = (datetime.now(UTC) - timedelta(seconds=600)).isoformat()
    with dagster_instance(backend, request) as instance:
        live = _add_run(instance, {"zoho_sync": "1", **cli_runs.run_tags()})
        dead = _add_run(instance, {"zoho_sync": "1", **cli_runs.run_tags(), cli_runs.TAG_PID: str(_gone_pid())})
        reused = _add_run(instance, {"zoho_sync": "1", **cli_runs.run_tags(), cli_runs.TAG_STARTED: "1"})
        far_stale = _add_run(
            instance,
            {cli_runs.TAG: "1", cli_runs.TAG_HOST: "other-host", cli_runs.TAG_PID: "1", cli_runs.TAG_HEARTBEAT: stale},
        )
        far_fresh = _add_run(
            instance,
            {
                cli_runs.TAG: "1",
                cli_runs.TAG_HOST: "other-host",
                cli_runs.TAG_PID: "1",
                cli_runs.TAG_HEARTBEAT: datetime.now(UTC).isoformat(),
            },
        )
        daemon_run = _add_run(instance, {"zoho_sync": "1", "zoho_trigger": "schedule"})  # run monitoring's own

        failed = cli_runs.fail_dead_runs(instance, stale_after_s=120)

        assert sorted(failed) == sorted([dead, far_stale] + ([reused] if Path("/proc/self/stat").exists() else []))
        for run_id in failed:
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
        for run_id in (live, far_fresh, daemon_run):
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
        assert here in instance.get_run_by_id(dead).tags[cli_runs.TAG_HOST]
        assert cli_runs.fail_dead_runs(instance, stale_after_s=120) == []  # once


def _runs_in_progress(instance):
    return instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS), tags={"zoho_sync": "1"}))


def test_a_cli_sync_killed_with_sigkill_is_failed_by_the_next_sensor_tick(tmp_path, make_pg_database):
    """Dagster's Postgres storage, the deployment's zoho_sync tag limit: the run the killed CLI left STARTED is
    failed by the sensor, so nothing in progress holds the limit any more."""
    source_url, dagster_pg = make_pg_database(), make_pg_database()
    create_demo(source_url, customers=25, seed=3)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_pg}\n"
        "concurrency:\n  runs:\n    tag_concurrency_limits:\n      - key: zoho_sync\n        limit: 1\n"
        "telemetry:\n  enabled: false\n"
    )
    emulator = start_emulator(latency_ms=150)  # slow enough that the kill lands mid-run
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ZOHO_", "ALERT_"))},
        **pipeline_env(source_url, emulator.url, DAGSTER_HOME=str(home), ZOHO_SYNC_HEARTBEAT_S="1"),
    }
    proc = subprocess.Popen(
        [str(BIN / "zoho-pipeline"), "sync"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            started = [r for r in _runs_in_progress(instance) if r.status == dg.DagsterRunStatus.STARTED]
            if started and emulator.stats()["requests"] > 5:
                break
            assert proc.poll() is None, "the sync ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("the CLI's run never started")
        resources = {
            "source": SourceDatabaseResource(url=source_url),
            "engine": SyncEngineResource(run_stale_after_s=120.0),
        }
        # a tick while the CLI is alive leaves its run alone
        zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_id for r in _runs_in_progress(instance)] == [started[0].run_id]

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        run_id = started[0].run_id
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # what blocked the queue

        zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, resources=resources))

        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert _runs_in_progress(instance) == []  # the zoho_sync limit is free: the next run is not queued behind
        failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert failure and "is gone" in failure[-1].message
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        instance.dispose()
        emulator.stop()
