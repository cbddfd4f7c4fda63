"""The engine: find due rows, claim them, sync parents first, call ZOHO, record every outcome.

Entities run in dependency order. Within an entity, due rows are read in id order in batches; each batch's
missing parents are synced first (by their own rules), then its rows go to a bounded pool of workers, each
of which claims a row, maps it, skips it at zero calls when its payload is unchanged, looks it up when an
earlier create may have reached ZOHO, creates or updates, and records the outcome with one log row.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial

from zoho_pipeline.source.database import aware, utcnow
from zoho_pipeline.sync import claims, leftovers, payloads, transient
from zoho_pipeline.sync.catalog import Catalog
from zoho_pipeline.sync.diff import row_diff
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.base import (
    EntitySpec,
    InvalidRow,
    ParentInfo,
    ParentNotReady,
    Waiting,
    canonical_json,
    sendable,
    text_hash,
)
from zoho_pipeline.sync.inspector import CallRecorder
from zoho_pipeline.sync.progress import Progress
from zoho_pipeline.sync.report import (
    STOP_AUTH,
    STOP_BUDGET,
    STOP_KILL_SWITCH,
    STOP_RATE_LIMITED,
    STOP_REQUESTED,
    STOP_UNREACHABLE,
    Failure,
    RunReport,
)
from zoho_pipeline.sync.row_client import RowClient
from zoho_pipeline.sync.row_context import Finished, RowContext
from zoho_pipeline.sync.settings import ENTITY_ORDER, MODES, SyncSettings
from zoho_pipeline.zoho.errors import AUTH, BUDGET_EXHAUSTED, PERMANENT, RATE_LIMITED, ZohoError

log = logging.getLogger("zoho_pipeline.sync")

_COUNTERS = {"create": "created", "update": "updated", "adopt": "adopted", "skip": "unchanged"}
# a dry run's diff keeps at most this many rows in memory (a first sync of 1 M customers would be all creates,
# each with its whole payload); beyond, rows are counted, and would_create / would_update stay exact
MAX_DIFF_ROWS = 20_000
STOPPING_ERRORS = {RATE_LIMITED: STOP_RATE_LIMITED, BUDGET_EXHAUSTED: STOP_BUDGET, AUTH: STOP_AUTH}


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
            dialect=source_engine.dialect.name,
            all_bodies=settings.inspector_bodies == "all",
        )
        run.recorder, previous_observer = recorder, client.observer
        client.observer = run.recorder.observe
    started = time.monotonic()
    calls_before = getattr(getattr(client, "stats", None), "api_calls", 0)
    if not dry_run:
        transient.retrying(lambda: claims.start_run(source_engine, run_id), "start of the run")
        closed = transient.retrying(
            lambda: leftovers.close_dead_runs(source_engine, settings.run_stale_after_s), "closing dead runs"
        )
        if closed:
            log.warning("closed %d run(s) as failed: no heartbeat for over %.0f s", closed, settings.run_stale_after_s)
    beat = _Heartbeat(source_engine, run_id, settings.heartbeat_interval_s) if not dry_run else None
    status = "failed"
    try:
        for name in sorted(entities, key=ENTITY_ORDER.index):
            if run.stopped:
                break
            if SPECS[name].before_sync and not dry_run:
                run.before_sync(SPECS[name])
            elif SPECS[name].before_sync_estimate and dry_run:
                run.estimate_before_sync(SPECS[name])
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
        report.duration_s = round(time.monotonic() - started, 3)
        report.api_calls = getattr(getattr(client, "stats", None), "api_calls", 0) - calls_before
        if not dry_run:
            try:
                claims.finish_run(source_engine, run_id, status, report.as_dict())
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


class _Heartbeat:
    """Tells other runs that this run's `syncing` claims are alive."""

    def __init__(self, engine, run_id: str, interval_s: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(engine, run_id, interval_s), daemon=True, name=f"heartbeat-{run_id[:8]}"
        )
        self._thread.start()

    def _beat(self, engine, run_id, interval_s):
        while not self._stop.wait(interval_s):
            try:
                claims.heartbeat(engine, run_id)
            except Exception:  # a missed beat only makes our claims look stale sooner
                log.exception("heartbeat failed run_id=%s", run_id)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


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
        self._stop_lock = threading.Lock()
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
        with self._stop_lock:
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

    def estimate_before_sync(self, spec: EntitySpec) -> None:
        """Dry run: what that work would do and cost, from the source alone (no call, no write)."""
        rep = self.report.entity(spec.name)
        # per entity this run has dry-run so far, the rows it would create (Dagster runs an asset's entity alone:
        # then the others are not known)
        created = {e: {i for name, i in self.estimated if name == e} for e in self.report.entities}
        done = spec.before_sync_estimate(self.engine, self.months, self.settings, created)
        rep.before_sync = done.as_dict()
        rep.estimated_calls += rep.before_sync.get("estimated_calls", 0)

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
            lambda conn: claims.count_due(
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
            self._leftovers(spec, rep, ids)
        progress.done(rep)

    def _leftovers(self, spec, rep, ids) -> None:
        """What is left in scope: due rows (incl. those under a run that stopped beating: in doubt), rows still
        retrying later and the earliest next attempt. They decide the exit code, so it is never quieter than
        the truth."""
        silent, now = self.settings.silent_after_s, utcnow()

        def count(conn):
            backlog = claims.count_due(conn, spec, run_id=None, stale_after_s=silent, months=self.months, ids=ids)
            doubt = leftovers.in_doubt(
                conn, spec, now=now, silent_after_s=silent, run_id=self.report.run_id, months=self.months, ids=ids
            )
            return backlog, doubt, leftovers.retrying_later(conn, spec, now=now, months=self.months, ids=ids)

        rep.backlog, rep.in_doubt, (rep.still_retrying, first) = transient.read(
            self.engine, count, f"counting what is left of {spec.name}"
        )
        rep.next_attempt_at = first.isoformat(timespec="seconds") if first else None

    def _sweep(self, spec, rep, mode, ids, progress, *, prerequisite=False) -> None:
        after = None
        while not self.stopped:
            rows = transient.read(
                self.engine,
                lambda conn, after=after: claims.find_due(
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
            parents = self._prepare_parents(spec, rows)
            if self.dry_run:
                accepted = self._accepted_payloads(spec, rows) if self.diff else {}
                for future in [self.pool.submit(self._classify, spec, row, parents, rep, accepted) for row in rows]:
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
                        call_id=o.calls[-1][0] if o.calls else None,  # the id of its last call
                    )
                )
            progress.tick(rep)

    def _wait_for_retries(self, spec, ids) -> bool:
        """Sleep until the earliest retry of this entity when it falls inside the in-run retry window."""
        at = transient.read(
            self.engine,
            lambda conn: claims.next_retry_at(conn, spec, months=self.months, ids=ids),
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
    def _prepare_parents(self, spec, rows) -> dict[tuple[str, str], ParentInfo]:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            for entity, parent_id in spec.parents(row):
                wanted.setdefault(entity, set()).add(parent_id)
        infos: dict[tuple[str, str], ParentInfo] = {}
        for entity in sorted(wanted, key=ENTITY_ORDER.index):
            parent_spec = SPECS[entity]
            found = transient.retrying(partial(self._parent_infos, parent_spec, wanted[entity]), "reading parents")
            missing = [pid for pid, info in found.items() if not info.zoho_id and (entity, pid) not in self.unsynced]
            if missing and self.dry_run:
                found.update(self._dry_parents(parent_spec, missing))
            elif missing and not self.stopped:
                prep = self.report.entity(entity)
                before = prep.synced
                self._sweep(parent_spec, prep, "due", missing, Progress(entity, 0, 1e9), prerequisite=True)
                prep.prerequisites += prep.synced - before
                found.update(transient.retrying(partial(self._parent_infos, parent_spec, missing), "reading parents"))
            infos.update({(entity, pid): info for pid, info in found.items()})
        return infos

    def _dry_parents(self, spec, ids) -> dict[str, ParentInfo]:
        """Dry run: a missing parent that would itself be refused makes its children count as invalid too."""
        with self.engine.connect() as conn:
            parent_rows = [dict(r) for r in conn.execute(spec.select().where(spec.table.c.id.in_(ids))).mappings()]
        grandparents = self._prepare_parents(spec, parent_rows)
        verdicts = {}
        for row in parent_rows:
            error, status = None, "pending"
            try:
                payload = spec.build(
                    row, RowContext(self.catalog, grandparents, spec, dry_run=True, settings=self.settings)
                )
            except (InvalidRow, ParentNotReady) as exc:
                error, status = f"would fail: {exc}", "failed"
            else:
                self._estimate_prerequisite(spec, row, payload)
            verdicts[str(row["id"])] = ParentInfo(spec.name, str(row["id"]), spec.label(row), None, status, error)
        return verdicts

    def _estimate_prerequisite(self, spec, row, payload) -> None:
        """A parent the real run creates first because a child needs it (a retired plan a subscription is on:
        created, then marked inactive) costs its calls too, once, unless its own pass counted it."""
        key = (spec.name, str(row["id"]))
        if key in self.estimated:
            return
        self.estimated.add(key)
        rep = self.report.entity(spec.name)
        rep.prerequisites += 1
        rep.estimated_calls += spec.calls(payload, True)

    def _parent_infos(self, spec, ids) -> dict[str, ParentInfo]:
        ids = list(ids)
        c = spec.table.c
        found = {pid: ParentInfo(spec.name, pid, pid, None, None, "does not exist") for pid in ids}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = spec.select().where(c.id.in_(ids[start : start + 500]))
                for row in conn.execute(query).mappings():
                    row = dict(row)
                    found[str(row["id"])] = ParentInfo(
                        spec.name,
                        str(row["id"]),
                        spec.label(row),
                        row[spec.zoho_id_column],
                        row["zoho_sync_status"],
                        row["zoho_last_sync_error"],
                        row["zoho_next_attempt_at"],
                    )
        return found

    # -- one row (in a worker: build, call; the sweep's thread records) ------------------------------------
    def _process(self, spec: EntitySpec, row: dict, parents) -> claims.Outcome:
        if self.recorder is None:
            return self._attempt(spec, row, parents)
        with self.recorder.row(spec.name, row["id"]) as calls:
            outcome = self._attempt(spec, row, parents)
        outcome.calls = calls
        return outcome

    def _attempt(self, spec: EntitySpec, row: dict, parents) -> claims.Outcome:
        if self.stopped:
            return claims.released(row)
        started = time.monotonic()
        client = RowClient(self.client)
        zoho_id = row[spec.zoho_id_column]
        was_in_doubt = bool(row["zoho_create_in_doubt"])
        ctx = RowContext(self.catalog, parents, spec, settings=self.settings, in_doubt=was_in_doubt)
        ctx.previous_payload = lambda: self._previous_payload(spec, row)
        action = "update" if zoho_id else "create"

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        def failed(code, message, retry_at, count_attempt, in_doubt, new_zoho_id) -> claims.Outcome:
            outcome = claims.failed(
                row,
                action=action,
                error_code=code,
                error=message,
                retry_at=retry_at,
                count_attempt=count_attempt,
                max_attempts=self.settings.max_attempts,
                in_doubt=in_doubt,
                zoho_id=new_zoho_id,
                api_calls=client.calls,
                duration_ms=elapsed_ms(),
            )
            log.warning(
                "row %s entity=%s id=%s label=%r code=%s error=%s",
                outcome.outcome,
                spec.name,
                row["id"],
                spec.label(row),
                code,
                message,
            )
            return outcome

        try:
            sendable(row)
            payload = spec.build(row, ctx)
            canonical = canonical_json(payload)  # hashed, and stored as the accepted payload once sent
            digest = text_hash(canonical)
            if zoho_id and digest == row["zoho_payload_hash"] and self.mode != "all":
                return claims.succeeded(row, zoho_id=zoho_id, payload_hash=digest, action="skip")
            if zoho_id:
                # an update may replace the entity (a cancelled subscription comes back as a new one): its new id
                zoho_id = spec.update(client, zoho_id, payload, row, ctx) or zoho_id
            else:
                found = spec.lookup(client, payload, row, ctx) if was_in_doubt else None
                if found:
                    log.info(
                        "adopted entity=%s id=%s label=%r zoho_id=%s (an earlier create reached ZOHO)",
                        spec.name,
                        row["id"],
                        spec.label(row),
                        found,
                    )
                    zoho_id, action = found, "adopt"
                    ctx.adopted = True  # what the lost create carried may be older than the row: send it now
                    spec.update(client, zoho_id, payload, row, ctx)
                else:
                    zoho_id = spec.create(client, payload, row, ctx)
            return claims.succeeded(
                row,
                zoho_id=zoho_id,
                payload_hash=digest,
                action=action,
                api_calls=client.calls,
                duration_ms=elapsed_ms(),
                payload=canonical,
            )
        except InvalidRow as exc:
            return failed("invalid", str(exc), None, False, was_in_doubt, ctx.new_zoho_id)
        except Waiting as exc:  # due on a later day (a cancellation dated in the future): no attempt is charged
            log.info("row waits entity=%s id=%s until=%s: %s", spec.name, row["id"], exc.until, exc)
            return claims.waiting(
                row,
                action=action,
                reason=str(exc),
                until=exc.until,
                in_doubt=was_in_doubt,
                api_calls=client.calls,
                duration_ms=elapsed_ms(),
            )
        except ParentNotReady as exc:  # try again just after the parent's own next attempt
            retry_at = (
                aware(exc.retry_at) + timedelta(seconds=1)
                if exc.retry_at
                else (utcnow() + timedelta(seconds=self.settings.backoff_max_s))
            )
            return failed("parent_failed", str(exc), retry_at, False, was_in_doubt, None)
        except ZohoError as exc:
            if exc.kind in STOPPING_ERRORS or exc.unreachable:  # the organization is blocked: stop, charge no row
                self.stop(STOP_UNREACHABLE if exc.unreachable else STOPPING_ERRORS[exc.kind], str(exc))
                if ctx.new_zoho_id:  # a step of this attempt created the entity: keep its id, finish next time
                    retry_at = utcnow() + timedelta(seconds=self._backoff(1))
                    return failed(exc.error_code, str(exc), retry_at, True, True, ctx.new_zoho_id)
                # a lifecycle's earlier step may have acted: the next attempt reads ZOHO's state first
                return dataclasses.replace(claims.released(row), api_calls=client.calls, in_doubt=client.calls > 1)
            in_doubt = was_in_doubt or exc.may_have_acted  # a lifecycle action in doubt is read back first
            retry_at = (
                None
                if exc.kind == PERMANENT
                else (utcnow() + timedelta(seconds=self._backoff((row["zoho_attempts"] or 0) + 1)))
            )
            return failed(exc.error_code, str(exc), retry_at, True, in_doubt, ctx.new_zoho_id)
        except LookupError as exc:  # the catalog could not find what every row needs (e.g. no VAT tax)
            return failed("setup", str(exc), None, False, was_in_doubt, None)
        except Exception as exc:  # a bug or odd data must fail this row alone, with its reason, and retry
            log.exception("unexpected error entity=%s id=%s", spec.name, row["id"])
            retry_at = utcnow() + timedelta(seconds=self._backoff((row["zoho_attempts"] or 0) + 1))
            return failed(
                "internal",
                f"{type(exc).__name__}: {exc}",
                retry_at,
                True,
                True,  # whatever was sent may have acted
                ctx.new_zoho_id,
            )

    def _previous_payload(self, spec, row) -> dict | None:
        """The payload ZOHO last accepted for the row (None for rows synced before the payload store): what a
        lifecycle compares with to send only what changed. One read by key, only when an entity asks."""
        with self.engine.connect() as conn:
            return payloads.load(conn, spec.name, [row["id"]]).get(str(row["id"]))

    def _backoff(self, attempts: int) -> float:
        delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** max(0, attempts - 1))
        return delay * random.uniform(0.75, 1.25)

    # -- dry run -------------------------------------------------------------------------------------------
    def _accepted_payloads(self, spec, rows) -> dict[str, dict]:
        """The last accepted payloads of the rows in ZOHO, one read by key per batch (only a diff pays it)."""
        with self.engine.connect() as conn:
            return payloads.load(conn, spec.name, [r["id"] for r in rows if r[spec.zoho_id_column]])

    def _classify(self, spec, row, parents, rep, accepted) -> None:
        ctx = RowContext(self.catalog, parents, spec, dry_run=True, settings=self.settings)
        zoho_id = row[spec.zoho_id_column]
        try:
            sendable(row)
            payload = spec.build(row, ctx)
            digest = text_hash(canonical_json(payload))
        except Waiting:  # a dry run does not link: the real run decides whether it waits
            rep.waiting += 1
            return
        except (InvalidRow, ParentNotReady) as exc:
            rep.invalid += 1
            rep.failures.append(Failure(spec.name, str(row["id"]), spec.label(row), "invalid", str(exc)))
            return
        lookup = 1 if row["zoho_create_in_doubt"] and not zoho_id else 0
        if not zoho_id:
            rep.would_create += 1
            rep.estimated_calls += spec.calls(payload, True) + lookup
            self.estimated.add((spec.name, str(row["id"])))
        elif digest != row["zoho_payload_hash"] or self.mode == "all":
            rep.would_update += 1
            rep.estimated_calls += spec.calls(payload, False)
        else:
            rep.unchanged += 1
            return
        if self.diff:
            found = row_diff(
                spec.name,
                row["id"],
                spec.label(row),
                payload,
                in_zoho=bool(zoho_id),
                old=accepted.get(str(row["id"])),
            )
            if found and len(self.report.diffs) < MAX_DIFF_ROWS:
                self.report.diffs.append(found)  # list.append is atomic; sorted when the run ends
            elif found:
                with self._stop_lock:
                    self.report.diffs_omitted += 1


def _rate_limited(client) -> int:
    return getattr(getattr(client, "stats", None), "rate_limited", 0)
