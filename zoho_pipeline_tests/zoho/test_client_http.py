"""ZohoClient against a tiny scripted HTTP server: exact fault shapes, classification, auth, secrets."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from zoho_pipeline.source.tables import metadata
from zoho_pipeline.sync.stores import DbTokenStore
from zoho_pipeline.zoho.auth import CachedToken, TokenProvider, token_cache_key
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.errors import ZohoError

SECRET = "stub-client-secret-77aa"
REFRESH = "1000.stub-refresh-token-0bd1"
ORG = "555000"


class Stub:
    """Scripted server. `script[(METHOD, path)]` is a list of actions consumed in order (the last one repeats):
    ("json", status, body[, headers]) | ("raw", status, bytes) | ("drop",)."""

    def __init__(self):
        self.script: dict[tuple[str, str], list] = {}
        self.requests: list[dict] = []
        self.minted = 0
        self.token_reply = None  # override the token endpoint's answer
        self.expires_in = 3600
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": url.path,
                        "query": parse_qs(url.query),
                        "headers": dict(self.headers),
                        "body": raw,
                    }
                )
                if url.path == "/oauth/v2/token":
                    if stub.token_reply is not None:
                        return self._send(*stub.token_reply)
                    form = parse_qs(raw.decode())
                    if form.get("refresh_token") != [REFRESH] or form.get("client_secret") != [SECRET]:
                        return self._send(200, {"error": "invalid_code"})
                    stub.minted += 1
                    return self._send(
                        200,
                        {
                            "access_token": f"1000.access-{stub.minted}-secretish",
                            "expires_in": stub.expires_in,
                            "api_domain": stub.url,
                            "token_type": "Bearer",
                        },
                    )
                actions = stub.script.get((self.command, url.path.removeprefix("/billing/v1")))
                if not actions:
                    return self._send(404, {"code": 5, "message": "Invalid URL Passed"})
                action = actions.pop(0) if len(actions) > 1 else actions[0]
                if action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action[0] == "raw":
                    return self._send(action[1], action[2])
                return self._send(action[1], action[2], *(action[3:] or ()))

            def _send(self, status, body, headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def on(self, method, path, *actions):
        self.script[(method, path)] = list(actions)

    def api_requests(self, method=None, path=None):
        return [
            r
            for r in self.requests
            if r["path"].startswith("/billing/v1")
            and (method is None or r["method"] == method)
            and (path is None or r["path"] == "/billing/v1" + path)
        ]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# each test starts with no process-wide limiter or cached token (conftest.fresh_zoho_process_state)
pytestmark = pytest.mark.usefixtures("fresh_zoho_process_state")


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.stop()


def config_for(url, **kw):
    base = dict(
        client_id="1000.STUB",
        client_secret=SECRET,
        refresh_token=REFRESH,
        organization_id=ORG,
        api_base_url=f"{url}/billing/v1",
        accounts_url=url,
        requests_per_minute=10_000,
        daily_budget=1_000_000,
        read_timeout_s=2.0,
        connect_timeout_s=1.0,
        retry_base_delay_s=0.01,
        max_rate_limit_wait_s=10.0,
    )
    base.update(kw)
    return ZohoConfig(**base)


OK_CUSTOMER = {"code": 0, "message": "success", "customer": {"customer_id": "9001"}}


def test_headers_token_cached_and_stats(stub):
    stub.on("GET", "/customers/9001", ("json", 200, OK_CUSTOMER))
    stub.on(
        "POST",
        "/customers",
        ("json", 201, {"code": 0, "message": "The customer has been created", "customer": {"customer_id": "9002"}}),
    )
    client = ZohoClient(config_for(stub.url))
    assert client.get("/customers/9001")["customer"]["customer_id"] == "9001"
    assert client.post("customers", json={"display_name": "A"})["customer"]["customer_id"] == "9002"
    client.get("/customers/9001?ignored=1")
    assert stub.minted == 1
    get, post = stub.api_requests("GET")[0], stub.api_requests("POST")[0]
    assert get["headers"]["Authorization"] == "Zoho-oauthtoken 1000.access-1-secretish"
    assert get["headers"]["X-com-zoho-subscriptions-organizationid"] == ORG
    assert get["headers"]["Accept"] == "application/json"
    assert post["headers"]["Content-Type"] == "application/json"
    assert json.loads(post["body"]) == {"display_name": "A"}
    s = client.stats.snapshot()
    assert s["api_calls"] == 3 and s["by_method"] == {"GET": 2, "POST": 1} and s["token_refreshes"] == 1
    # a second client of the same process reuses the cached token
    ZohoClient(config_for(stub.url)).get("/customers/9001")
    assert stub.minted == 1
    client.close()


def test_api_domain_from_token_when_no_override(stub):
    stub.on(
        "GET",
        "/organizations",
        (
            "json",
            200,
            {
                "code": 0,
                "message": "success",
                "organizations": [{"organization_id": "1", "name": "Other"}, {"organization_id": ORG, "name": "Ours"}],
            },
        ),
    )
    client = ZohoClient(config_for(stub.url, api_base_url=None, region="com"))
    assert client.check_connection()["name"] == "Ours"
    stub.on(
        "GET",
        "/organizations",
        ("json", 200, {"code": 0, "message": "success", "organizations": [{"organization_id": "1", "name": "Other"}]}),
    )
    with pytest.raises(ZohoError) as ei:
        client.check_connection()
    assert ei.value.kind == "auth"


def test_iter_list_follows_pages(stub):
    pages = [
        (
            "json",
            200,
            {
                "code": 0,
                "message": "success",
                "plans": [{"plan_code": f"p{i}"} for i in range(j, j + 2)],
                "page_context": {"page": j // 2 + 1, "per_page": 2, "has_more_page": j < 4},
            },
        )
        for j in (0, 2, 4)
    ]
    stub.on("GET", "/plans", *pages)
    client = ZohoClient(config_for(stub.url))
    codes = [p["plan_code"] for p in client.iter_list("/plans", "plans", params={"filter_by": "x"}, per_page=2)]
    assert codes == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert [r["query"]["page"] for r in stub.api_requests("GET")] == [["1"], ["2"], ["3"]]
    assert stub.api_requests("GET")[0]["query"]["filter_by"] == ["x"]


def test_bad_refresh_token_is_auth_error(stub):
    client = ZohoClient(config_for(stub.url, refresh_token="1000.wrong-refresh-token"))
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "auth" and "invalid_code" in str(ei.value)
    assert stub.api_requests() == []


def test_401_refreshes_once_and_retries(stub):
    stub.on(
        "GET",
        "/customers/9001",
        ("json", 401, {"code": 57, "message": "invalid OAuthToken"}),
        ("json", 200, OK_CUSTOMER),
    )
    client = ZohoClient(config_for(stub.url))
    assert client.get("/customers/9001")["code"] == 0
    assert stub.minted == 2 and client.stats.token_refreshes == 2 and client.stats.api_calls == 2
    auths = [r["headers"]["Authorization"] for r in stub.api_requests()]
    assert auths == ["Zoho-oauthtoken 1000.access-1-secretish", "Zoho-oauthtoken 1000.access-2-secretish"]


def test_second_401_is_auth_error(stub):
    stub.on("GET", "/customers/9001", ("json", 401, {"code": 57, "message": "invalid OAuthToken"}))
    client = ZohoClient(config_for(stub.url))
    with pytest.raises(ZohoError) as ei:
        client.get("/customers/9001")
    assert ei.value.kind == "auth" and ei.value.http_status == 401 and ei.value.code == 57
    assert len(stub.api_requests()) == 2 and stub.minted == 2


def test_403_is_auth(stub):
    stub.on("GET", "/customers", ("json", 403, {"code": 57, "message": "You are not authorized"}))
    with pytest.raises(ZohoError) as ei:
        ZohoClient(config_for(stub.url)).get("/customers")
    assert ei.value.kind == "auth" and len(stub.api_requests()) == 1


def test_envelope_code_nonzero_on_200_is_permanent(stub):
    stub.on("POST", "/invoices", ("json", 200, {"code": 1001, "message": "Invoice number already exists"}))
    with pytest.raises(ZohoError) as ei:
        ZohoClient(config_for(stub.url)).post("/invoices", json={})
    e = ei.value
    assert (e.kind, e.code, e.http_status, e.method, e.path) == ("permanent", 1001, 200, "POST", "/invoices")
    assert "Invoice number already exists" in str(e)


def test_400_with_code_is_permanent_not_retried(stub):
    stub.on("GET", "/plans/nope", ("json", 400, {"code": 101002, "message": "Invalid PlanCode."}))
    client = ZohoClient(config_for(stub.url))
    with pytest.raises(ZohoError) as ei:
        client.get("/plans/nope", params={"secret_param": "x"})
    assert ei.value.kind == "permanent" and ei.value.code == 101002 and ei.value.path == "/plans/nope"
    assert ei.value.error_code == "101002"
    assert len(stub.api_requests()) == 1


def test_5xx_on_get_retried_then_ok(stub):
    stub.on(
        "GET",
        "/customers",
        ("json", 500, {"code": 1000, "message": "Internal error"}),
        ("raw", 502, b"<html>bad gateway</html>"),
        ("json", 200, {"code": 0, "customers": []}),
    )
    client = ZohoClient(config_for(stub.url))
    assert client.get("/customers")["customers"] == []
    assert client.stats.api_calls == 3 and client.stats.retries == 2


def test_5xx_on_get_exhausted_is_retryable(stub):
    stub.on("GET", "/customers", ("json", 503, {"code": 1000, "message": "Internal error"}))
    client = ZohoClient(config_for(stub.url, max_retries=2))
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "retryable" and ei.value.http_status == 503
    assert len(stub.api_requests()) == 3


def test_5xx_on_post_is_ambiguous_and_not_resent(stub):
    stub.on("POST", "/customers", ("raw", 500, b"oops, not json"))
    with pytest.raises(ZohoError) as ei:
        ZohoClient(config_for(stub.url)).post("/customers", json={"display_name": "A"})
    assert ei.value.kind == "ambiguous" and ei.value.http_status == 500 and ei.value.may_have_acted
    assert len(stub.api_requests("POST")) == 1


def test_dropped_response_on_post_is_ambiguous(stub):
    stub.on("POST", "/customers", ("drop",))
    with pytest.raises(ZohoError) as ei:
        ZohoClient(config_for(stub.url)).post("/customers", json={"display_name": "A"})
    assert ei.value.kind == "ambiguous" and ei.value.http_status is None
    assert len(stub.api_requests("POST")) == 1


def test_dropped_response_on_get_is_retried(stub):
    stub.on("GET", "/customers", ("drop",), ("json", 200, {"code": 0, "customers": [{"customer_id": "1"}]}))
    assert ZohoClient(config_for(stub.url)).get("/customers")["customers"][0]["customer_id"] == "1"


def test_read_timeout_on_put_is_ambiguous(stub):
    stub.on("PUT", "/customers/1", ("json", 200, OK_CUSTOMER))
    client = ZohoClient(config_for(stub.url, read_timeout_s=0.3))
    client.tokens.get()
    orig = stub.server.RequestHandlerClass._handle

    def slow(self):
        time.sleep(0.8)
        return orig(self)

    stub.server.RequestHandlerClass.do_PUT = slow
    with pytest.raises(ZohoError) as ei:
        client.put("/customers/1", json={"x": 1})
    assert ei.value.kind == "ambiguous"


def test_connection_refused_is_retryable(stub):
    stub.on("GET", "/customers", ("json", 200, {"code": 0}))
    client = ZohoClient(config_for(stub.url))
    client.tokens.get()  # token from the live stub
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    client.config = client.config  # noqa: B018 - config is frozen; point the API elsewhere:
    object.__setattr__(client.config, "api_base_url", f"http://127.0.0.1:{closed_port}/billing/v1")
    for method in ("GET", "POST"):
        with pytest.raises(ZohoError) as ei:
            client.request(method, "/customers", json={} if method == "POST" else None)
        assert ei.value.kind == "retryable", method
    assert client.stats.retries == 2 * client.config.max_retries


def test_429_retry_after_pauses_all_threads(stub):
    stub.on(
        "GET",
        "/customers",
        ("json", 429, {"code": 45, "message": "too many requests"}, {"Retry-After": "1"}),
        ("json", 200, {"code": 0, "customers": []}),
    )
    stub.on("GET", "/plans", ("json", 200, {"code": 0, "plans": []}))
    client = ZohoClient(config_for(stub.url))
    client.tokens.get()
    t0 = time.monotonic()
    done = {}

    def other():
        time.sleep(0.2)  # starts while the pause is in force
        client.get("/plans")
        done["plans"] = time.monotonic() - t0

    th = threading.Thread(target=other)
    th.start()
    assert client.get("/customers")["code"] == 0
    elapsed = time.monotonic() - t0
    th.join()
    assert 0.95 <= elapsed < 3
    assert done["plans"] >= 0.95  # the other thread waited for the lockout too
    assert client.stats.rate_limited == 1 and client.stats.waited_s >= 0.7


def test_429_beyond_max_wait_is_rate_limited(stub):
    stub.on("GET", "/customers", ("json", 429, {"code": 45, "message": "too many"}, {"Retry-After": "120"}))
    client = ZohoClient(config_for(stub.url, max_rate_limit_wait_s=5))
    t0 = time.monotonic()
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "rate_limited" and ei.value.retry_after_s == 120
    assert time.monotonic() - t0 < 1


def test_429_without_retry_after_backs_off(stub):
    stub.on(
        "GET",
        "/customers",
        ("json", 429, {"code": 45, "message": "too many"}),
        ("json", 429, {"code": 45, "message": "too many"}),
        ("json", 200, {"code": 0}),
    )
    client = ZohoClient(config_for(stub.url, rate_limit_backoff_s=0.1))
    t0 = time.monotonic()
    assert client.get("/customers")["code"] == 0
    assert 0.28 <= time.monotonic() - t0 < 2  # 0.1 + 0.2
    assert client.stats.rate_limited == 2


def test_budget_exhausted_before_send(stub):
    stub.on("GET", "/customers", ("json", 200, {"code": 0}))
    client = ZohoClient(config_for(stub.url, daily_budget=2))
    client.get("/customers")
    client.get("/customers")
    with pytest.raises(ZohoError) as ei:
        client.get("/customers")
    assert ei.value.kind == "budget_exhausted" and ei.value.path == "/customers"
    assert len(stub.api_requests()) == 2


def test_refresh_before_expiry(stub):
    stub.expires_in = 2.5
    stub.on("GET", "/customers", ("json", 200, {"code": 0}))
    client = ZohoClient(config_for(stub.url, refresh_margin_s=2.0))
    client.get("/customers")
    client.get("/customers")
    assert stub.minted == 1
    time.sleep(0.6)
    client.get("/customers")
    assert stub.minted == 2


def test_token_refresh_rate_limited_by_accounts(stub):
    stub.token_reply = (
        400,
        {
            "error_description": "You have made too many requests continuously.",
            "error": "Access Denied",
            "status": "failure",
        },
    )
    with pytest.raises(ZohoError) as ei:
        ZohoClient(config_for(stub.url)).get("/customers")
    assert ei.value.kind == "rate_limited"


def test_concurrent_first_calls_mint_once(stub):
    stub.on("GET", "/customers", ("json", 200, {"code": 0}))
    client = ZohoClient(config_for(stub.url))
    threads = [threading.Thread(target=client.get, args=("/customers",)) for _ in range(12)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert stub.minted == 1 and client.stats.api_calls == 12


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_db_token_store_waits_for_other_process(stub, kind, request):
    url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "pg_url")
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    store = DbTokenStore(engine)
    cfg = config_for(stub.url)
    key = token_cache_key(cfg.client_id, cfg.refresh_token, cfg.token_url)
    assert store.acquire_refresh_lock(key, "other-process", 30)  # another process is refreshing
    from datetime import datetime, timedelta

    def other_process_finishes():
        time.sleep(0.4)
        store.save(key, CachedToken("1000.from-other-process", datetime.now(UTC) + timedelta(hours=1), stub.url))
        store.release_refresh_lock(key, "other-process")

    threading.Thread(target=other_process_finishes).start()
    token = TokenProvider(cfg, store).get()
    assert token.access_token == "1000.from-other-process" and stub.minted == 0
    engine.dispose()


def test_secrets_never_in_logs_reprs_or_errors(stub, caplog):
    caplog.set_level(logging.DEBUG)
    stub.on(
        "GET",
        "/customers",
        ("json", 401, {"code": 57, "message": "invalid OAuthToken"}),
        ("json", 429, {"code": 45, "message": "slow down"}, {"Retry-After": "0.1"}),
        ("json", 500, {"code": 1000, "message": "Internal error"}),
        ("json", 200, {"code": 0}),
    )
    stub.on("POST", "/customers", ("json", 400, {"code": 1038, "message": f"bad {SECRET}"}))
    cfg = config_for(stub.url)
    client = ZohoClient(cfg)
    client.get("/customers")
    texts = [
        repr(cfg),
        str(cfg),
        repr(client),
        repr(client.tokens),
        repr(client.tokens.get()),
        str(client.tokens.get()),
        repr(client.stats),
        repr(client.limiter),
    ]
    with pytest.raises(ZohoError) as ei:
        client.post("/customers", json={})
    texts += [str(ei.value), repr(ei.value)]
    bad = ZohoClient(config_for(stub.url, refresh_token="1000.another-secret-refresh"))
    with pytest.raises(ZohoError) as ei2:
        bad.get("/customers")
    texts += [str(ei2.value), repr(ei2.value), caplog.text]
    tokens = [f"1000.access-{i}-secretish" for i in range(1, stub.minted + 1)]
    for secret in [SECRET, REFRESH, "1000.another-secret-refresh", *tokens]:
        for text in texts:
            assert secret not in text
    assert "429" in caplog.text and "refresh" in caplog.text


def test_an_exchange_never_shows_the_clients_secrets_even_when_zoho_echoes_them(stub, tmp_path):
    """The observer (the API call inspector) gets the bytes on the wire with the client's secrets masked: what it
    reads of a body, and what the inspector stores of it, holds no secret (the masking is done when a body is
    read, so the secrets are the ones of the call, captured with it)."""
    from zoho_pipeline.source.database import make_engine
    from zoho_pipeline.source.tables import zoho_api_calls
    from zoho_pipeline.sync.inspector import CallRecorder

    echo = {"code": 1038, "message": f"bad {SECRET} {REFRESH} 1000.access-1-secretish", "refresh_token": "x"}
    stub.on("POST", "/customers", ("json", 400, echo))
    client = ZohoClient(config_for(stub.url))
    seen, recorder = [], CallRecorder("run", 100, all_bodies=True)
    client.observer = lambda x: (seen.append(x), recorder.observe(x))
    with pytest.raises(ZohoError):
        client.post("/customers", json={"display_name": f"A {SECRET}"})
    [exchange] = seen
    assert exchange.zoho_code == 1038 and exchange.status == 400
    shown = exchange.request + exchange.response + repr(exchange).encode()
    for secret in (SECRET, REFRESH, "1000.access-1-secretish"):
        assert secret.encode() not in shown
    assert exchange.response.count(b"***") == 3

    engine = make_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    metadata.create_all(engine, tables=[zoho_api_calls])
    with engine.begin() as conn:
        recorder.write(conn, [])  # the call was made outside a row: it goes with the next write
    with engine.connect() as conn:
        text = repr(conn.execute(sa.select(zoho_api_calls)).all())
    assert "bad ***" in text and '"refresh_token": "***"' in text
    for secret in (SECRET, REFRESH, "1000.access-1-secretish"):
        assert secret not in text
    engine.dispose()


def test_broken_token_store_degrades_to_local_refresh(stub):
    class Broken:
        def load(self, key):
            raise RuntimeError("db down")

        save = acquire_refresh_lock = release_refresh_lock = lambda self, *a: (_ for _ in ()).throw(
            RuntimeError("db down")
        )

    stub.on("GET", "/customers", ("json", 200, {"code": 0}))
    client = ZohoClient(config_for(stub.url), token_store=Broken())
    client.get("/customers")
    client.get("/customers")
    assert stub.minted == 1
