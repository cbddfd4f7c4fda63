"""Issue 12 item 8: tokens are not burnt while the shared token cache (the source database) is down. Processes
of one host reuse one token kept on the host, and together mint at most their share of ZOHO's 10 per 10 minutes."""

from __future__ import annotations

import os
import stat

import pytest
import sqlalchemy as sa

from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho import token_fallback
from zoho_pipeline.zoho.auth import MemoryTokenStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.errors import RETRYABLE, ZohoError
from zoho_pipeline.zoho.token_fallback import MAX_MINTS, LocalTokenFallback

pytestmark = pytest.mark.usefixtures("fresh_zoho_process_state")


@pytest.fixture
def host_dir(tmp_path, monkeypatch):
    directory = tmp_path / "tokens"
    monkeypatch.setattr(token_fallback, "default_directory", lambda: directory)
    return directory


@pytest.fixture
def source_down(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'source.db'}")  # every connect fails
    yield engine
    engine.dispose()


def test_nine_health_calls_with_the_source_down_mint_one_token(host_dir, source_down, zoho_config, emulator):
    for _ in range(9):  # nine processes, each with its own client and token provider, the cache unreachable
        with ZohoClient(
            zoho_config, token_store=DbTokenStore(source_down), usage_store=DbUsageStore(source_down)
        ) as client:
            client.check_connection()
        MemoryTokenStore.clear()  # nothing of the last "process" left in memory
    assert emulator.stats()["tokens_minted"] == 1
    kept = next(host_dir.iterdir())
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600 and stat.S_IMODE(os.stat(host_dir).st_mode) == 0o700


def test_without_the_shared_cache_a_host_mints_at_most_its_share(host_dir):
    fallback = LocalTokenFallback()
    now = 1_000_000.0
    assert [fallback.reserve_mint("k", now + i) for i in range(MAX_MINTS)] == [0.0] * MAX_MINTS
    wait = fallback.reserve_mint("k", now + MAX_MINTS)
    assert 590 < wait <= 600
    assert fallback.reserve_mint("k", now + 601) == 0.0  # the first mint left the 10-minute window


def test_a_mint_past_the_share_is_refused_with_its_reason(host_dir, source_down, zoho_config, emulator):
    fallback = LocalTokenFallback()
    for _ in range(MAX_MINTS):
        fallback.reserve_mint(
            ZohoClient(zoho_config, token_store=DbTokenStore(source_down)).tokens.key
        )  # this host already minted its share
    with ZohoClient(zoho_config, token_store=DbTokenStore(source_down), usage_store=DbUsageStore(source_down)) as c:
        with pytest.raises(ZohoError) as exc:
            c.check_connection()
    assert exc.value.kind == RETRYABLE and "not minting" in str(exc.value)
    assert emulator.stats()["tokens_minted"] == 0
