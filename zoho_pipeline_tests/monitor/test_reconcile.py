"""ops.reconcile against the live emulator: a clean sync reconciles to nothing; differences planted in ZOHO through
its API are found row by row; the API-call budget is honoured; the command's exit codes."""

from __future__ import annotations

import json

import pytest

from zoho_pipeline.cli import reconcile as reconcile_cmd
from zoho_pipeline.monitor.reconcile import reconcile
from zoho_pipeline.source import database, migrate
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS


@pytest.fixture
def synced(sqlite_url, zoho_config):
    migrate.create_demo(sqlite_url, customers=12, seed=5)
    engine = database.make_engine(sqlite_url)
    with zoho_client(zoho_config, engine) as client:
        run_sync(engine, client, SyncSettings(backoff_base_s=0.01))
    yield engine
    engine.dispose()


def _synced_row(engine, table, *cols):
    import sqlalchemy as sa

    with engine.connect() as conn:
        return (
            conn.execute(sa.select(table).where(table.c.zoho_sync_status == "synced").order_by(table.c.id))
            .mappings()
            .first()
        )


def test_clean_sync_reconciles(synced, zoho_config):
    with zoho_client(zoho_config, synced) as client:
        report = reconcile(synced, client)
    assert report.ok, [d.as_dict() for d in report.differences]
    assert report.complete
    assert report.entities["customers"].compared == report.entities["customers"].source_synced > 0
    assert report.entities["invoices"].zoho_listed >= report.entities["invoices"].source_synced > 0


def test_planted_differences_are_found(synced, zoho_config):
    cust = _synced_row(synced, T.customers)
    inv = _synced_row(synced, T.customer_invoices)
    pay = _synced_row(synced, T.payment_transactions)
    with zoho_client(zoho_config, synced) as client:
        # 1. someone edits a customer in ZOHO
        client.put(
            f"/customers/{cust['zoho_billing_customer_id']}",
            json={"email": "changed@example.com", "last_name": "Changed"},
        )
        # 2. a second ZOHO customer carrying the same provider reference (created twice)
        client.post(
            "/customers",
            json={
                "display_name": "Twin",
                "email": cust["email"],
                "custom_fields": [{"label": "Provider Customer ID", "value": str(cust["id"])}],
            },
        )
        # 3. a customer nobody in the source knows
        client.post("/customers", json={"display_name": "Walk-in", "email": "walkin@example.com"})
        # 4. a synced payment deleted in ZOHO
        client.delete(f"/payments/{pay['zoho_payment_id']}")
        report = reconcile(synced, client)
    kinds = {(d.entity, d.kind, d.field) for d in report.differences}
    assert ("customers", "mismatch", "email") in kinds
    assert ("customers", "mismatch", "last_name") in kinds
    assert ("customers", "duplicate_in_zoho", None) in kinds
    assert ("customers", "unknown_in_zoho", None) in kinds
    assert ("payments", "missing_in_zoho", None) in kinds
    email = next(d for d in report.differences if d.field == "email")
    assert email.source_value == cust["email"] and email.zoho_value == "changed@example.com"
    assert email.label == f"{cust['first_name']} {cust['last_name']} <{cust['email']}>"
    missing = next(d for d in report.differences if d.kind == "missing_in_zoho")
    assert missing.label == pay["transaction_id"]
    assert not report.ok and report.exit_code == 1
    assert inv is not None


def test_invoice_total_and_paid_status(synced, zoho_config):
    inv = _synced_row(synced, T.customer_invoices)
    with synced.begin() as conn:  # the source says paid and a different total, ZOHO was not told
        conn.execute(
            T.customer_invoices.update()
            .where(T.customer_invoices.c.id == inv["id"])
            .values(status="paid" if inv["status"] != "paid" else "sent", total_amount=inv["total_amount"] + 1)
        )
    with zoho_client(zoho_config, synced) as client:
        report = reconcile(synced, client, ["invoices"])
    fields = {d.field for d in report.differences if d.source_id == str(inv["id"])}
    assert {"total", "paid"} <= fields


def test_budget_and_sample(synced, zoho_config):
    with zoho_client(zoho_config, synced) as client:
        report = reconcile(synced, client, max_calls=2)
        assert report.api_calls <= 2 and not report.complete
        sampled = reconcile(synced, client, ["customers"], sample=3, list_zoho=False, seed=1)
    assert sampled.entities["customers"].compared == 3
    assert sampled.entities["customers"].api_calls == 3  # one GET per sampled row


def test_reconcile_command_exit_codes(synced, zoho_config, emulator, sqlite_url, monkeypatch, capsys):
    monkeypatch.setenv("SOURCE_DATABASE_URL", sqlite_url)
    for k in ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_ORGANIZATION_ID"):
        monkeypatch.delenv(k, raising=False)
    assert reconcile_cmd.main([]) == 2  # no credentials
    env = {
        "ZOHO_CLIENT_ID": TEST_CREDENTIALS["client_id"],
        "ZOHO_CLIENT_SECRET": TEST_CREDENTIALS["client_secret"],
        "ZOHO_REFRESH_TOKEN": TEST_CREDENTIALS["refresh_token"],
        "ZOHO_ORGANIZATION_ID": TEST_CREDENTIALS["organization_id"],
        "ZOHO_API_BASE_URL": f"{emulator.url}/billing/v1",
        "ZOHO_ACCOUNTS_URL": emulator.url,
        "ZOHO_RATE_LIMIT_PER_MINUTE": "100000",
        "ZOHO_DAILY_BUDGET": "10000000",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert reconcile_cmd.main([]) == 0
    capsys.readouterr()
    cust = _synced_row(synced, T.customers)
    with zoho_client(zoho_config, synced) as client:
        client.put(f"/customers/{cust['zoho_billing_customer_id']}", json={"first_name": "Someone"})
    assert reconcile_cmd.main(["--entity", "customers"]) == 1
    out = capsys.readouterr().out
    assert "mismatch" in out and cust["email"] in out and "Someone" in out
    assert reconcile_cmd.main(["--entity", "customers", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["entities"]["customers"]["counts"]["mismatch"] == 1
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", "1000.revoked")
    assert reconcile_cmd.main([]) == 2  # ZOHO refuses the credentials
