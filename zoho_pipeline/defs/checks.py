"""Asset checks. Per entity (database reads only, cheap, run after every sync): no stuck claims, failures under a
threshold, every synced row has its ZOHO id, backlog age. Across entities (call ZOHO or read migrations; run by
the daily reconciliation job): the API is reachable with these credentials, migrations are at head, and ZOHO
matches the source within an API budget (the operator's reconciliation, zoho_pipeline.ops.reconcile).

Every failing check carries a table of the rows concerned (ids and labels) in its metadata."""


import dagster as dg

from zoho_pipeline.defs.assets import ALL_ASSETS, ENTITY_OF_ASSET, POOL
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline.env import number
from zoho_pipeline.sync import queries


# Thresholds, read once at load; each an env var so operators tune them without code.
STUCK_AFTER_S = number("ZOHO_CHECK_STUCK_AFTER_S", 900.0)  # a `syncing` claim older than this is stuck
FAILED_WARN = number("ZOHO_CHECK_FAILED_WARN", 0, int)  # more failing rows than this: WARN
FAILED_ERROR = number("ZOHO_CHECK_FAILED_ERROR", 25, int)  # more than this (or any dead letter): ERROR
FRESHNESS_S = number("ZOHO_CHECK_FRESHNESS_S", 3600.0)  # oldest due row older than this: WARN
RECONCILE_BUDGET = number("ZOHO_RECONCILE_API_BUDGET", 100, int)  # API calls one reconciliation may spend
ROWS_SHOWN = 20

ROW_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("entity_id", "string"), dg.TableColumn("label", "string"), dg.TableColumn("status", "string"),
    dg.TableColumn("zoho_id", "string"), dg.TableColumn("attempts", "int"),
    dg.TableColumn("error_code", "string"), dg.TableColumn("error", "string"),
])


def rows_table(rows: list[dict]) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"entity_id": str(r.get("entity_id") or r.get("id")), "label": str(r.get("label") or ""), "status": r.get("status") or "",
                                 "zoho_id": r.get("zoho_id") or "", "attempts": int(r.get("attempts") or 0),
                                 "error_code": r.get("error_code") or "", "error": (r.get("error") or "")[:300]})
                 for r in rows],
        schema=ROW_SCHEMA)


# --- per-entity checks -----------------------------------------------------------------------------------------


