"""ZohoClient against the live emulator (real HTTP, the other side of the wire written from the contract)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from zoho_pipeline.source.tables import metadata
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.errors import ZohoError
from zoho_pipeline.zoho.limiter import RateLimiter
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS

# each test starts with no process-wide limiter or cached token (conftest.fresh_zoho_process_state)
pytestmark = pytest.mark.usefixtures("fresh_zoho_process_state")


def fast(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, retry_base_delay_s=0.01, **kw)


def test_basic_calls_and_recorded_errors(emulator, zoho_config):
    client = ZohoClient(fast(zoho_config))
    assert client.check_connection()["organization_id"] == TEST_CREDENTIALS["organization_id"]
    created = client.post("/customers", json={"display_name": "Ann Lee", "email": "ann@example.com"})
    cid = created["customer"]["customer_id"]
    assert client.get(f"/customers/{cid}")["customer"]["email"] == "ann@example.com"
    assert [c["customer_id"] for c in client.iter_list("/customers", "customers", per_page=1)] == [cid]
    for path, code in (("/plans/nope", 101002), ("/customers/0", 3004), ("/subscriptions/0", 1002)):
        with pytest.raises(ZohoError) as ei:
            client.get(path)
        assert ei.value.kind == "permanent" and ei.value.code == code, path
    stats = emulator.stats()
    assert stats["tokens_minted"] == 1
    api = sum(n for route, n in stats["by_route"].items() if not route.startswith("POST /oauth"))
    assert client.stats.api_calls == api


def test_a_given_sessions_headers_and_hooks_apply_to_every_call(emulator, zoho_config):
    import requests

    session = requests.Session()
    session.headers["X-Trace"] = "ops-42"
    seen = []
    session.hooks["response"].append(
        lambda r, *a, **k: seen.append((r.status_code, dict(r.request.headers))) if "/oauth/" not in r.url else None
    )
    client = ZohoClient(fast(zoho_config), session=session)
    client.get("/customers")
    assert len(seen) == 1 and seen[0][0] == 200
    headers = seen[0][1]
    # the session's own (gzip, user agent) and ours (auth, organization) together
    assert headers["X-Trace"] == "ops-42" and "gzip" in headers["Accept-Encoding"]
    assert headers["Authorization"].startswith("Zoho-oauthtoken ") and headers["Accept"] == "application/json"
    assert headers["X-com-zoho-subscriptions-organizationid"] == str(zoho_config.organization_id)


def test_bad_refresh_token_is_auth(emulator, zoho_config):
    client = ZohoClient(fast(zoho_config, refresh_token="1000.not-the-right-one"))
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "auth"
    assert "1000.not-the-right-one" not in str(ei.value)


def test_early_token_death_refreshes_once(emulator, zoho_config):
    emulator.set_faults(early_token_expiry_s=0.3)
    client = ZohoClient(fast(zoho_config))
    client.get("/customers")
    time.sleep(0.5)
    emulator.set_faults(early_token_expiry_s=None)
    client.get("/customers")  # 401 → refresh → retry
    assert emulator.stats()["tokens_minted"] == 2
    assert client.stats.token_refreshes == 2 and client.stats.api_calls == 3


def test_refresh_before_expiry(emulator, zoho_config):
    emulator.set_faults(token_lifetime=3)
    client = ZohoClient(fast(zoho_config, refresh_margin_s=2.5))
    client.get("/customers")
    client.get("/customers")
    assert emulator.stats()["tokens_minted"] == 1
    time.sleep(0.6)
    client.get("/customers")
    assert emulator.stats()["tokens_minted"] == 2
    assert emulator.stats()["by_status"].get("401", 0) == 0  # refreshed before ZOHO refused it


def test_5xx_get_retried_post_ambiguous(emulator, zoho_config):
    client = ZohoClient(fast(zoho_config))
    client.get("/customers")
    emulator.set_faults(fail_rate=1.0)
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "retryable" and ei.value.http_status == 500
    with pytest.raises(ZohoError) as ei:
        client.post("/customers", json={"display_name": "X"})
    assert ei.value.kind == "ambiguous" and ei.value.http_status == 500
    by_route = emulator.stats()["by_route"]
    assert by_route["GET /customers"] == 1 + 1 + zoho_config.max_retries
    assert by_route["POST /customers"] == 1


def test_dropped_post_is_ambiguous_and_did_act(emulator, zoho_config):
    client = ZohoClient(fast(zoho_config))
    client.get("/customers")
    emulator.set_faults(drop_rate=1.0)
    with pytest.raises(ZohoError) as ei:
        client.post("/customers", json={"display_name": "Dropped", "email": "d@example.com"})
    assert ei.value.kind == "ambiguous"
    emulator.set_faults(drop_rate=0.0)
    found = client.get("/customers", params={"email": "d@example.com"})["customers"]
    assert len(found) == 1  # it acted: the engine's look-up finds it


def test_connection_refused_is_retryable(zoho_config):
    import dataclasses
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = dataclasses.replace(
        zoho_config,
        accounts_url=f"http://127.0.0.1:{port}",
        api_base_url=f"http://127.0.0.1:{port}/billing/v1",
        retry_base_delay_s=0.01,
    )
    with pytest.raises(ZohoError) as ei:
        ZohoClient(cfg).get("/customers")
    assert ei.value.kind == "retryable"


def test_429_lockout_honoured_for_all_threads(emulator, zoho_config):
    import threading

    emulator.set_faults(rate_limit_per_minute=4, lockout_seconds=1, retry_after=True)
    client = ZohoClient(fast(zoho_config))  # deliberately paced above the emulator's limit
    errors, first_429 = [], []

    def lift_limit_after_first_429():
        while not client.stats.rate_limited:
            time.sleep(0.005)
        first_429.append(time.monotonic())
        emulator.set_faults(rate_limit_per_minute=100_000)  # the lockout (1 s) still stands

    def work():
        try:
            for _ in range(3):
                client.get("/customers")
        except ZohoError as e:  # pragma: no cover - reported below
            errors.append(e)

    watcher = threading.Thread(target=lift_limit_after_first_429)
    watcher.start()
    threads = [threading.Thread(target=work) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    watcher.join()
    done = time.monotonic()
    assert not errors
    assert done - first_429[0] >= 0.9  # the Retry-After was honoured
    # every 429 paused the whole process: only requests already in flight met the lockout, none were resent early
    assert 1 <= emulator.stats()["by_status"]["429"] == client.stats.rate_limited <= 3
    assert emulator.stats()["by_route"]["GET /customers"] == 9 + client.stats.rate_limited


def test_429_beyond_max_wait(emulator, zoho_config):
    emulator.set_faults(rate_limit_per_minute=1, lockout_seconds=120, retry_after=True)
    client = ZohoClient(fast(zoho_config, max_rate_limit_wait_s=2))
    client.get("/customers")
    t0 = time.monotonic()
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "rate_limited" and time.monotonic() - t0 < 1.5
    with pytest.raises(ZohoError) as ei:  # the pause is remembered: no further call is sent
        client.get("/customers")
    assert ei.value.kind == "rate_limited"
    assert client.stats.api_calls == 2


def test_daily_budget_shared_via_db_usage_store(emulator, zoho_config, sqlite_url):
    engine = sa.create_engine(sqlite_url)
    metadata.create_all(engine)
    store = DbUsageStore(engine)
    cfg = fast(zoho_config, daily_budget=25)
    # two "processes": separate limiters, one usage table
    a = ZohoClient(cfg, limiter=RateLimiter(10_000, 25, store, cfg.organization_id, flush_every=5))
    b = ZohoClient(cfg, limiter=RateLimiter(10_000, 25, store, cfg.organization_id, flush_every=5))
    sent = 0
    stopped = set()
    for _ in range(30):
        for name, c in (("a", a), ("b", b)):
            try:
                c.get("/customers")
                sent += 1
            except ZohoError as e:
                assert e.kind == "budget_exhausted" and e.path == "/customers"
                stopped.add(name)
    a.close()
    b.close()
    assert stopped == {"a", "b"}
    assert 25 <= sent <= 25 + 2 * 5
    api = sum(n for route, n in emulator.stats()["by_route"].items() if not route.startswith("POST /oauth"))
    assert api == sent
    engine.dispose()


PROCESS_SCRIPT = textwrap.dedent("""
    import sys, sqlalchemy as sa
    from zoho_pipeline.sync.stores import DbTokenStore
    from zoho_pipeline.zoho.client import ZohoClient
    from zoho_pipeline.zoho.config import ZohoConfig
    url, db = sys.argv[1], sys.argv[2]
    cfg = ZohoConfig(client_id="{client_id}", client_secret="{client_secret}", refresh_token="{refresh_token}",
                     organization_id="{organization_id}", api_base_url=url + "/billing/v1", accounts_url=url,
                     requests_per_minute=100000, daily_budget=10000000)
    client = ZohoClient(cfg, token_store=DbTokenStore(sa.create_engine(db)))
    for _ in range(5):
        client.get("/customers")
    print("ok", client.stats.token_refreshes)
""").format(**TEST_CREDENTIALS)


def test_token_shared_across_processes(emulator, db_url):
    engine = sa.create_engine(db_url)
    metadata.create_all(engine)
    engine.dispose()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, emulator.url, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert emulator.stats()["tokens_minted"] == 1
    assert sorted(o[0].split()[1] for o in outs) == ["0", "0", "1"]
    # and a client of this process reuses it too
    engine = sa.create_engine(db_url)
    import dataclasses

    from zoho_pipeline.zoho.config import ZohoConfig

    cfg = ZohoConfig(api_base_url=f"{emulator.url}/billing/v1", accounts_url=emulator.url, **TEST_CREDENTIALS)
    ZohoClient(dataclasses.replace(cfg), token_store=DbTokenStore(engine)).get("/customers")
    assert emulator.stats()["tokens_minted"] == 1
    engine.dispose()
