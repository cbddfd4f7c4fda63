"""Issue 12 item 5: catalog set-up follows the rows' rule, claim → call → look-up on doubt. Two processes that find
no product at once create it once and use the same id; a create whose answer is lost is adopted, not repeated.
Real HTTP to the emulator; the claim lives in the source database (SQLite and Postgres)."""

from __future__ import annotations

import threading

import pytest

from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync.catalog import PRODUCTS, Catalog
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support.emulator import start_emulator
from zoho_pipeline_tests.support.emulator import zoho_config as emulator_config
from zoho_pipeline_tests.support.rows import make_source


@pytest.fixture
def slow_zoho():
    handle = start_emulator(latency_ms=150)  # the list and the create take long enough for the race to show
    try:
        yield handle
    finally:
        handle.stop()


def _products_named(emulator, name):
    return [p for p in emulator.store.products.values() if p["name"] == name]


def test_two_processes_finding_no_product_create_it_once_and_share_its_id(db_url, slow_zoho):
    make_source(db_url).dispose()
    config = emulator_config(slow_zoho.url)
    start = threading.Barrier(3)
    results, errors = {}, []

    def process(n: int) -> None:  # its own engine, client and catalog, as another process has
        engine = make_engine(db_url)
        try:
            with ZohoClient(config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
                catalog = Catalog(engine, client, config.organization_id)
                start.wait()
                results[n] = catalog.product_id("installation")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=process, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    made = _products_named(slow_zoho, PRODUCTS["installation"][0])
    assert len(made) == 1, f"{len(made)} products created"
    assert set(results.values()) == {made[0]["product_id"]}


def test_a_product_create_whose_answer_is_lost_is_adopted(db_url, emulator):
    engine = make_source(db_url)
    config = emulator_config(emulator.url)
    emulator.set_faults(drop_rate=1.0)  # every write acts, and its answer is lost
    with ZohoClient(config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
        product_id = Catalog(engine, client, config.organization_id).product_id("equipment")
    made = _products_named(emulator, PRODUCTS["equipment"][0])
    assert [p["product_id"] for p in made] == [product_id]
    engine.dispose()
