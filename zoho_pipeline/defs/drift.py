"""The `zoho_drift` check (daily, in the reconciliation job, API-budgeted like `zoho_matches_source`): fields
changed in ZOHO since we sent them (monitor.drift), as a table of row, field, what we sent and what ZOHO holds.
Under ZOHO_DRIFT=repair the drifted rows are requeued (forgetting their hash), so the next sync sends the
source's version back; under `report` (the default) they are only reported."""

import dagster as dg

from zoho_pipeline.defs.assets import ALL_ASSETS, ENTITY_OF_ASSET, POOL
from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource, ZohoBillingResource
from zoho_pipeline.env import number
from zoho_pipeline.monitor.drift import drift_entity
from zoho_pipeline.sync.diff import show
from zoho_pipeline.sync.requeue import requeue
from zoho_pipeline.sync.settings import REPAIR

DRIFT_BUDGET = number("ZOHO_DRIFT_API_BUDGET", 100, int)  # GETs one drift check may spend, shared by the entities
ROWS_SHOWN = 50

DRIFT_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("entity_id", "string"),
        dg.TableColumn("label", "string"),
        dg.TableColumn("zoho_id", "string"),
        dg.TableColumn("field", "string"),
        dg.TableColumn("sent", "string"),
        dg.TableColumn("zoho", "string"),
    ]
)


def drift_table(drifts) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "entity_id": d.entity_id,
                    "label": d.label,
                    "zoho_id": d.zoho_id,
                    "field": d.field,
                    "sent": show(d.field, d.sent)[:200],
                    "zoho": show(d.field, d.zoho)[:200],
                }
            )
            for d in drifts[:ROWS_SHOWN]
        ],
        schema=DRIFT_SCHEMA,
    )


@dg.multi_asset_check(
    name="zoho_drift",
    specs=[
        dg.AssetCheckSpec(
            "no_drift_in_zoho",
            asset=k,
            description="Nothing we sent was changed in ZOHO since (a sample within the API budget; "
            "zoho_pipeline.monitor.drift)",
        )
        for k in [a.key for a in ALL_ASSETS]
    ],
    can_subset=True,
    pool=POOL,
    description=f"Compares ZOHO's entities with the payloads ZOHO last accepted, spending at most "
    f"ZOHO_DRIFT_API_BUDGET ({DRIFT_BUDGET}) GETs across the selected entities. ZOHO_DRIFT=repair requeues drifted rows.",
)
def zoho_drift(
    context: dg.AssetCheckExecutionContext,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
):
    selected = list(context.selected_asset_check_keys)
    db = source.engine()
    policy = engine.settings().drift_policy
    share = max(1, DRIFT_BUDGET // max(1, len(selected)))
    with zoho.client(db) as client:
        for key in selected:
            entity = ENTITY_OF_ASSET[key.asset_key.to_user_string()]
            res = drift_entity(db, client, entity, max_calls=share)
            rows = res.drifted_ids
            requeued = requeue(db, entity, ids=rows, force=True) if rows and policy == REPAIR else 0
            context.log.info(
                f"{entity}: {res.checked} of {res.candidates} checked, {len(rows)} drifted, {requeued} requeued; "
                f"{res.api_calls} API calls"
            )
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=not rows,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"{len(rows)} row(s) changed in ZOHO: "
                    + ", ".join(sorted({d.field for d in res.drifts}))
                    + (f"; requeued {requeued} to send the source's version back" if requeued else "")
                )
                if rows
                else None,
                metadata={
                    "checked": res.checked,
                    "candidates": res.candidates,
                    "drifted_rows": len(rows),
                    "requeued": requeued,
                    "policy": policy,
                    "api_calls": res.api_calls,
                    "complete": res.complete,
                    "rows": drift_table(res.drifts),
                },
            )