def _entity_checks(asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    entity = ENTITY_OF_ASSET[asset.key.to_user_string()]

    @dg.asset_check(asset=asset, name="no_stuck_syncing",
                    description=f"No {entity} row left in `syncing` longer than {STUCK_AFTER_S:.0f}s or claimed "
                                "by a run that died.")
    def no_stuck_syncing(source: SourceDatabaseResource) -> dg.AssetCheckResult:
        rows = queries.stuck_rows(source.engine(), entity, STUCK_AFTER_S, limit=ROWS_SHOWN)
        n = len(rows) if len(rows) < ROWS_SHOWN else queries.stuck_count(source.engine(), entity, STUCK_AFTER_S)
        return dg.AssetCheckResult(
            passed=n == 0, severity=dg.AssetCheckSeverity.ERROR,
            description=None if n == 0 else f"{n} {entity} row(s) stuck in syncing",
            metadata={"stuck": n, "older_than_s": STUCK_AFTER_S,
                      "rows": rows_table([{**r, "status": "syncing", "error": r.get("reason")} for r in rows])})

    @dg.asset_check(asset=asset, name="failures_under_threshold",
                    description=f"Failed and dead-lettered {entity} rows: WARN above {FAILED_WARN}, "
                                f"ERROR above {FAILED_ERROR} or when any row is dead-lettered.")
    def failures_under_threshold(source: SourceDatabaseResource) -> dg.AssetCheckResult:
        counts = queries.status_counts(source.engine(), entity)[entity]
        failed, dead = counts["failed"], counts["dead_lettered"]
        n = failed + dead
        worst = queries.failed_rows(source.engine(), entity, limit=ROWS_SHOWN) if n else []
        severe = n > FAILED_ERROR or dead > 0
        return dg.AssetCheckResult(
            passed=n <= FAILED_WARN,
            severity=dg.AssetCheckSeverity.ERROR if severe else dg.AssetCheckSeverity.WARN,
            description=None if n == 0 else f"{failed} {entity} row(s) failed, {dead} dead-lettered",
            metadata={"failed": failed, "dead_lettered": dead, "retrying": counts["retrying"],
                      "warn_above": FAILED_WARN, "error_above": FAILED_ERROR, "worst": rows_table(worst)})

    @dg.asset_check(asset=asset, name="synced_rows_have_zoho_id",
                    description=f"Every {entity} row marked synced has its ZOHO id.")
    def synced_rows_have_zoho_id(source: SourceDatabaseResource) -> dg.AssetCheckResult:
        n = queries.synced_without_id_count(source.engine(), entity)
        rows = queries.synced_without_id(source.engine(), entity, limit=ROWS_SHOWN) if n else []
        return dg.AssetCheckResult(
            passed=n == 0, severity=dg.AssetCheckSeverity.ERROR,
            description=None if n == 0 else f"{n} {entity} row(s) marked synced without a ZOHO id",
            metadata={"missing_zoho_id": n, "rows": rows_table([{**r, "status": "synced"} for r in rows])})

    @dg.asset_check(asset=asset, name="backlog_fresh",
                    description=f"The oldest due {entity} row changed less than {FRESHNESS_S:.0f}s ago.")
    def backlog_fresh(source: SourceDatabaseResource) -> dg.AssetCheckResult:
        engine = source.engine()
        age = queries.oldest_due_age_s(engine, entity) or 0.0
        due = queries.due_count(engine, entity)
        return dg.AssetCheckResult(
            passed=age <= FRESHNESS_S, severity=dg.AssetCheckSeverity.WARN,
            description=None if age <= FRESHNESS_S else f"{due} {entity} row(s) due, the oldest for {age / 60:.0f} min",
            metadata={"backlog": due, "oldest_due_age_s": dg.MetadataValue.float(round(age, 1)),
                      "bound_s": FRESHNESS_S})

    return [no_stuck_syncing, failures_under_threshold, synced_rows_have_zoho_id, backlog_fresh]


ENTITY_CHECKS = [check for asset in ALL_ASSETS for check in _entity_checks(asset)]


# --- environment: credentials and migrations -------------------------------------------------------------------

ASSET_KEYS = [a.key for a in ALL_ASSETS]


@dg.multi_asset_check(
    name="zoho_environment",
    specs=[dg.AssetCheckSpec("api_reachable", asset=k, description="ZOHO answers with these credentials and "
                             "organization") for k in ASSET_KEYS]
    + [dg.AssetCheckSpec("migrations_at_head", asset=k, description="The source database has the pipeline's "
                         "columns and tables at the shipped revision") for k in ASSET_KEYS],
    can_subset=True, pool=POOL,
    description="One API call (GET /organizations) and one migration read, reported on every selected asset.")
def zoho_environment(context: dg.AssetCheckExecutionContext, source: SourceDatabaseResource,
                     zoho: ZohoBillingResource):
    from zoho_pipeline.source.admin import current, head

    selected = context.selected_asset_check_keys
    names = {k.name for k in selected}
    api = None
    if "api_reachable" in names:
        try:
            with zoho.client(source.engine()) as client:
                org = client.check_connection()
            api = (True, {"organization_id": str(org.get("organization_id", "")), "name": str(org.get("name", ""))},
                   None)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"; the message says which
            api = (False, {"error": f"{type(exc).__name__}: {exc}"[:500]}, f"ZOHO not reachable: {exc}"[:300])
    mig = None
    if "migrations_at_head" in names:
        try:
            at, want = current(source.url), head()
            mig = (at == want, {"current": at or "none", "head": want},
                   None if at == want else f"source at revision {at or 'none'}, head is {want}: "
                                           "run `zoho-pipeline db upgrade`")
        except Exception as exc:  # noqa: BLE001
            mig = (False, {"error": str(exc)[:500]}, f"cannot read the migration revision: {exc}"[:300])
    for key in selected:
        passed, meta, description = api if key.name == "api_reachable" else mig
        yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=passed, metadata=meta,
                                  description=description, severity=dg.AssetCheckSeverity.ERROR)


# --- reconciliation: ZOHO matches the source ---------------------------------------------------------------------

