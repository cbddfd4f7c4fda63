"""8. Recurring invoices and the ledger (issue 15): API calls per linked recurring invoice, month by month over the
organization's first year, and the ledger check's API calls per 1 000 customers.

n customers with one service each are synced (SQLite source, the emulator in a thread: counts, not timings). Each
month ZOHO's clock moves to the 1st, ZOHO raises n subscription invoices, the provider bills its n recurring copies
and the linking pass runs: its calls ÷ the invoices it linked. ZOHO's invoice list grows by n a month, so a pass that
read every page would cost more each month; the target (≤ 0.05: list pages, never a read per invoice) is judged on
the last month (12 at full size). After the first month the payments are synced and the ledger check runs: its
calls × 1 000 ÷ n (target ≤ 10: customer and unpaid invoice list pages). At --quick sizes (40 customers, 3 months)
the fixed first page of each list dominates: no target is judged.
"""

from __future__ import annotations

from datetime import date

from bench_common import make_client, metric, sqlite_database

from zoho_pipeline.monitor.ledger import ledger
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.entities.recurring import link_recurring
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline_tests.support import rows as R
from zoho_pipeline_tests.support.emulator import UNLIMITED, start_emulator

SECTION = "8 recurring"
SETTINGS = SyncSettings(max_workers=8, backoff_base_s=0.05, in_run_retry_window_s=1.0)
BILL = "918.85"


def _bill_month(engine, services, day: date, pay: bool) -> None:
    for customer, service in services:
        invoice = R.add_invoice(
            engine,
            customer,
            invoice_type="recurring",
            service_id=service,
            invoice_date=day,
            due_date=day.replace(day=8),
            total=BILL,
        )
        if pay:
            R.add_payment(engine, customer, invoice, amount=BILL)


def run(args) -> tuple[list[dict], dict]:
    n, months = (40, 3) if args.quick else (1000, 12)
    raw: dict = {"customers": n, "months": []}
    with sqlite_database() as url:
        handle = start_emulator(start_time="2025-01-10T08:00:00Z", **UNLIMITED)
        R.make_source(url).dispose()
        engine = make_engine(url)
        client = make_client(engine, handle.url)
        try:
            pkg = R.add_package(engine)
            services = []
            for _ in range(n):
                customer = R.add_customer(engine)
                services.append((customer, R.add_service(engine, customer, pkg, activation_date=date(2025, 1, 6))))
            run_sync(engine, client, SETTINGS)
            for m in range(1, months + 1):
                day = date(2025 + m // 12, m % 12 + 1, 1)  # month 1 is February 2025, the first term
                handle.move_clock(now=f"{day.isoformat()}T09:00:00Z")
                _bill_month(engine, services, day, pay=m == 1)
                links = link_recurring(engine, client)
                raw["months"].append({"month": m, **{k: v for k, v in links.as_dict().items() if k != "rows"}})
                if m == 1:
                    run_sync(engine, client, SETTINGS, entities=["invoices", "payments"])
                    check = ledger(engine, client)
                    raw["ledger"] = {**check.figures(), "ok": check.ok}
        finally:
            client.close()
            engine.dispose()
            handle.stop()
    per_month = [(r["month"], r["api_calls"] / max(1, r["linked"])) for r in raw["months"]]
    raw["calls_per_link_by_month"] = {m: round(v, 4) for m, v in per_month}
    last = raw["months"][-1]
    per_thousand = check.api_calls * 1000 / n
    judged = not args.quick
    return [
        metric(
            SECTION,
            f"API calls per linked recurring invoice, month {last['month']}",
            per_month[-1][1],
            "calls",
            0.05 if judged else None,
            "<=" if judged else None,
            note=f"{last['api_calls']} calls ({last['list_pages']} list pages, {last['detail_reads']} reads) for "
            f"{last['linked']} of {n} linked; by month: " + ", ".join(f"{m}: {v:.3f}" for m, v in per_month),
        ),
        metric(
            SECTION,
            "ledger check: API calls per 1 000 customers",
            per_thousand,
            "calls",
            10 if judged else None,
            "<=" if judged else None,
            note=f"{check.api_calls} calls for {check.customers_compared} customers; ledger ok: {check.ok}",
        ),
    ], raw
