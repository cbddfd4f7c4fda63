"""The engine: find due rows, claim them, sync parents first, call ZOHO, record every outcome.

Entities run in dependency order. Within an entity, due rows are read in id order in batches; each batch's
missing parents are synced first (by their own rules), then its rows go to a bounded pool of workers, each
of which claims a row, maps it, skips it at zero calls when its payload is unchanged, looks it up when an
earlier create may have reached ZOHO, creates or updates, and records the outcome with one log row.
One row's attempt is attempt.py's; a dry run's counting, estimate.py's; what is left in scope after an
entity, leftovers.py's; the run's row in zoho_sync_runs and its heartbeat, runs.py's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial

from zoho_pipeline.source.database import utcnow
from zoho_pipeline.sync import claims, due_rows, estimate, leftovers, runs, transient
from zoho_pipeline.sync.attempt import attempt
from zoho_pipeline.sync.catalog import Catalog
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.base import EntitySpec, ParentInfo
from zoho_pipeline.sync.inspector import CallRecorder
from zoho_pipeline.sync.progress import Progress
from zoho_pipeline.sync.report import STOP_KILL_SWITCH, STOP_REQUESTED, Failure, RunReport
from zoho_pipeline.sync.row_context import Finished, parent_infos
from zoho_pipeline.sync.settings import ENTITY_ORDER, MODES, SyncSettings

log = logging.getLogger("zoho_pipeline.sync")

_COUNTERS = {"create": "created", "update": "updated", "adopt": "adopted", "skip": "unchanged"}


def run_sync(
    source_engine,
    client,
    settings: SyncSettings,
    *,
    entities: Sequence[str] = ENTITY_ORDER,
    mode: str = "due",
    months: tuple[date, date] | None = None,
    ids: Mapping[str, Sequence[str]] | None = None,
    dry_run: bool = False,
    diff: bool = False,
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunReport:
    """Sync the due rows of `entities` (parents pulled in as needed). Never raises for a row's failure.
    `diff` (dry run only): also put in the report, per row that would change, its fields old → new."""
    unknown = [e for e in entities if e not in SPECS]
    if unknown or mode not in MODES:
        raise ValueError(f"unknown entities {unknown} or mode {mode!r}; entities: {list(SPECS)}, modes: {MODES}")
    run_id = run_id or uuid.uuid4().hex
    report = RunReport(run_id=run_id, dry_run=dry_run)
    if not settings.enabled and not dry_run:
        report.stopped_reason = STOP_KILL_SWITCH
        report.stopped_detail = "ENABLE_ZOHO_SYNC is false: no row was read and no call made"
        log.warning("sync disabled run_id=%s reason=kill_switch", run_id)
        return report
    run = _Run(source_engine, client, settings, report, mode, months, ids, dry_run, should_stop)
    run.diff = dry_run and diff
    watching = not dry_run and settings.inspector_calls > 0 and hasattr(client, "observer")
    if watching:  # the client tells the inspector of every call; the engine files each under its row
        recorder = CallRecorder(
            run_id,
            settings.inspector_calls,
            all_bodies=settings.inspector_bodies == "all",
        )
        run.recorder, previous_observer = recorder, client.observer
        client.observer = run.recorder.observe
    started = time.monotonic()
    calls_before = getattr(getattr(client, "stats", None), "api_calls", 0)
    if not dry_run:
        transient.retrying(lambda: runs.start_run(source_engine, run_id), "start of the run")
        closed = transient.retrying(
            lambda: leftovers.close_dead_runs(source_engine, settings.run_stale_after_s), "closing dead runs"
        )
        if closed:
            log.warning("closed %d run(s) as failed: no heartbeat for over %.0f s", closed, settings.run_stale_after_s)
    beat = runs.Heartbeat(source_engine, run_id, settings.heartbeat_interval_s) if not dry_run else None
    status = "failed"
    try:
        for name in sorted(entities, key=ENTITY_ORDER.index):
            if run.stopped:
                break
            if SPECS[name].before_sync and not dry_run:
                run.before_sync(SPECS[name])
            elif SPECS[name].before_sync_estimate and dry_run:
                estimate.before_sync(run, SPECS[name])
            run.sync_entity(SPECS[name])
        status = "stopped" if report.stopped_reason else ("partial" if report.exit_code else "succeeded")
        if dry_run:
            report.setup_calls = run.catalog.setup_calls()
            report.diffs.sort(key=lambda d: (ENTITY_ORDER.index(d.entity), d.entity_id))
    finally:
        run.pool.shutdown(wait=True)
        if beat:
            beat.stop()
        if watching:
            client.observer = previous_observer
            try:
                recorder.finish(source_engine)
            except Exception:  # the inspector's ring is pruned again by the next run; the run's outcome stands
                log.exception("could not prune the API call inspector's table after run_id=%s", run_id)
        report.duration_s = round(time.monotonic() - started, 3)
        report.api_calls = getattr(getattr(client, "stats", None), "api_calls", 0) - calls_before
        if not dry_run:
            try:
                runs.finish_run(source_engine, run_id, status, report.as_dict())
            except Exception:  # the source may be the thing that failed; the run's own error is what matters
                log.exception("could not record the end of run_id=%s", run_id)
    log.info(
        "sync finished run_id=%s status=%s api_calls=%d duration_s=%.1f stopped=%s",
        run_id,
        status,
        report.api_calls,
        report.duration_s,
        report.stopped_reason,
    )
    return report


class _Run:
    def __init__(self, engine, client, settings, report, mode, months, ids, dry_run, should_stop):
        self.engine, self.client, self.settings, self.report = engine, client, settings, report
        self.mode, self.months, self.ids, self.dry_run = mode, months, ids, dry_run
        self.should_stop = should_stop or (lambda: False)
        self.diff = False
        self.recorder: CallRecorder | None = None
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.max_workers), thread_name_prefix="zoho-sync")
        org = getattr(getattr(client, "config", None), "organization_id", "default")
        self.catalog = Catalog(engine, client, org, offline=dry_run)
        self.lock = threading.Lock()  # what workers may write at once: the stop reason, a dry run's diffs_omitted
        # rows this run tried and could not sync: a parent among them waits for its own retry, not one per child
        # batch. Only failures are kept (a synced parent has its id), so memory grows with failures, not rows.
        self.unsynced: set[tuple[str, str]] = set()
        # dry run: rows whose calls the estimate holds (a parent no pass of its own selects is a prerequisite)
        self.estimated: set[tuple[str, str]] = set()

    # -- stopping ------------------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        if self.report.stopped_reason is None and self.should_stop():
            self.stop(STOP_REQUESTED, "the run was asked to stop")
        return self.report.stopped_reason is not None

    def stop(self, reason: str, detail: str) -> None:
        with self.lock:
            if self.report.stopped_reason is None:
                self.report.stopped_reason, self.report.stopped_detail = reason, detail
                log.warning("run stopping run_id=%s reason=%s detail=%s", self.report.run_id, reason, detail)

    def before_sync(self, spec: EntitySpec) -> None:
        """The entity's own work before its rows (invoices link the recurring ones, so that those ZOHO will never
        bill are pushed in the same pass); its calls count in the entity's figures."""
        rep = self.report.entity(spec.name)
        try:
            done = spec.before_sync(self.engine, self.client, self.months, self.settings).as_dict()
        except Exception as exc:  # the entity's rows still sync; what this step decides waits for the next run
            log.exception("before sync failed entity=%s", spec.name)
            done = {"error": f"{type(exc).__name__}: {exc}", "api_calls": 0}
        rep.before_sync = done
        rep.api_calls += done.get("api_calls", 0)
        log.info("before sync entity=%s %s", spec.name, {k: v for k, v in done.items() if not isinstance(v, list)})

    # -- one entity ----------------------------------------------------------------------------------------
    def sync_entity(self, spec: EntitySpec) -> None:
        rep = self.report.entity(spec.name)
        started = time.monotonic()
        limited_before = _rate_limited(self.client)
        ids = None if self.ids is None else self.ids.get(spec.name, [])
        if self.ids is not None and not ids:
            return
        rep.due += transient.read(
            self.engine,
            lambda conn: due_rows.count_due(
                conn,
                spec,
                mode=self.mode,
                run_id=self.report.run_id,
                stale_after_s=self.settings.run_stale_after_s,
                months=self.months,
                ids=ids,
            ),
            f"counting due {spec.name}",
        )
        progress = Progress(spec.name, rep.due, self.settings.progress_interval_s)
        self._sweep(spec, rep, self.mode, ids, progress)
        for _ in range(self.settings.in_run_retry_rounds):
            if self.stopped or self.dry_run or not self._wait_for_retries(spec, ids):
                break
            self._sweep(spec, rep, "due", ids, progress)
        rep.rate_limited += _rate_limited(self.client) - limited_before
        rep.duration_s = round(rep.duration_s + time.monotonic() - started, 3)
        if not self.dry_run:
            leftovers.left_in_scope(
                self.engine,
                spec,
                rep,
                run_id=self.report.run_id,
                silent_after_s=self.settings.silent_after_s,
                months=self.months,
                ids=ids,
            )
        progress.done(rep)

    def _sweep(self, spec, rep, mode, ids, progress, *, prerequisite=False) -> None:
        after = None
        while not self.stopped:
            rows = transient.read(
                self.engine,
                lambda conn, after=after: due_rows.find_due(
                    conn,
                    spec,
                    mode=mode,
                    now=utcnow(),
                    run_id=self.report.run_id,
                    stale_after_s=self.settings.run_stale_after_s,
                    months=None if prerequisite else self.months,
                    ids=ids,
                    eligible_only=not prerequisite,
                    after_id=after,
                    limit=self.settings.batch_size,
                ),
                f"finding due {spec.name}",
            )
            if not rows:
                return
            after = rows[-1]["id"]
            parents = self.prepare_parents(spec, rows)
            if self.dry_run:
                accepted = estimate.accepted_payloads(self.engine, spec, rows) if self.diff else {}
                for future in [
                    self.pool.submit(estimate.classify, self, spec, row, parents, rep, accepted) for row in rows
                ]:
                    future.result()
                    progress.tick(rep)
            else:
                self._run_batch(spec, rows, parents, rep, progress)

    def _run_batch(self, spec, rows, parents, rep, progress) -> None:
        """Claim a chunk, hand its rows to the workers, claim the next while about one chunk is in flight, and
        record outcomes a chunk at a time, or every `record_every_s` when calls are slow: two transactions per
        chunk, not per row, and only this thread writes."""
        chunk, every = max(1, self.settings.claim_chunk), self.settings.record_every_s
        done = Finished()
        in_flight = 0
        finished: list[claims.Outcome] = []
        last_record = time.monotonic()

        def collect(at_least: int) -> None:
            nonlocal in_flight, finished, last_record
            outcomes = done.take(at_least, timeout=every)
            in_flight -= len(outcomes)
            finished.extend(outcomes)
            if len(finished) >= chunk or (finished and time.monotonic() - last_record >= every):
                self._record(spec, finished, rep, progress)
                finished, last_record = [], time.monotonic()

        try:
            for start in range(0, len(rows), chunk):
                if self.stopped:
                    break
                wanted = rows[start : start + chunk]
                at = utcnow()  # the same claim time on every try: a committed claim is recognised as ours
                claimed = transient.retrying(
                    lambda wanted=wanted, at=at: claims.claim_rows(
                        self.engine, spec, wanted, self.report.run_id, now=at
                    ),
                    f"claiming {spec.name}",
                )
                rep.skipped += len(wanted) - len(claimed)  # another live run has them
                for row in claimed:
                    self.pool.submit(self._process, spec, row, parents).add_done_callback(done.add)
                in_flight += len(claimed)
                while in_flight > chunk:
                    collect(in_flight - chunk)
        finally:
            while in_flight:
                collect(in_flight)
            self._record(spec, finished, rep, progress)

    def _record(self, spec, outcomes: list[claims.Outcome], rep, progress) -> None:
        transient.retrying(
            lambda: claims.record(self.engine, spec, outcomes, run_id=self.report.run_id, inspector=self.recorder),
            f"recording {len(outcomes)} {spec.name} outcome(s)",
        )
        for o in outcomes:
            rep.api_calls += o.api_calls
            key = (spec.name, str(o.row["id"]))
            if o.outcome == claims.RELEASED:
                rep.skipped += 1
            elif o.synced:
                counter = _COUNTERS[o.action]
                setattr(rep, counter, getattr(rep, counter) + 1)
            elif o.outcome == claims.RETRYING:
                rep.retried += 1
                rep.waiting += o.error_code == claims.WAITING_CODE  # nothing was sent: it waits for a day or a link
                self.unsynced.add(key)
            else:
                rep.failed += 1
                rep.dead_lettered += o.outcome == claims.DEAD_LETTERED
                if key in self.unsynced:  # tried before in this run: its latest reason stands
                    rep.failures[:] = [f for f in rep.failures if f.entity_id != key[1]]
                self.unsynced.add(key)
                rep.failures.append(
                    Failure(
                        spec.name,
                        key[1],
                        spec.label(o.row),
                        o.error_code,
                        o.error,
                        dead_lettered=o.outcome == claims.DEAD_LETTERED,
                        call_id=o.calls.last_id if o.calls else None,  # the id of its last call
                    )
                )
            progress.tick(rep)

    def _wait_for_retries(self, spec, ids) -> bool:
        """Sleep until the earliest retry of this entity when it falls inside the in-run retry window."""
        at = transient.read(
            self.engine,
            lambda conn: due_rows.next_retry_at(conn, spec, months=self.months, ids=ids),
            f"the next {spec.name} retry",
        )
        if at is None:
            return False
        wait = (at - utcnow()).total_seconds()
        if wait > self.settings.in_run_retry_window_s:
            return False
        deadline = time.monotonic() + max(0.0, wait)
        while time.monotonic() < deadline:
            if self.stopped:
                return False
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return True

    # -- parents -------------------------------------------------------------------------------------------
    def prepare_parents(self, spec, rows) -> dict[tuple[str, str], ParentInfo]:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            for entity, parent_id in spec.parents(row):
                wanted.setdefault(entity, set()).add(parent_id)
        infos: dict[tuple[str, str], ParentInfo] = {}
        for entity in sorted(wanted, key=ENTITY_ORDER.index):
            parent_spec = SPECS[entity]
            found = transient.retrying(
                partial(parent_infos, self.engine, parent_spec, wanted[entity]), "reading parents"
            )
            missing = [pid for pid, info in found.items() if not info.zoho_id and (entity, pid) not in self.unsynced]
            if missing and self.dry_run:
                found.update(estimate.dry_parents(self, parent_spec, missing))
            elif missing and not self.stopped:
                prep = self.report.entity(entity)
                before = prep.synced
                self._sweep(parent_spec, prep, "due", missing, Progress(entity, 0, 1e9), prerequisite=True)
                prep.prerequisites += prep.synced - before
                found.update(
                    transient.retrying(partial(parent_infos, self.engine, parent_spec, missing), "reading parents")
                )
            infos.update({(entity, pid): info for pid, info in found.items()})
        return infos

    # -- one row (in a worker: build, call; the sweep's thread records) ------------------------------------
    def _process(self, spec: EntitySpec, row: dict, parents) -> claims.Outcome:
        recorder = self.recorder
        if recorder is None:
            return attempt(self, spec, row, parents)
        calls = recorder.start(spec.name, row["id"])  # not a context manager: this runs once per row
        try:
            outcome = attempt(self, spec, row, parents)
        finally:
            recorder.stop()
        outcome.calls = calls
        return outcome


def _rate_limited(client) -> int:
    return getattr(getattr(client, "stats", None), "rate_limited", 0)
