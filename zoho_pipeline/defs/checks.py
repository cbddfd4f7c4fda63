"""Asset checks. Per entity (database reads only, cheap, run after every sync): no stuck claims, failures under a
threshold, every synced row has its ZOHO id, backlog age. Across entities (call ZOHO or read migrations; run by
the daily reconciliation job): the API is reachable with these credentials, migrations are at head, and ZOHO
matches the source on a sample within an API budget.

Every failing check carries a table of the rows concerned (ids and labels) in its metadata."""


import os
import dagster as dg

from zoho_pipeline.defs import source_state as st
from zoho_pipeline.defs.assets import ALL_ASSETS, ENTITY_OF_ASSET, POOL
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline.sync import queries


def _env_num(name: str, default, kind=float):
    value = os.environ.get(name)
    return kind(value) if value not in (None, "") else default


# Thresholds, read once at load; each an env var so operators tune them without code.
STUCK_AFTER_S = _env_num("ZOHO_CHECK_STUCK_AFTER_S", 900.0)  # a `syncing` claim older than this is stuck
FAILED_WARN = _env_num("ZOHO_CHECK_FAILED_WARN", 0, int)  # more failing rows than this: WARN
FAILED_ERROR = _env_num("ZOHO_CHECK_FAILED_ERROR", 25, int)  # more than this (or any dead letter): ERROR
FRESHNESS_S = _env_num("ZOHO_CHECK_FRESHNESS_S", 3600.0)  # oldest due row older than this: WARN
RECONCILE_BUDGET = _env_num("ZOHO_RECONCILE_API_BUDGET", 100, int)  # API calls one reconciliation may spend
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
    dg.TableColumn("problem", "string"),
])

# entity → (GET path for one id, envelope key, list path, list key)
ZOHO_PATHS = {
    "plans": ("/plans/{}", "plan", "/plans", "plans"),
    "customers": ("/customers/{}", "customer", "/customers", "customers"),
    "subscriptions": ("/subscriptions/{}", "subscription", "/subscriptions", "subscriptions"),
    "invoices": ("/invoices/{}", "invoice", "/invoices", "invoices"),
    "payments": ("/payments/{}", "payment", "/payments", "payments"),
}
COUNT_PAGES = 3  # list pages (200 rows each) a count may spend before it is reported as not verified


def _money(value) -> float:
    try:
        return round(float(value), 2)
    except (TypeError, ValueError):
        return float("nan")


def compare_row(entity: str, row: dict, remote: dict) -> str | None:
    """What differs between a synced source row and its ZOHO record, or None."""
    if entity == "customers" and (remote.get("email") or "").lower() != (row.get("email") or "").lower():
        return f"email differs: ZOHO {remote.get('email')!r}"
    if entity == "invoices":
        if _money(remote.get("total")) != _money(row.get("total_amount")):
            return f"total differs: source {_money(row.get('total_amount'))}, ZOHO {_money(remote.get('total'))}"
        src_paid, zoho_paid = row.get("status") == "paid", (remote.get("status") or "").lower() == "paid"
        if src_paid != zoho_paid:
            return f"paid status differs: source {row.get('status')}, ZOHO {remote.get('status')}"
    if entity == "payments" and _money(remote.get("amount")) != _money(row.get("amount")):
        return f"amount differs: source {_money(row.get('amount'))}, ZOHO {_money(remote.get('amount'))}"
    return None


def reconcile_entity(engine, client, entity: str, budget: int) -> dict:
    """Count synced rows against ZOHO's list (when it fits the budget), then fetch a sample of synced rows by id."""
    from zoho_pipeline.zoho.errors import ZohoError

    one, key, list_path, list_key = ZOHO_PATHS[entity]
    start = client.stats.api_calls
    source_count = st.synced_count(engine, entity)
    zoho_count, diffs = None, []
    if source_count <= COUNT_PAGES * 200 and budget > COUNT_PAGES:
        zoho_count = sum(1 for _ in client.iter_list(list_path, list_key))
    remaining = budget - (client.stats.api_calls - start)
    sample = st.synced_sample(engine, entity, max(0, remaining))
    for row in sample:
        try:
            remote = client.get(one.format(row["zoho_id"])).get(key) or {}
            problem = compare_row(entity, row, remote)
        except ZohoError as exc:
            problem = f"missing in ZOHO ({exc.kind}: {exc})"[:300] if getattr(exc, "kind", "") != "auth" else None
            if problem is None:
                raise
        if problem:
            diffs.append({"entity_id": str(row["id"]), "label": str(row["label"]), "zoho_id": str(row["zoho_id"]),
                          "problem": problem})
    return {"source_synced": source_count, "zoho_count": zoho_count, "sampled": len(sample), "diffs": diffs,
            "api_calls": client.stats.api_calls - start}


@dg.multi_asset_check(
    name="zoho_matches_source",
    specs=[dg.AssetCheckSpec("matches_source", asset=k, description="ZOHO holds what the source says was synced: "
                             "counts, and a sample compared field by field (totals, paid status, amounts)")
           for k in ASSET_KEYS],
    can_subset=True, pool=POOL,
    description=f"Samples synced rows and fetches them from ZOHO, spending at most ZOHO_RECONCILE_API_BUDGET "
                f"({RECONCILE_BUDGET}) API calls across the selected entities.")
def zoho_matches_source(context: dg.AssetCheckExecutionContext, source: SourceDatabaseResource,
                        zoho: ZohoBillingResource):
    selected = list(context.selected_asset_check_keys)
    engine = source.engine()
    share = max(1, RECONCILE_BUDGET // max(1, len(selected)))
    with zoho.client(engine) as client:
        for key in selected:
            entity = ENTITY_OF_ASSET[key.asset_key.to_user_string()]
            res = reconcile_entity(engine, client, entity, share)
            diffs, zc, sc = res["diffs"], res["zoho_count"], res["source_synced"]
            short = zc is not None and zc < sc
            context.log.info(f"{entity}: {res['sampled']} sampled, {len(diffs)} differ; source synced {sc}, "
                             f"ZOHO {zc if zc is not None else 'not counted'}; {res['api_calls']} API calls")
            problems = [f"{len(diffs)} of {res['sampled']} sampled differ"] if diffs else []
            if short:
                problems.append(f"ZOHO holds {zc} {entity}, the source marks {sc} synced")
            yield dg.AssetCheckResult(
                asset_key=key.asset_key, check_name=key.name, passed=not problems,
                severity=dg.AssetCheckSeverity.ERROR, description="; ".join(problems) or None,
                metadata={"sampled": res["sampled"], "differences": len(diffs), "source_synced": sc,
                          "zoho_count": zc if zc is not None else -1, "api_calls": res["api_calls"],
                          "rows": dg.MetadataValue.table(records=[dg.TableRecord(d) for d in diffs[:50]],
                                                         schema=DIFF_SCHEMA)})


CROSS_ENTITY_CHECKS = [zoho_environment, zoho_matches_source]
ALL_CHECKS = ENTITY_CHECKS + CROSS_ENTITY_CHECKS
