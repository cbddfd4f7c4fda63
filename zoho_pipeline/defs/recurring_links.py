"""`zoho_invoices`' metadata of the recurring-invoice links (issue 15): linked, waiting, unmatched, ambiguous,
history, amount differences, and a table of the rows not linked with their reasons (monitor: sync/entities/recurring)."""

import dagster as dg

ROWS_SHOWN = 50
LINK_COUNTS = ("linked", "waiting", "unmatched", "ambiguous", "history", "amount_differences")

LINK_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("invoice_id", "string"),
        dg.TableColumn("invoice_number", "string"),
        dg.TableColumn("state", "string"),
        dg.TableColumn("zoho_invoice_id", "string"),
        dg.TableColumn("reason", "string"),
    ]
)


def link_metadata(links: dict | None) -> dict:
    """`zoho_invoices`' metadata of one linking pass: the same keys every time (zero when it did not run)."""
    links = links or {}
    meta = {f"recurring_{key}": int(links.get(key) or 0) for key in LINK_COUNTS}
    if links.get("estimate"):  # a dry run's (sync/entities/recurring_estimate.py): nothing was read or written
        meta["recurring_would_link"] = int(links.get("would_link") or 0)
    meta["recurring_link_error"] = dg.MetadataValue.text(links.get("error") or "")
    meta["recurring_not_linked"] = dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "invoice_id": str(r.get("invoice_id") or ""),
                    "invoice_number": str(r.get("invoice_number") or ""),
                    "state": str(r.get("state") or ""),
                    "zoho_invoice_id": str(r.get("zoho_invoice_id") or ""),
                    "reason": str(r.get("reason") or "")[:300],
                }
            )
            for r in (links.get("rows") or [])[:ROWS_SHOWN]
        ],
        schema=LINK_SCHEMA,
    )
    return meta
