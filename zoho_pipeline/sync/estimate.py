"""A dry run: every due row mapped and compared as the real run would, nothing claimed and nothing sent. Each row
counts as would-create, would-update, unchanged, waiting or invalid, with the calls it would cost (a parent the
real run would create first counts as a prerequisite, once); with `diff`, each row that would change lists its
fields old → new against the payload ZOHO last accepted.
"""

from __future__ import annotations

from zoho_pipeline.sync import payloads
from zoho_pipeline.sync.diff import row_diff
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
from zoho_pipeline.sync.report import Failure
from zoho_pipeline.sync.row_context import RowContext

# a dry run's diff keeps at most this many rows in memory (a first sync of 1 M customers would be all creates,
# each with its whole payload); beyond, rows are counted, and would_create / would_update stay exact
MAX_DIFF_ROWS = 20_000


def before_sync(run, spec: EntitySpec) -> None:
    """The entity's own work before its rows (the invoices link the recurring ones), as a dry run: what it would
    do and cost, from the source alone (no call, no write)."""
    rep = run.report.entity(spec.name)
    # per entity this run has dry-run so far, the rows it would create (Dagster runs an asset's entity alone:
    # then the others are not known)
    created = {e: {i for name, i in run.estimated if name == e} for e in run.report.entities}
    done = spec.before_sync_estimate(run.engine, run.months, run.settings, created)
    rep.before_sync = done.as_dict()
    rep.estimated_calls += rep.before_sync.get("estimated_calls", 0)


def classify(run, spec, row, parents, rep, accepted) -> None:
    """Count what the real run would do with `row` (in a worker) into `rep`; with the run's `diff`, also its fields
    old → new. `accepted`: the payloads ZOHO last accepted, by row id."""
    ctx = RowContext(run.catalog, parents, spec, dry_run=True, settings=run.settings)
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
        run.estimated.add((spec.name, str(row["id"])))
    elif not spec.holds(row, digest, run.mode):
        rep.would_update += 1
        rep.estimated_calls += spec.calls(payload, False)
    else:
        rep.unchanged += 1
        return
    if run.diff:
        found = row_diff(
            spec.name,
            row["id"],
            spec.label(row),
            payload,
            in_zoho=bool(zoho_id),
            old=accepted.get(str(row["id"])),
        )
        if found and len(run.report.diffs) < MAX_DIFF_ROWS:
            run.report.diffs.append(found)  # list.append is atomic; sorted when the run ends
        elif found:
            with run.lock:
                run.report.diffs_omitted += 1


def dry_parents(run, spec, ids) -> dict[str, ParentInfo]:
    """Dry run: a missing parent that would itself be refused makes its children count as invalid too."""
    with run.engine.connect() as conn:
        parent_rows = [dict(r) for r in conn.execute(spec.select().where(spec.table.c.id.in_(ids))).mappings()]
    grandparents = run.prepare_parents(spec, parent_rows)
    verdicts = {}
    for row in parent_rows:
        error, status = None, "pending"
        try:
            payload = spec.build(row, RowContext(run.catalog, grandparents, spec, dry_run=True, settings=run.settings))
        except (InvalidRow, ParentNotReady) as exc:
            error, status = f"would fail: {exc}", "failed"
        else:
            _estimate_prerequisite(run, spec, row, payload)
        verdicts[str(row["id"])] = ParentInfo(spec.name, str(row["id"]), spec.label(row), None, status, error)
    return verdicts


def _estimate_prerequisite(run, spec, row, payload) -> None:
    """A parent the real run creates first because a child needs it (a retired plan a subscription is on:
    created, then marked inactive) costs its calls too, once, unless its own pass counted it."""
    key = (spec.name, str(row["id"]))
    if key in run.estimated:
        return
    run.estimated.add(key)
    rep = run.report.entity(spec.name)
    rep.prerequisites += 1
    rep.estimated_calls += spec.calls(payload, True)


def accepted_payloads(engine, spec, rows) -> dict[str, dict]:
    """The last accepted payloads of the rows in ZOHO, one read by key per batch (only a diff pays it)."""
    with engine.connect() as conn:
        return payloads.load(conn, spec.name, [r["id"] for r in rows if r[spec.zoho_id_column]])
