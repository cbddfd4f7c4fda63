"""Issue 12, low item: NUL bytes and over-long fields. Our validation refuses them naming the field, before any
call; the emulator refuses them too (ZOHO's field limits belong in both). SQLite source (Postgres text cannot hold
a NUL byte at all); real HTTP to the emulator."""

from __future__ import annotations

import requests

from zoho_pipeline.source import tables as T
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.support import rows
from zoho_pipeline_tests.support.emulator import TEST_CREDENTIALS

SETTINGS = SyncSettings(max_workers=2, backoff_base_s=0.05)


def test_nul_bytes_and_ten_thousand_characters_fail_alone_naming_the_field(sqlite_url, zoho_config, emulator):
    engine = rows.make_source(sqlite_url)
    nul = rows.add_customer(engine, "Thandi", "Nk\x00osi", email="thandi.nkosi@example.co.za")
    long = rows.add_customer(engine, "Sipho", "Dlamini", address_line1="12 Long Street " * 667)  # 10 005 chars
    fine = rows.add_customer(engine, "Lerato", "Mokoena")
    with ZohoClient(zoho_config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as client:
        report = run_sync(engine, client, SETTINGS, entities=["customers"])
    nul_row, long_row = rows.row(engine, T.customers, nul), rows.row(engine, T.customers, long)
    assert nul_row["zoho_sync_status"] == "failed" and "NUL byte" in nul_row["zoho_last_sync_error"]
    assert nul_row["zoho_last_sync_error"].startswith("last_name: contains a NUL byte")
    assert long_row["zoho_sync_status"] == "failed"
    assert long_row["zoho_last_sync_error"].startswith("address_line1: is 10005 characters")
    assert "ZOHO takes at most 2000" in long_row["zoho_last_sync_error"]
    assert rows.row(engine, T.customers, fine)["zoho_sync_status"] == "synced"
    assert report.entities["customers"].failed == 2
    assert emulator.stats()["by_route"].get("POST /customers") == 1  # refused before any call
    engine.dispose()


def test_the_emulator_refuses_them_too(emulator):
    token = requests.post(
        f"{emulator.url}/oauth/v2/token",
        data={"grant_type": "refresh_token", **{k: v for k, v in TEST_CREDENTIALS.items() if k != "organization_id"}},
        timeout=10,
    ).json()["access_token"]
    headers = {
        "Authorization": f"Zoho-oauthtoken {token}",
        "X-com-zoho-subscriptions-organizationid": TEST_CREDENTIALS["organization_id"],
    }
    for bad in ({"display_name": "Nk\x00osi"}, {"display_name": "x", "notes": "y" * 10_000}):
        r = requests.post(f"{emulator.url}/billing/v1/customers", json=bad, headers=headers, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == 4, r.text
