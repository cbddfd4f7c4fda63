"""Issue 12 item 5: catalog set-up follows the rows' rule, claim → call → look-up on doubt. Two processes that find
no product at once create it once and use the same id; a create whose answer is lost is adopted, not repeated.
Real HTTP to the emulator; the claim lives in the source database (SQLite and Postgres)."""

from __future__ import annotations

import threading
import time

import pytest

from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync import catalog as catalog_module
from zoho_pipeline.sync import state
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


# --- a holder that died (the fault suite's SIGKILL scenario stalled its invoices for the claim's 60 s) -----------


def _hold(engine, key: str, owner: str, seconds_ago: float) -> None:
    """The claim row as a holder leaves it when it is killed: its owner, last renewed `seconds_ago`."""
    from datetime import timedelta

    from zoho_pipeline.source.database import db_time, utcnow
    from zoho_pipeline.source.tables import zoho_pipeline_state as s

    with engine.begin() as conn:
        conn.execute(
            s.insert().values(
                key=key, value=owner, updated_at=db_time(engine, utcnow() - timedelta(seconds=seconds_ago))
            )
        )


def test_a_set_up_claim_left_by_a_process_killed_seconds_ago_is_taken_over_without_waiting(
    db_url, emulator, monkeypatch
):
    engine = make_source(db_url)
    config = emulator_config(emulator.url)
    _hold(engine, f"claim:zoho:{config.organization_id}:product:installation", "killed-process", seconds_ago=11)
    waits = []
    monkeypatch.setattr(
        catalog_module.time, "sleep", lambda s: waits.append(s) or pytest.fail("waited on a dead claim")
    )
    with ZohoClient(config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
        product_id = Catalog(engine, client, config.organization_id).product_id("installation")
    assert waits == []
    assert [p["product_id"] for p in _products_named(emulator, PRODUCTS["installation"][0])] == [product_id]
    engine.dispose()


def test_a_live_holder_keeps_its_set_up_claim_past_the_ttl_by_renewing_it(db_url, monkeypatch):
    """The short TTL above is safe only because a live holder renews its claim while it waits on ZOHO."""
    monkeypatch.setattr(catalog_module, "CLAIM_TTL_S", 0.4)
    monkeypatch.setattr(catalog_module, "CLAIM_RENEW_S", 0.1, raising=False)
    engine = make_source(db_url)
    working, done = threading.Event(), threading.Event()
    result = {}

    def slow_resolve():  # a look-up and a create that take several TTLs (a slow ZOHO, a paced minute)
        working.set()
        assert done.wait(30)
        return "product-1"

    holder = Catalog(engine, None, "org-live")
    thread = threading.Thread(target=lambda: result.update(id=holder._get("product:x", slow_resolve)))
    thread.start()
    try:
        assert working.wait(30)
        key = "claim:zoho:org-live:product:x"
        deadline = time.monotonic() + 4 * catalog_module.CLAIM_TTL_S
        taken = []
        while time.monotonic() < deadline:  # another process keeps asking for the claim, as a waiter does
            taken.append(state.claim(engine, key, "other-process", catalog_module.CLAIM_TTL_S))
            time.sleep(0.05)
        assert taken and not any(taken), "a live holder's claim was taken over"
    finally:
        done.set()
        thread.join(timeout=30)
    assert result == {"id": "product-1"}
    engine.dispose()
