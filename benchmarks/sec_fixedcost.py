"""9. Fixed cost (issue 12): what the pipeline costs when there is nothing to do.

A seeded demo on SQLite, synced once by `zoho-pipeline sync` against the emulator (its own process), with a fresh
DAGSTER_HOME (embedded SQLite storage). Then:
  no-op sync  wall time of `zoho-pipeline sync` as a subprocess with nothing due: interpreter start, importing the
              definitions, the in-process Dagster run (assets and checks), the engine finding no work. Best of
              --fixedcost-rounds runs. Target < 5 s on a quiet 2-core machine. The note gives each run's CPU
              (user+sys), which a shared machine's load does not inflate as much as the wall time.
  sensor tick wall time of one evaluation of zoho_source_changes_sensor with nothing to do (the cursor already
              holds the source's watermarks), in this process: what the daemon pays every minute with the code
              location loaded. Best of --fixedcost-ticks ticks. Target < 1 s.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import EmulatorProc, metric, sqlite_database

from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline_tests.support.emulator import pipeline_env

SECTION = "9 fixed cost"
NOOP_SYNC_TARGET_S = 5.0
SENSOR_TICK_TARGET_S = 1.0
# the demo's deliberately bad rows stay failed, so a sync of it exits 1 (rows failed), never 2 (the run failed)
OK_EXITS = (0, 1)
CLI = Path(sys.executable).parent / "zoho-pipeline"


def _cli_env(home: str, source_url: str, emulator_url: str) -> dict:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ZOHO_", "ALERT_"))},
        **pipeline_env(source_url, emulator_url, DAGSTER_HOME=home),
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sync(env: dict, cwd: str) -> tuple[float, float, int, str]:
    """(wall, CPU user+sys of the process, exit code, output's tail). The CPU figure holds on a shared machine,
    where the wall time mostly measures the other load."""
    t0, cpu0 = time.perf_counter(), _children_cpu_s()
    proc = subprocess.run([str(CLI), "sync"], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    return wall, cpu, proc.returncode, (proc.stdout + proc.stderr)[-1500:]


def _sensor_ticks(home: str, source_url: str, ticks: int) -> tuple[list[float], str]:
    import dagster as dg

    from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource
    from zoho_pipeline.defs.sensors import zoho_source_changes_sensor

    resources = {"source": SourceDatabaseResource(url=source_url), "engine": SyncEngineResource()}
    instance = dg.DagsterInstance.from_config(home)
    try:
        first = zoho_source_changes_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        cursor = getattr(first, "cursor", None)
        times, reason = [], ""
        for _ in range(ticks):
            context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
            t0 = time.perf_counter()
            result = zoho_source_changes_sensor(context)
            times.append(time.perf_counter() - t0)
            requests = getattr(result, "run_requests", None) or []
            if requests:
                raise AssertionError(f"the sensor asked for {len(requests)} run(s) with nothing to do")
            skip = getattr(result, "skip_message", None) or getattr(result, "skip_reason", None)
            reason = str(getattr(skip, "skip_message", skip) or "")
        return times, reason
    finally:
        instance.dispose()


def run(args) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    raw: dict = dict(customers=args.fixedcost_customers, rounds=args.fixedcost_rounds, ticks=args.fixedcost_ticks)
    emulator = EmulatorProc(rate_limit_per_minute=1_000_000, daily_limit=100_000_000, seed=9)
    try:
        with sqlite_database() as url, tempfile.TemporaryDirectory(prefix="zp-fixedcost-") as work:
            create_demo(url, customers=args.fixedcost_customers, seed=9)
            home = os.path.join(work, "dagster_home")
            os.makedirs(home)
            Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            env = _cli_env(home, url, emulator.url)
            first_s, _, code, tail = _sync(env, work)
            raw["first_sync_s"], raw["first_sync_exit"] = round(first_s, 2), code
            if code not in OK_EXITS:
                raise RuntimeError(f"the first sync exited {code}: {tail}")
            calls_before = emulator.stats()["requests"]
            walls, cpus, exits = [], [], []
            for _ in range(args.fixedcost_rounds):
                wall, cpu, code, tail = _sync(env, work)
                if code not in OK_EXITS:
                    raise RuntimeError(f"the no-op sync exited {code}: {tail}")
                walls.append(wall)
                cpus.append(cpu)
                exits.append(code)
            raw["noop_sync_exits"] = exits
            raw["noop_sync_s"] = [round(w, 3) for w in walls]
            raw["noop_sync_cpu_s"] = [round(c, 3) for c in cpus]
            raw["noop_sync_api_calls"] = emulator.stats()["requests"] - calls_before
            ticks, reason = _sensor_ticks(home, url, args.fixedcost_ticks)
            raw["sensor_tick_s"] = [round(t, 4) for t in ticks]
            raw["sensor_skip_reason"] = reason
    finally:
        emulator.stop()
    best = min(walls)
    rows.append(
        metric(
            SECTION,
            "no-op `zoho-pipeline sync` wall",
            round(best, 2),
            "s",
            NOOP_SYNC_TARGET_S,
            "<=",
            note=f"best of {len(walls)}: {', '.join(f'{w:.2f}' for w in walls)} s "
            f"(CPU user+sys {', '.join(f'{c:.2f}' for c in cpus)} s); "
            f"{raw['noop_sync_api_calls']} API calls, exit {exits[-1]}; first (real) sync {raw['first_sync_s']} s; "
            f"{args.fixedcost_customers} demo customers, SQLite",
        )
    )
    rows.append(
        metric(
            SECTION,
            "sensor tick, nothing to do",
            round(min(ticks), 3),
            "s",
            SENSOR_TICK_TARGET_S,
            "<=",
            note=f"best of {len(ticks)}, worst {max(ticks):.3f} s; in process, definitions loaded; skip: {reason[:60]}",
        )
    )
    return rows, raw
