"""ZohoClient: one requests.Session, OAuth headers, pacing, envelope parsing and error classification."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from zoho_pipeline.env import text

from .auth import TokenProvider, TokenStore
from .config import ZohoConfig
from .envelope import WRITE_METHODS, decode_body, parse_envelope
from .errors import AMBIGUOUS, AUTH, RATE_LIMITED, RETRYABLE, ZohoError, never_sent
from .exchange import Exchange, Observer
from .limiter import PaceStore, RateLimiter, UsageStore
from .redact import redact

log = logging.getLogger("zoho_pipeline.zoho")


class ClientStats:
    """Thread-safe counters of one client."""

    def __init__(self):
        self._lock = threading.Lock()
        self.api_calls = 0  # every HTTP request sent to /billing/v1, retries included
        self.by_method: Counter = Counter()
        self.rate_limited = 0  # 429s received
        self.retries = 0
        self.token_refreshes = 0
        self.waited_s = 0.0  # time spent waiting on the limiter

    def _add(self, **kw):
        with self._lock:
            for name, value in kw.items():
                setattr(self, name, getattr(self, name) + value)

    def _call(self, method: str):
        with self._lock:
            self.api_calls += 1
            self.by_method[method] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "api_calls": self.api_calls,
                "by_method": dict(self.by_method),
                "rate_limited": self.rate_limited,
                "retries": self.retries,
                "token_refreshes": self.token_refreshes,
                "waited_s": round(self.waited_s, 3),
            }

    def __repr__(self):
        return f"ClientStats({self.snapshot()})"


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class ZohoClient:
    def __init__(
        self,
        config: ZohoConfig,
        token_store: TokenStore | None = None,
        usage_store: UsageStore | None = None,
        limiter: RateLimiter | None = None,
        pace_store: PaceStore | None = None,
        session: requests.Session | None = None,
    ):
        self.config = config
        self.stats = ClientStats()
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # read proxies and the CA bundle from the environment once, not on every call (a third of the
            # engine's CPU per row in the overhead benchmark); HTTPS_PROXY / NO_PROXY keep working
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(config.base_url))
            session.verify = text("REQUESTS_CA_BUNDLE") or text("CURL_CA_BUNDLE") or True
        self.session = session
        self.limiter = limiter or RateLimiter.for_organization(
            config.organization_id, config.requests_per_minute, config.daily_budget, usage_store, pace_store
        )
        self.tokens = TokenProvider(config, token_store, session, on_refresh=lambda: self.stats._add(token_refreshes=1))
        self._timeout = (config.connect_timeout_s, config.read_timeout_s)
        self.observer: Observer | None = None  # told of every exchange with the API (the engine's inspector)
        self._secrets_cache: tuple = (None, ())

    def __repr__(self):
        return f"ZohoClient(organization_id={self.config.organization_id!r}, base_url={self.config.base_url!r})"

    # --- verbs --------------------------------------------------------------------------------------------
    def get(self, path: str, params: dict | None = None) -> dict:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, params: dict | None = None) -> dict:
        return self.request("POST", path, json=json, params=params)

    def put(self, path: str, json: Any = None, params: dict | None = None) -> dict:
        return self.request("PUT", path, json=json, params=params)

    def delete(self, path: str, params: dict | None = None) -> dict:
        return self.request("DELETE", path, params=params)

    def iter_list(self, path: str, key: str, params: dict | None = None, per_page: int = 200) -> Iterator[dict]:
        page = 1
        while True:
            body = self.get(path, params={**(params or {}), "page": page, "per_page": per_page})
            yield from body.get(key) or []
            if not (body.get("page_context") or {}).get("has_more_page"):
                return
            page += 1

    def check_connection(self) -> dict:
        """The organization of config.organization_id, proving the credentials work; else ZohoError(auth)."""
        body = self.get("/organizations")
        for org in body.get("organizations") or []:
            if str(org.get("organization_id")) == str(self.config.organization_id):
                return org
        raise ZohoError(
            kind=AUTH,
            message=f"organization {self.config.organization_id} is not accessible with these credentials",
            method="GET",
            path="/organizations",
        )

    def close(self) -> None:
        try:
            self.limiter.flush()
            self.limiter.release_lease()
        finally:
            if self._own_session:
                self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the one request loop -----------------------------------------------------------------------------
    def _base_url(self, token) -> str:
        if self.config.api_base_url or not token.api_domain:
            return self.config.base_url
        return token.api_domain.rstrip("/") + "/billing/v1"

    def _backoff(self, attempt: int) -> float:
        delay = self.config.retry_base_delay_s * (2**attempt)
        return delay * random.uniform(0.75, 1.25)

    def _secrets(self) -> tuple:
        return self.tokens.secrets

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None) -> dict:
        method = method.upper()
        path = "/" + path.split("?", 1)[0].lstrip("/")
        cfg = self.config
        retries = 0  # transparent retries spent (5xx on reads, connection failures)
        auth_retried = False
        n429 = 0
        rate_waited = 0.0

        def error(kind, message, **kw):
            return ZohoError(kind=kind, message=redact(message, self._secrets()), method=method, path=path, **kw)

        while True:
            token = self.tokens.get()
            try:
                waited = self.limiter.acquire(max_wait_s=max(0.0, cfg.max_rate_limit_wait_s - rate_waited))
            except ZohoError as exc:
                raise dataclasses.replace(exc, method=method, path=path) from None
            if waited > 0:
                self.stats._add(waited_s=waited)
                rate_waited += waited
            headers = {
                **self.session.headers,
                "Authorization": f"Zoho-oauthtoken {token.access_token}",
                "X-com-zoho-subscriptions-organizationid": str(cfg.organization_id),
                "Accept": "application/json",
            }
            self.stats._call(method)
            sent_at, started, prepared = time.time(), time.monotonic(), None
            try:
                # prepared here, with the session's headers and hooks: Session.request's general merging (cookies,
                # environment settings, none of which ZOHO uses) cost a quarter of a call's CPU; send() still
                # applies the session's proxies and CA bundle
                prepared = requests.Request(
                    method,
                    self._base_url(token) + path,
                    params=params,
                    json=json,
                    headers=headers,
                    hooks=self.session.hooks,
                ).prepare()
                resp = self.session.send(prepared, timeout=self._timeout)
            except requests.RequestException as exc:
                what = type(exc).__name__
                self._observe(sent_at, started, method, path, params, prepared and prepared.body, None, None, what)
                if never_sent(exc):
                    if retries < cfg.max_retries:
                        retries += 1
                        self._retry(method, path, f"connection failed ({what})", retries)
                        continue
                    raise error(RETRYABLE, f"could not connect to ZOHO ({what})", unreachable=True) from None
                if method not in WRITE_METHODS:
                    if retries < cfg.max_retries:
                        retries += 1
                        self._retry(method, path, f"no response ({what})", retries)
                        continue
                    raise error(RETRYABLE, f"no response from ZOHO ({what})") from None
                log.warning("zoho %s %s: sent but no response (%s): outcome unknown", method, path, what)
                raise error(AMBIGUOUS, f"request sent but no response ({what}); ZOHO may have acted") from None

            status = resp.status_code
            self._observe(sent_at, started, method, path, params, prepared.body, status, resp.content, None)
            if status == 401:
                if not auth_retried:
                    auth_retried = True
                    self.stats._add(retries=1)
                    log.info("zoho %s %s: 401, refreshing the access token and retrying once", method, path)
                    self.tokens.invalidate(token)
                    continue
                raise self._parse_error(resp, method, path, AUTH)
            if status == 429:
                n429 += 1
                self.stats._add(rate_limited=1)
                after = _retry_after(resp)
                wait = after if after is not None else cfg.rate_limit_backoff_s * (2 ** (n429 - 1))
                self.limiter.pause_for(wait)  # everyone in the process holds back, even if we give up
                if rate_waited + wait > cfg.max_rate_limit_wait_s:
                    log.warning(
                        "zoho %s %s: 429, ZOHO asks %.1fs, beyond the %.0fs we may wait",
                        method,
                        path,
                        wait,
                        cfg.max_rate_limit_wait_s,
                    )
                    raise error(
                        RATE_LIMITED, f"ZOHO rate limit: retry after {wait:.0f}s", http_status=429, retry_after_s=wait
                    )
                log.warning(
                    "zoho %s %s: 429, pausing all requests for the organization for %.1fs%s",
                    method,
                    path,
                    wait,
                    "" if after is not None else " (no Retry-After, backing off)",
                )
                continue
            if status >= 500:
                if method not in WRITE_METHODS and retries < cfg.max_retries:
                    retries += 1
                    self._retry(method, path, f"HTTP {status}", retries)
                    continue
                if method in WRITE_METHODS:
                    log.warning("zoho %s %s: HTTP %d after send: outcome unknown", method, path, status)
            return parse_envelope(
                status,
                resp.content,
                method=method,
                path=path,
                secrets=self._secrets(),
                retry_after_s=_retry_after(resp) if status == 429 else None,
            )

    def _observe(self, sent_at, started, method, path, params, body, status, content, error) -> None:
        observer = self.observer
        if observer is None:
            return
        duration_ms = int((time.monotonic() - started) * 1000)
        secrets = self._encoded_secrets()  # the exchange masks them when its bodies are read
        try:
            observer(Exchange(sent_at, method, path, params, body, status, content, duration_ms, error, secrets))
        except Exception:  # watching must never break a call
            log.exception("the exchange observer failed for %s %s", method, path)

    def _encoded_secrets(self) -> tuple[bytes, ...]:
        plain = self._secrets()
        cached = self._secrets_cache
        if cached[0] != plain:  # the access token changes about hourly
            self._secrets_cache = cached = (plain, tuple(s.encode() for s in plain if s and len(s) >= 4))
        return cached[1]

    def _retry(self, method, path, why, attempt):
        delay = self._backoff(attempt - 1)
        self.stats._add(retries=1)
        log.info("zoho %s %s: %s, retry %d/%d in %.2fs", method, path, why, attempt, self.config.max_retries, delay)
        time.sleep(delay)

    def _parse_error(self, resp, method, path, kind) -> ZohoError:
        try:
            parse_envelope(resp.status_code, resp.content, method=method, path=path, secrets=self._secrets())
        except ZohoError as exc:
            return dataclasses.replace(exc, kind=kind)
        data = decode_body(resp.content)
        return ZohoError(
            kind=kind,
            message=f"HTTP {resp.status_code}",
            http_status=resp.status_code,
            code=data.get("code") if isinstance(data, dict) else None,
            method=method,
            path=path,
        )
