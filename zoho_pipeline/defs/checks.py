"""Asset checks. Per entity (database reads only, cheap, run after every sync; one op per entity): no stuck claims,
failures under a threshold, every synced row has its ZOHO id, backlog age: each the verdict of monitor.verdicts under
monitor.thresholds, which `health` and `alert` present too. Across entities (call ZOHO or read migrations; run by
the daily reconciliation job): the API is reachable with these credentials, migrations are at head, and ZOHO
matches the source within an API budget (monitor.reconcile).

Every failing check carries a table of the rows concerned (ids and labels) in its metadata."""

from collections.abc import Callable

import dagster as dg

from zoho_pipeline.defs.assets import ALL_ASSETS, ENTITY_OF_ASSET, POOL, SOURCE_DATABASE, ZOHO_API
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline.env import number
from zoho_pipeline.monitor import queries
from zoho_pipeline.monitor import verdicts as V
from zoho_pipeline.monitor.reconcile import PER_PAGE, reconcile
from zoho_pipeline.monitor.thresholds import Thresholds
from zoho_pipeline.source import migrate

THRESHOLDS = Thresholds.from_env()  # read at load: the check descriptions show the numbers
RECONCILE_BUDGET = number("ZOHO_RECONCILE_API_BUDGET", 100, int)  # API calls one reconciliation may spend

ROW_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("entity_id", "string"),
        dg.TableColumn("label", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("zoho_id", "string"),
        dg.TableColumn("attempts", "int"),
        dg.TableColumn("error_code", "string"),
        dg.TableColumn("error", "string"),
    ]
)


def rows_table(rows: list[dict]) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "entity_id": str(r.get("entity_id") or r.get("id")),
                    "label": str(r.get("label") or ""),
                    "status": r.get("status") or "",
                    "zoho_id": r.get("zoho_id") or "",
                    "attempts": int(r.get("attempts") or 0),
                    "error_code": r.get("error_code") or "",
                    "error": (r.get("error") or r.get("reason") or "")[:300],
                }
            )
            for r in rows
        ],
        schema=ROW_SCHEMA,
    )


def check_result(verdicts: list[V.Verdict], status_of_rows: str | None = None, **key) -> dg.AssetCheckResult:
    """The verdicts of one entity as a check: passes when all are ok; ERROR when one fails, else WARN. `key`:
    asset_key and check_name, for an op running several checks."""
    status = V.worst(v.status for v in verdicts)
    figures = {
        k: (dg.MetadataValue.float(x) if isinstance(x, float) else x) for v in verdicts for k, x in v.figures.items()
    }
    rows = [{**r, "status": status_of_rows or r.get("status")} for v in verdicts for r in v.rows]
    return dg.AssetCheckResult(
        **key,
        passed=status == V.OK,
        severity=dg.AssetCheckSeverity.ERROR if status == V.FAIL else dg.AssetCheckSeverity.WARN,
        description="; ".join(v.message for v in verdicts if v.status != V.OK) or None,
        metadata={**figures, "rows": rows_table(rows)},
    )


# --- per-entity checks -----------------------------------------------------------------------------------------
# One op per entity runs its four checks: one step instead of four in every sync run, as each step costs Dagster
# its start, output and success events, each a write to the event log (issue 12's fixed cost). A check's key,
# description and result are what they were as an op of its own.


def _entity_judges(entity: str, th: Thresholds) -> dict[str, tuple[str, Callable]]:
    """{check name: (description, judge)}: judge(engine) -> (its verdicts, the status shown on its rows or None)."""

    def failures(engine):
        counts = queries.status_counts(engine, entity)[entity]
        return [V.failed_rows(engine, entity, th, counts), V.dead_lettered(engine, entity, th, counts)], None

    return {
        "no_stuck_syncing": (
            f"No {entity} row left in `syncing` longer than {th.stuck_after_s:.0f}s or claimed "
            "by a run that died (ZOHO_STUCK_AFTER_S).",
            lambda engine: ([V.stuck_rows(engine, entity, th)], "syncing"),
        ),
        "failures_under_threshold": (
            f"Failed and dead-lettered {entity} rows: WARN from the first, ERROR above "
            f"{th.max_failed} failed (ZOHO_MAX_FAILED_ROWS) or {th.max_dead_lettered} "
            "dead-lettered (ZOHO_MAX_DEAD_LETTERED).",
            failures,
        ),
        "synced_rows_have_zoho_id": (
            f"Every {entity} row marked synced has its ZOHO id.",
            lambda engine: ([V.synced_without_id(engine, entity)], "synced"),
        ),
        "backlog_fresh": (
            f"The oldest due {entity} row changed less than {th.max_backlog_age_s:.0f}s ago (ZOHO_MAX_BACKLOG_AGE_S).",
            lambda engine: ([V.backlog_age(engine, entity, th)], None),
        ),
    }


