"""Issue 12: every CLI command that writes to ZOHO runs as a Dagster run whose ZOHO-calling ops are in the `zoho_api`
pool; the commands that only read ZOHO draw from the organization's shared pace (sync.stores.DbPaceStore); the
others make no ZOHO call. Every command of `zoho-pipeline` is classified here, so a new one has to say which it is.
Each command runs in this process with the process-wide limiter reset first, as its own process would start."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from zoho_pipeline.cli import main as cli
from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline.sync.stores import DbPaceStore
from zoho_pipeline.zoho.limiter import RateLimiter
from zoho_pipeline_tests.support.emulator import TEST_CREDENTIALS, pipeline_env, start_emulator

POOL = "zoho_api"
# `{synced}`: the email of a customer the first sync created (a forced retry resends it)
WRITES = {
    "sync": [["sync"]],
    "retry": [["retry", "customers", "{synced}", "--force"]],
    "demo": [["demo", "month"]],
}
READS = {
    "health": [["health"]],
    "reconcile": [["reconcile"], ["reconcile", "--drift"], ["reconcile", "--ledger"]],
    "demo": [["demo", "figures"]],
}
NO_ZOHO = {
    "db": [["db", "current"]],
    "status": [["status"]],
    "logs": [["logs"]],
    "calls": [["calls"]],
    "alert": [["alert", "--dry-run"]],
    "emulator": [],  # the emulator itself
}


def test_every_command_is_classified():
    assert set(cli.COMMANDS) == set(WRITES) | set(READS) | set(NO_ZOHO)


@pytest.fixture
def world(db_url, tmp_path, monkeypatch):
    """A demo source dated 2026-02-10, an emulator whose clock starts that day, DAGSTER_HOME in tmp_path; the
    shared pace's leases counted per organization."""
    create_demo(db_url, customers=12, seed=8, today=dt.date(2026, 2, 10))
    emulator = start_emulator(start_time="2026-02-10T06:00:00Z")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for key, value in pipeline_env(
        db_url,
        emulator.url,
        DAGSTER_HOME=str(home),
        ZOHO_DAILY_BUDGET="10000000",
        ZOHO_SYNC_BACKOFF_BASE_S="0.01",
    ).items():
        monkeypatch.setenv(key, value)
    leases = []
    lease = DbPaceStore.lease
    monkeypatch.setattr(
        DbPaceStore, "lease", lambda self, org, *a, **kw: leases.append(org) or lease(self, org, *a, **kw)
    )
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance, emulator, leases, db_url
    finally:
        instance.dispose()
        emulator.stop()


def _run(argv: list[str]) -> int:
    RateLimiter.reset_registry()  # a CLI command is a process of its own: its limiter starts empty
    return cli.main(argv)


def _zoho_steps(instance, run) -> dict[str, str | None]:
    """{step key: its op's pool} of the run's steps that used the ZOHO resource."""
    from zoho_pipeline.definitions import defs

    job = defs.resolve_job_def(run.job_name)
    started = {e.step_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)}
    ops = {node.name: node.definition for node in job.graph.nodes}
    return {step: ops[step].pool for step in started if "zoho" in ops[step].required_resource_keys}


def _a_synced_email(db_url: str) -> str:
    import sqlalchemy as sa

    from zoho_pipeline.source.tables import customers

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.select(customers.c.email).where(customers.c.zoho_sync_status == "synced").limit(1)
            ).scalar_one()
    finally:
        engine.dispose()


def test_writing_commands_run_in_the_zoho_api_pool_and_draw_from_the_shared_pace(world):
    instance, emulator, leases, db_url = world
    for commands in WRITES.values():
        for argv in commands:
            argv = [a.format(synced=_a_synced_email(db_url)) if a == "{synced}" else a for a in argv]
            runs_before, leases_before = {r.run_id for r in instance.get_runs()}, len(leases)
            requests_before = emulator.stats()["requests"]
            assert _run(argv) in (0, 1), argv  # 1: the demo's deliberately bad rows fail
            runs = [r for r in instance.get_runs() if r.run_id not in runs_before]
            assert runs, f"{argv}: no Dagster run"
            for run in runs:
                steps = _zoho_steps(instance, run)
                assert steps, f"{argv}: no step of run {run.run_id} called ZOHO"
                assert set(steps.values()) == {POOL}, f"{argv}: {steps}"
            assert emulator.stats()["requests"] > requests_before, f"{argv}: wrote nothing to ZOHO"
            assert leases[leases_before:], f"{argv}: its calls did not draw from the shared pace"


def test_read_only_commands_draw_from_the_shared_pace_and_the_others_call_nothing(world):
    instance, emulator, leases, _db_url = world
    assert _run(["sync"]) in (0, 1)  # something to compare, with ZOHO ids
    for commands in READS.values():
        for argv in commands:
            runs_before, leases_before = len(instance.get_runs()), len(leases)
            _run(argv)  # exit codes say what each found; the pace is what is tested here
            assert leases[leases_before:] == [TEST_CREDENTIALS["organization_id"]] * len(leases[leases_before:])
            assert leases[leases_before:], f"{argv}: called ZOHO outside the shared pace"
            assert len(instance.get_runs()) == runs_before, f"{argv}: a read-only command launched a run"
    for commands in NO_ZOHO.values():
        for argv in commands:
            requests_before = emulator.stats()["requests"]
            _run(argv)
            assert emulator.stats()["requests"] == requests_before, f"{argv}: called ZOHO"
