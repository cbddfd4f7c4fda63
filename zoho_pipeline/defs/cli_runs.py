"""Runs the CLI executes in its own process (`zoho-pipeline sync`, `retry`): no run worker exists for Dagster's
run monitoring to watch, so a CLI killed with SIGKILL would leave its run STARTED for good, and every later
`zoho_sync` run would queue behind it (tag limit 1). Each such run carries its host and pid and a heartbeat tag
refreshed while it runs; the next run, schedule or sensor tick marks failed the ones whose process is gone (same
host: the pid is gone or belongs to another process now; another host: the heartbeat is older than the engine's
staleness limit), so the queue moves on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime

import dagster as dg

log = logging.getLogger("zoho_pipeline.defs.cli_runs")

TAG = "zoho_in_process"  # "1" on every run a CLI process executes itself
TAG_HOST, TAG_PID, TAG_STARTED = "zoho_cli_host", "zoho_cli_pid", "zoho_cli_process_start"
TAG_HEARTBEAT = "zoho_cli_heartbeat"
IN_PROGRESS = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _now() -> datetime:
    return datetime.now(UTC)


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for ours."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    now_started = _process_start(pid)
    return started is None or now_started is None or now_started == started


def run_tags() -> dict[str, str]:
    """The tags of a run this process is about to execute."""
    pid = os.getpid()
    tags = {TAG: "1", TAG_HOST: socket.gethostname(), TAG_PID: str(pid), TAG_HEARTBEAT: _now().isoformat()}
    started = _process_start(pid)
    if started:
        tags[TAG_STARTED] = started
    return tags


class Heartbeat:
    """While the block runs, refresh the run's heartbeat tag every `interval_s` (from the moment the run exists)."""

    def __init__(self, instance, run_id: str, interval_s: float):
        self.instance, self.run_id, self.interval_s = instance, run_id, max(0.5, interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="zoho-cli-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.instance.get_run_by_id(self.run_id) is not None:
                    self.instance.add_run_tags(self.run_id, {TAG_HEARTBEAT: _now().isoformat()})
            except Exception:  # noqa: BLE001 - a missed beat is retried; the run itself must not fail for it
                log.warning("heartbeat of run %s not recorded", self.run_id, exc_info=True)


def _why_dead(run, stale_after_s: float, host: str) -> str | None:
    tags = run.tags
    pid = int(tags.get(TAG_PID) or 0)
    if tags.get(TAG_HOST) == host and pid:
        if _alive(pid, tags.get(TAG_STARTED)):
            return None
        return f"its CLI process (pid {pid} on {host}) is gone"
    try:
        beat = datetime.fromisoformat(tags[TAG_HEARTBEAT])
    except (KeyError, ValueError):
        return None  # nothing to judge by: leave it to an operator
    age = (_now() - beat).total_seconds()
    if age <= stale_after_s:
        return None
    return f"its CLI process on {tags.get(TAG_HOST) or '?'} last beat {age:.0f} s ago (limit {stale_after_s:.0f} s)"


def fail_dead_runs(instance, stale_after_s: float, logger=None) -> list[str]:
    """Mark failed every in-progress CLI run whose process is gone; returns their run ids."""
    logger = logger or log
    failed = []
    host = socket.gethostname()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={TAG: "1"})):
        reason = _why_dead(run, stale_after_s, host)
        if reason is None:
            continue
        message = f"run {run.run_id} marked failed: {reason}, so it no longer holds the zoho_sync queue"
        instance.report_run_failed(run, message=message)
        logger.warning(message)
        failed.append(run.run_id)
    return failed


def fail_dead_runs_of(context, stale_after_s: float) -> list[str]:
    """The same from a sensor or schedule tick (a tick built without an instance, in a unit test, has none)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return []
    return fail_dead_runs(instance, stale_after_s, context.log)
