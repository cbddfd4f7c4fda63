"""The catalog (tax, products, the credit addon): found before it is created, and a create that races another
process's, or whose answer is lost, still ends with the one object ZOHO holds. Real HTTP to the emulator."""

from __future__ import annotations

import pytest

from zoho_pipeline.sync.catalog import ADDONS, Catalog
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support import rows

CODE = next(iter(ADDONS))


@pytest.fixture
def sources(tmp_path):
    """Two processes' state: each its own source database, so neither knows what the other resolved."""
    engines = [rows.make_source(f"sqlite:///{tmp_path / f'source{i}.db'}") for i in range(2)]
    yield engines
    for engine in engines:
        engine.dispose()


def _catalog(engine, zoho_config):
    client = ZohoClient(zoho_config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine))
    return client, Catalog(engine, client, zoho_config.organization_id)


def test_an_addon_created_by_another_process_between_our_read_and_our_create_is_adopted(
    sources, zoho_config, emulator, monkeypatch
):
    first_client, first = _catalog(sources[0], zoho_config)
    second_client, second = _catalog(sources[1], zoho_config)
    with first_client, second_client:
        assert first.addon_code(CODE) == CODE
        real_exists = Catalog._addon_exists
        reads = []

        def read_before_the_other_create(self, code):
            reads.append(code)
            return False if len(reads) == 1 else real_exists(self, code)

        monkeypatch.setattr(Catalog, "_addon_exists", read_before_the_other_create)
        assert second.addon_code(CODE) == CODE  # ZOHO answered "addon code already exists": ours now
    assert len(reads) == 2
    assert [a["addon_code"] for a in emulator.store.addons.values()] == [CODE]


def test_an_addon_create_whose_answer_is_lost_is_found_not_failed(sources, zoho_config, emulator):
    client, catalog = _catalog(sources[0], zoho_config)
    catalog.tax_id(), catalog.product_id("services")  # resolved first: only the addon's create may be dropped
    emulator.set_faults(drop_rate=1.0)
    original_post = client.post

    def post_then_heal(path, **kwargs):
        try:
            return original_post(path, **kwargs)
        finally:
            emulator.set_faults(drop_rate=0.0)

    client.post = post_then_heal
    with client:
        assert catalog.addon_code(CODE) == CODE
    assert emulator.stats()["dropped"] >= 1
    assert [a["addon_code"] for a in emulator.store.addons.values()] == [CODE]