def _entity_checks(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    entity = ENTITY_OF_ASSET[asset.key.to_user_string()]
    judges = _entity_judges(entity, THRESHOLDS)

    @dg.multi_asset_check(
        name=f"{asset.key.to_python_identifier()}_db_checks",
        specs=[dg.AssetCheckSpec(name, asset=asset.key, description=text) for name, (text, _) in judges.items()],
        can_subset=True,
        description=f"The database checks of {entity} (no ZOHO call): {', '.join(judges)}.",
    )
    def db_checks(context: dg.AssetCheckExecutionContext, source: SourceDatabaseResource):
        engine, error = source.engine(), None
        selected = {key.name for key in context.selected_asset_check_keys}
        for name, (_, judge) in judges.items():
            if name not in selected:
                continue
            try:
                verdicts, status_of_rows = judge(engine)
            except Exception as exc:  # noqa: BLE001 - the others still run, as separate ops did; raised below
                context.log.error(f"check {name} on {entity} raised {type(exc).__name__}: {exc}")
                error = error or exc
                continue
            yield check_result(verdicts, status_of_rows, asset_key=asset.key, check_name=name)
        if error is not None:
            raise error  # the step fails, as the failing check's own step did

    return db_checks


ENTITY_CHECKS = [_entity_checks(asset) for asset in ALL_ASSETS]


# --- the deployment: credentials and migrations, once each on the external assets ------------------------------


@dg.asset_check(
    asset=ZOHO_API.key,
    pool=POOL,
    description="ZOHO answers with these credentials and organization (one call: GET /organizations).",
)
def api_reachable(source: SourceDatabaseResource, zoho: ZohoBillingResource) -> dg.AssetCheckResult:
    try:
        with zoho.client(source.engine()) as client:
            org = client.check_connection()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"; the message says which
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"ZOHO not reachable: {exc}"[:300],
            metadata={"error": f"{type(exc).__name__}: {exc}"[:500]},
        )
    return dg.AssetCheckResult(
        passed=True, metadata={"organization_id": str(org.get("organization_id", "")), "name": str(org.get("name", ""))}
    )


@dg.asset_check(
    asset=SOURCE_DATABASE.key,
    description="The source database has the pipeline's columns and tables at the shipped revision.",
)
def migrations_at_head(source: SourceDatabaseResource) -> dg.AssetCheckResult:
    try:
        at, want = migrate.current(source.url), migrate.head()
    except Exception as exc:  # noqa: BLE001
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"cannot read the migration revision: {exc}"[:300],
            metadata={"error": str(exc)[:500]},
        )
    return dg.AssetCheckResult(
        passed=at == want,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"current": at or "none", "head": want},
        description=None
        if at == want
        else f"source at revision {at or 'none'}, head is {want}: run `zoho-pipeline db upgrade`",
    )


DEPLOYMENT_CHECKS = [api_reachable, migrations_at_head]


# --- reconciliation: ZOHO matches the source ---------------------------------------------------------------------

DIFF_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("entity_id", "string"),
        dg.TableColumn("label", "string"),
        dg.TableColumn("zoho_id", "string"),
        dg.TableColumn("kind", "string"),
        dg.TableColumn("field", "string"),
        dg.TableColumn("source", "string"),
        dg.TableColumn("zoho", "string"),
        dg.TableColumn("problem", "string"),
    ]
)
DIFFS_SHOWN = 50
LIST_PAGES = 3  # ZOHO list pages (200 rows each) an entity's share may spend listing; beyond, sampled GETs only


