"""Issue 12 item 7: dates outside the partitions' old open range (before 1900, after 2200). A run over every month
selects them like any row and our validation refuses them naming the field, so `status` and the run agree on what
is due, and nothing implausible reaches ZOHO (a retry included). Real HTTP to the emulator, SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime

from zoho_pipeline.defs.partitions import OPEN_END, OPEN_START
from zoho_pipeline.monitor import queries as Q
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support import rows

SETTINGS = SyncSettings(max_workers=2, backoff_base_s=0.05)


def test_implausible_dates_are_refused_naming_the_field_and_leave_nothing_due(db_url, zoho_config, emulator):
    engine = rows.make_source(db_url)
    owner = rows.add_customer(engine, "Thandi", "Nkosi")
    old = rows.add_invoice(engine, owner, invoice_date=date(1850, 3, 1), due_date=date(1850, 3, 15))
    future = rows.add_payment(engine, owner, completed_at=rows.ts(engine, datetime(2300, 1, 1, 9, tzinfo=UTC)))
    fine = rows.add_invoice(engine, owner)
    with ZohoClient(zoho_config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
        report = run_sync(engine, client, SETTINGS, months=(OPEN_START, OPEN_END))  # a run over every partition
        old_row = rows.row(engine, T.customer_invoices, old)
        assert old_row["zoho_sync_status"] == "failed"
        assert old_row["zoho_last_sync_error"].startswith("invoice_date: 1850-03-01 is not a plausible date")
        future_row = rows.row(engine, T.payment_transactions, future)
        assert future_row["zoho_sync_status"] == "failed"
        assert future_row["zoho_last_sync_error"].startswith("completed_at: 2300-01-01")
        assert rows.row(engine, T.customer_invoices, fine)["zoho_sync_status"] == "synced"
        # status's definition of due and the run's agree: nothing is left due
        assert all(b["due"] == 0 for b in Q.backlog(engine).values()), Q.backlog(engine)
        assert report.entities["invoices"].backlog == 0 and report.entities["payments"].backlog == 0
        # a retry of the refused row is refused again, never pushed
        run_sync(engine, client, SETTINGS, mode="failed", ids={"invoices": [old]})
    assert not any(i.get("date", "").startswith("1850") for i in emulator.store.invoices.values())
    assert rows.row(engine, T.customer_invoices, old)["zoho_billing_invoice_id"] is None
    engine.dispose()
