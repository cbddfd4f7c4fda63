"""The payload store and the dry run's field-level diff: real syncs to the emulator, SQLite and Postgres."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync import diff
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.entities import SPECS
from zoho_pipeline.sync.entities.base import text_hash
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support import rows as R

FAST = SyncSettings(max_workers=4, backoff_base_s=0.05, in_run_retry_window_s=0.0, run_stale_after_s=5.0)


@pytest.fixture
def source(db_url):
    engine = R.make_source(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(source, zoho_config):
    with ZohoClient(zoho_config, token_store=DbTokenStore(source), usage_store=DbUsageStore(source)) as c:
        yield c


def _accepted(engine) -> dict[tuple[str, str], str]:
    t = T.zoho_accepted_payloads
    with engine.connect() as conn:
        return {(r.entity_type, r.entity_id): r.payload for r in conn.execute(sa.select(t))}


def _edit(engine, table, row_id, **values):
    values["updated_at"] = R.ts(engine, R.now() + timedelta(seconds=1))
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == row_id).values(**values))


def _scenario(engine) -> dict:
    package = R.add_package(engine, price="799.00")
    edited = R.add_customer(engine, "Thandi", "Nkosi", city="Cape Town", address_line1="12 Long St")
    untouched = R.add_customer(engine, "Sipho", "Dlamini", city="Durban")
    service = R.add_service(engine, edited, package, price="799.00")
    invoice = R.add_invoice(engine, untouched, total="1150.00")
    return dict(package=package, edited=edited, untouched=untouched, service=service, invoice=invoice)


def test_every_sent_row_stores_the_payload_its_hash_digests(source, client, emulator):
    ids = _scenario(source)
    run_sync(source, client, FAST)
    stored = _accepted(source)
    for spec_name, table in (
        ("customers", T.customers),
        ("subscriptions", T.customer_services),
        ("invoices", T.customer_invoices),
        ("plans", T.service_packages),
    ):
        with source.connect() as conn:
            synced = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
        assert synced
        for row in synced:
            assert row["zoho_sync_status"] == "synced", (spec_name, row["zoho_last_sync_error"])
            text = stored[(spec_name, row["id"])]
            assert text_hash(text) == row["zoho_payload_hash"], spec_name
    # what ZOHO holds is what the store says was accepted
    customer = R.row(source, T.customers, ids["edited"])
    payload = json.loads(stored[("customers", ids["edited"])])
    held = emulator.store.customers[customer["zoho_billing_customer_id"]]
    assert held["billing_address"]["city"] == payload["billing_address"]["city"] == "Cape Town"

    # an unchanged second run writes nothing new: the hash is the fast path
    run_sync(source, client, FAST)
    assert _accepted(source) == stored


def test_dry_run_diff_shows_exactly_the_changed_fields(source, client, emulator):
    ids = _scenario(source)
    run_sync(source, client, FAST)
    _edit(source, T.customers, ids["edited"], city="Stellenbosch", phone="+27 82 555 0101")
    _edit(source, T.customer_services, ids["service"], monthly_price="899.00")
    _edit(source, T.customer_invoices, ids["invoice"], due_date=date(2025, 6, 30))
    _edit(source, T.customers, ids["untouched"])  # touched, nothing mapped changed: shows nothing
    new = R.add_customer(source, "Lerato", "Mokoena", city="Pretoria")
    requests_before = emulator.stats()["requests"]

    report = run_sync(source, client, FAST, dry_run=True, diff=True)

    assert emulator.stats()["requests"] == requests_before, "a dry run makes no call to ZOHO"
    by_row = {(d.entity, d.entity_id): d for d in report.diffs}
    assert set(by_row) == {
        ("customers", ids["edited"]),
        ("customers", new),
        ("subscriptions", ids["service"]),
        ("invoices", ids["invoice"]),
    }
    changes = {k: {c.path: (c.old, c.new) for c in d.changes} for k, d in by_row.items()}
    assert changes[("customers", ids["edited"])] == {
        "billing_address.city": ("Cape Town", "Stellenbosch"),
        "phone": (None, "+27 82 555 0101"),
    }
    assert changes[("subscriptions", ids["service"])] == {"plan.price": (799.0, 899.0)}
    assert changes[("invoices", ids["invoice"])] == {"due_date": ("2025-06-15", "2025-06-30")}
    created = by_row[("customers", new)]
    assert created.action == "create"
    assert changes[("customers", new)]["email"][1].startswith("lerato.mokoena")
    assert changes[("customers", new)]["billing_address.city"] == (None, "Pretoria")
    assert {d.action for k, d in by_row.items() if k != ("customers", new)} == {"update"}

    text = diff.format_text(report.diffs)
    assert text.index("customers: 1 to create, 1 to update") < text.index("update customers Thandi Nkosi")
    assert "plan.price: R 799.00 → R 899.00" in text
    assert 'billing_address.city: "Cape Town" → "Stellenbosch"' in text
    assert "| subscriptions |" in diff.to_markdown(report.diffs)


def test_a_row_synced_before_the_store_shows_every_field_as_sent(source, client, emulator):
    ids = _scenario(source)
    run_sync(source, client, FAST)
    with source.begin() as conn:
        conn.execute(T.zoho_accepted_payloads.delete())
    _edit(source, T.customers, ids["edited"], city="Stellenbosch")
    report = run_sync(source, client, FAST, dry_run=True, diff=True)
    [row] = report.diffs
    assert (row.entity, row.action, row.previous_known) == ("customers", "update", False)
    assert {c.path: c.new for c in row.changes}["billing_address.city"] == "Stellenbosch"
    assert "not stored yet" in diff.format_text(report.diffs)

    # the real run sends it and stores what was accepted: the next diff is field-level again
    run_sync(source, client, FAST)
    _edit(source, T.customers, ids["edited"], city="Paarl")
    [row] = run_sync(source, client, FAST, dry_run=True, diff=True).diffs
    assert row.previous_known and [(c.path, c.old, c.new) for c in row.changes] == [
        ("billing_address.city", "Stellenbosch", "Paarl")
    ]


def test_money_is_compared_to_the_cent_and_paths_name_nested_keys():
    old = {"plan": {"price": 799, "quantity": 1}, "invoice_items": [{"price": "10.00", "name": "A"}], "x": 1}
    new = {"plan": {"price": 799.0, "quantity": 1}, "invoice_items": [{"price": 10.5, "name": "A"}, {"name": "B"}]}
    changes = {c.path: (c.old, c.new) for c in diff.field_changes(old, new)}
    assert changes == {"invoice_items[1].price": ("10.00", 10.5), "invoice_items[2].name": (None, "B"), "x": (1, None)}
    assert diff.show("invoice_items[1].price", 10.5) == "R 10.50"
    assert diff.show("name", None) == "—"
    assert diff.row_diff("plans", "p1", "Fibre", new, in_zoho=True, old=new) is None


def test_money_is_what_the_entity_modules_declare_as_money():
    """One place says which fields are amounts: the entity modules' DRIFT declarations (our name and ZOHO's). An
    invoice's adjustment, which the diff's own list of names missed, is money too."""
    declared = {f.ours for spec in SPECS.values() for f in spec.drift if f.money}
    assert {"invoice_items[].price", "adjustment", "_total", "amount", "recurring_price", "plan.price"} <= declared
    assert {"price", "recurring_price", "amount", "amount_applied", "_total", "total"} < diff.money_keys()
    assert diff.show("adjustment", -0.4) == "R -0.40" and diff.same("adjustment", 1, "1.00")
    assert not diff.is_money("billing_address.zip") and diff.show("quantity", 2) == "2"


def test_the_payload_and_the_outcome_commit_together(source, client, emulator, monkeypatch):
    from zoho_pipeline.sync import payloads

    customer = R.add_customer(source, "Thandi", "Nkosi")

    def broken(conn, entity, accepted, now):
        raise RuntimeError("the database went away mid-transaction")

    monkeypatch.setattr(payloads, "write", broken)
    with pytest.raises(RuntimeError):
        run_sync(source, client, FAST, entities=["customers"])
    row = R.row(source, T.customers, customer)
    assert row["zoho_sync_status"] == "syncing" and row["zoho_create_in_doubt"]  # the outcome rolled back too
    assert _accepted(source) == {}
    monkeypatch.undo()

    # the next run (after the dead run's claim goes stale) adopts what the lost outcome created, once
    later = dataclasses.replace(FAST, run_stale_after_s=0.0)
    run_sync(source, client, later, entities=["customers"])
    row = R.row(source, T.customers, customer)
    assert row["zoho_sync_status"] == "synced" and len(emulator.store.customers) == 1
    assert text_hash(_accepted(source)[("customers", customer)]) == row["zoho_payload_hash"]


def test_a_dry_run_keeps_a_bounded_number_of_diffs_and_counts_the_rest(source, client, emulator, monkeypatch):
    from zoho_pipeline.sync import estimate

    for n in range(5):
        R.add_customer(source, "New", f"Row{n}")
    monkeypatch.setattr(estimate, "MAX_DIFF_ROWS", 2)
    report = run_sync(source, client, FAST, dry_run=True, diff=True)
    assert len(report.diffs) == 2 and report.diffs_omitted == 3
    assert report.entities["customers"].would_create == 5  # the counts stay exact
