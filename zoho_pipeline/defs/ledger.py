"""The `zoho_ledger_matches_source` check on `zoho_payments` (every customer's balance in ZOHO equal to the
source's, to the cent: monitor.ledger). The check is ERROR: the check alert sensor sends one alert when a
difference appears and one when it clears."""

import dagster as dg

from zoho_pipeline.defs.assets import POOL, zoho_payments
from zoho_pipeline.defs.recurring_links import ROWS_SHOWN
from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline.monitor.ledger import ledger

LEDGER_SCHEMA = dg.TableSchema(
    columns=[dg.TableColumn(c, "string") for c in ("kind", "label", "source_id", "zoho_id", "source", "zoho")]
    + [dg.TableColumn("difference", "string"), dg.TableColumn("detail", "string")]
)


@dg.asset_check(
    asset=zoho_payments,
    name="zoho_ledger_matches_source",
    pool=POOL,
    description="Every customer's outstanding_receivable_amount and unused_credits in ZOHO equal what the source "
    "says they owe and hold in credit, to the cent, and every linked recurring invoice is billed and paid in ZOHO "
    "as in the source (zoho_pipeline.monitor.ledger; customer and unpaid-invoice list pages only).",
)
def zoho_ledger_matches_source(source: SourceDatabaseResource, zoho: ZohoBillingResource) -> dg.AssetCheckResult:
    engine = source.engine()
    with zoho.client(engine) as client:
        report = ledger(engine, client)
    errors = report.errors
    figures = report.figures()
    kinds = errors["kind"].value_counts().to_dict() if not errors.empty else {}
    return dg.AssetCheckResult(
        passed=report.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if report.ok
        else f"{len(errors)} ledger difference(s): " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
        metadata={
            **{k: int(v) for k, v in figures.items()},
            "recurring_total_differs": report.recurring_total_differs,
            "differences": len(errors),
            "rows": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({k: "" if v is None else str(v)[:300] for k, v in rec.items()})
                    for rec in report.differences.head(ROWS_SHOWN).to_dict("records")
                ],
                schema=LEDGER_SCHEMA,
            ),
        },
    )