DIFF_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("entity_id", "string"), dg.TableColumn("label", "string"), dg.TableColumn("zoho_id", "string"),
    dg.TableColumn("kind", "string"), dg.TableColumn("field", "string"), dg.TableColumn("source", "string"),
    dg.TableColumn("zoho", "string"), dg.TableColumn("problem", "string"),
])
DIFFS_SHOWN = 50
LIST_PAGES = 3  # ZOHO list pages (200 rows each) an entity's share may spend listing; beyond, sampled GETs only


def _text(value) -> str:
    return "" if value is None else str(value)


def differences_table(differences) -> dg.MetadataValue:
    """ops.reconcile differences as a table pointing at the source rows and ZOHO ids concerned."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"entity_id": _text(d.source_id), "label": _text(d.label), "zoho_id": _text(d.zoho_id),
                                 "kind": d.kind, "field": _text(d.field), "source": _text(d.source_value)[:200],
                                 "zoho": _text(d.zoho_value)[:200], "problem": _text(d.detail)[:300]})
                 for d in differences[:DIFFS_SHOWN]],
        schema=DIFF_SCHEMA)


def reconcile_within(engine, client, entity: str, budget: int):
    """ops.reconcile of one entity within `budget` API calls: ZOHO is listed (counts, missing, unknown, duplicates)
    when the synced rows fit in LIST_PAGES list pages of the budget, else synced rows are compared by GET on a
    sample the budget pays for."""
    from zoho_pipeline.ops.reconcile import PER_PAGE, reconcile

    synced = queries.status_counts(engine, entity)[entity]["synced"]
    list_zoho = synced <= LIST_PAGES * PER_PAGE and budget > LIST_PAGES
    sample = budget - LIST_PAGES if list_zoho else budget  # what is left for GETs by id
    return reconcile(engine, client, [entity], sample=sample, max_calls=budget, list_zoho=list_zoho).entities[entity]


@dg.multi_asset_check(
    name="zoho_matches_source",
    specs=[dg.AssetCheckSpec("matches_source", asset=k, description="ZOHO holds what the source says was synced: "
                             "missing, duplicate, unlinked and unknown entities, and a sample compared field by "
                             "field (zoho_pipeline.ops.reconcile)")
           for k in ASSET_KEYS],
    can_subset=True, pool=POOL,
    description=f"Reconciles ZOHO with the source (zoho_pipeline.ops.reconcile), spending at most "
                f"ZOHO_RECONCILE_API_BUDGET ({RECONCILE_BUDGET}) API calls across the selected entities.")
def zoho_matches_source(context: dg.AssetCheckExecutionContext, source: SourceDatabaseResource,
                        zoho: ZohoBillingResource):
    selected = list(context.selected_asset_check_keys)
    engine = source.engine()
    share = max(1, RECONCILE_BUDGET // max(1, len(selected)))
    with zoho.client(engine) as client:
        for key in selected:
            entity = ENTITY_OF_ASSET[key.asset_key.to_user_string()]
            res = reconcile_within(engine, client, entity, share)
            diffs, counts = res.differences, res.counts()
            zc, sc = res.zoho_listed, res.source_synced
            context.log.info(f"{entity}: {res.compared} compared, {len(diffs)} difference(s); source synced {sc}, "
                             f"ZOHO {zc if zc is not None else 'not listed'}; {res.api_calls} API calls"
                             + ("" if res.complete else " (stopped at the budget)"))
            problems = [f"{n} {kind}" for kind, n in counts.items() if n]
            yield dg.AssetCheckResult(
                asset_key=key.asset_key, check_name=key.name, passed=not diffs,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(f"{len(diffs)} difference(s): " + ", ".join(problems)) if diffs else None,
                metadata={"sampled": res.compared, "differences": len(diffs), "source_synced": sc,
                          "zoho_count": zc if zc is not None else -1, "api_calls": res.api_calls,
                          "complete": res.complete, **{f"count_{kind}": n for kind, n in counts.items()},
                          "notes": dg.MetadataValue.text("; ".join(res.notes)),
                          "rows": differences_table(diffs)})


CROSS_ENTITY_CHECKS = [zoho_environment, zoho_matches_source]
ALL_CHECKS = ENTITY_CHECKS + CROSS_ENTITY_CHECKS
