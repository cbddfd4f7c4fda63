"""`zoho-pipeline reconcile --ledger [--csv PATH|-] [--json]`: every customer's balance in ZOHO against the source's,
to the cent, and every linked recurring invoice's total and paid status (monitor.ledger; list pages only).

Exit 0 when the ledger matches, 1 when money differs, 2 when ZOHO refused the credentials."""

from __future__ import annotations

import json
import sys

from zoho_pipeline.cli.common import format_table
from zoho_pipeline.monitor.ledger import ledger
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline.zoho.errors import AUTH, ZohoError

FIGURES = (
    ("recurring_payments_left_as_credit", "payments on recurring invoices left as credit while ZOHO holds the invoice"),
    ("customers_balance_differs", "customers whose ZOHO balance differs from the source's"),
    ("subscription_invoices_paid_in_source_not_in_zoho", "ZOHO subscription invoices paid in the source, not in ZOHO"),
)


def main(args, config, engine) -> int:
    try:
        with zoho_client(config, engine) as client:
            report = ledger(engine, client)
    except ZohoError as exc:
        print(f"ledger check stopped: {exc}", file=sys.stderr)
        return 2 if exc.kind == AUTH else 1
    finally:
        engine.dispose()
    code = 0 if report.ok else 1
    if args.csv:
        text = report.differences.to_csv(index=False)
        if args.csv == "-":
            sys.stdout.write(text)
            return code
        with open(args.csv, "w", encoding="utf-8", newline="") as out:
            out.write(text)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return code
    figures = report.figures()
    print(format_table(["figure", "value"], [[label, figures[key]] for key, label in FIGURES]))
    print(
        f"\n{figures['customers_compared']} customer(s) compared, {figures['recurring_linked']} recurring invoice(s) "
        f"linked, {figures['recurring_not_linked']} not linked; {figures['api_calls']} API call(s)"
    )
    if not report.differences.empty:
        shown = report.differences.head(50).fillna("")
        print("\nDifferences (zoho − source):")
        print(format_table(list(shown.columns), shown.astype(str).values.tolist()))
        if len(report.differences) > 50:
            print(f"… {len(report.differences) - 50} more: --csv PATH writes them all")
    if args.csv and args.csv != "-":
        print(f"\n{len(report.differences)} row(s) written to {args.csv}")
    print("ledger matches the source" if report.ok else f"{len(report.errors)} ledger difference(s)")
    return code