def _text(value) -> str:
    return "" if value is None else str(value)


def differences_table(differences) -> dg.MetadataValue:
    """monitor.reconcile differences as a table pointing at the source rows and ZOHO ids concerned."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "entity_id": _text(d.source_id),
                    "label": _text(d.label),
                    "zoho_id": _text(d.zoho_id),
                    "kind": d.kind,
                    "field": _text(d.field),
                    "source": _text(d.source_value)[:200],
                    "zoho": _text(d.zoho_value)[:200],
                    "problem": _text(d.detail)[:300],
                }
            )
            for d in differences[:DIFFS_SHOWN]
        ],
        schema=DIFF_SCHEMA,
    )


def reconcile_within(engine, client, entity: str, budget: int):
    """monitor.reconcile of one entity within `budget` API calls: ZOHO is listed (counts, missing, unknown, duplicates)
    when the synced rows fit in LIST_PAGES list pages of the budget, else synced rows are compared by GET on a
    sample the budget pays for."""
    synced = queries.status_counts(engine, entity)[entity]["synced"]
    list_zoho = synced <= LIST_PAGES * PER_PAGE and budget > LIST_PAGES
    sample = budget - LIST_PAGES if list_zoho else budget  # what is left for GETs by id
    return reconcile(engine, client, [entity], sample=sample, max_calls=budget, list_zoho=list_zoho).entities[entity]


@dg.multi_asset_check(
    name="zoho_matches_source",
    specs=[
        dg.AssetCheckSpec(
            "matches_source",
            asset=k,
            description="ZOHO holds what the source says was synced: "
            "missing, duplicate, unlinked and unknown entities, and a sample compared field by "
            "field (zoho_pipeline.monitor.reconcile)",
        )
        for k in [a.key for a in ALL_ASSETS]
    ],
    can_subset=True,
    pool=POOL,
    description=f"Reconciles ZOHO with the source (zoho_pipeline.monitor.reconcile), spending at most "
    f"ZOHO_RECONCILE_API_BUDGET ({RECONCILE_BUDGET}) API calls across the selected entities.",
)
def zoho_matches_source(
    context: dg.AssetCheckExecutionContext, source: SourceDatabaseResource, zoho: ZohoBillingResource
):
    selected = list(context.selected_asset_check_keys)
    engine = source.engine()
    share = max(1, RECONCILE_BUDGET // max(1, len(selected)))
    with zoho.client(engine) as client:
        for key in selected:
            entity = ENTITY_OF_ASSET[key.asset_key.to_user_string()]
            res = reconcile_within(engine, client, entity, share)
            diffs, counts = res.differences, res.counts()
            zc, sc = res.zoho_listed, res.source_synced
            context.log.info(
                f"{entity}: {res.compared} compared, {len(diffs)} difference(s); source synced {sc}, "
                f"ZOHO {zc if zc is not None else 'not listed'}; {res.api_calls} API calls"
                + ("" if res.complete else " (stopped at the budget)")
            )
            problems = [f"{n} {kind}" for kind, n in counts.items() if n]
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=not diffs,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(f"{len(diffs)} difference(s): " + ", ".join(problems)) if diffs else None,
                metadata={
                    "sampled": res.compared,
                    "differences": len(diffs),
                    "source_synced": sc,
                    "zoho_count": zc if zc is not None else -1,
                    "api_calls": res.api_calls,
                    "complete": res.complete,
                    **{f"count_{kind}": n for kind, n in counts.items()},
                    "notes": dg.MetadataValue.text("; ".join(res.notes)),
                    "rows": differences_table(diffs),
                },
            )


from zoho_pipeline.defs.drift import zoho_drift  # noqa: E402 - its own module; listed with the API-spending checks
from zoho_pipeline.defs.ledger import zoho_ledger_matches_source  # noqa: E402 - the same

CROSS_ENTITY_CHECKS = [*DEPLOYMENT_CHECKS, zoho_matches_source, zoho_drift, zoho_ledger_matches_source]
ALL_CHECKS = ENTITY_CHECKS + CROSS_ENTITY_CHECKS
