"""OAuth access tokens: refresh-token grant, a cache shared across threads and processes, one refresh at a time.

ZOHO mints at most 10 access tokens per refresh token per 10 minutes, so a token is cached in a `TokenStore`
(process-wide memory by default; the database across processes, see zoho_pipeline.sync.stores) and refreshed
`refresh_margin_s` before it expires by exactly one thread of one process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import requests

from .envelope import decode_body
from .errors import AUTH, RATE_LIMITED, RETRYABLE, ZohoError, never_sent
from .redact import redact, short
from .token_fallback import LocalTokenFallback

log = logging.getLogger("zoho_pipeline.zoho")


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: datetime  # UTC, aware
    api_domain: str | None = None

    def __repr__(self) -> str:
        return f"CachedToken(access_token='***', expires_at={self.expires_at.isoformat()!r}, api_domain={self.api_domain!r})"

    __str__ = __repr__

    def valid_for(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()


@runtime_checkable
class TokenStore(Protocol):
    def load(self, key: str) -> CachedToken | None: ...

    def save(self, key: str, token: CachedToken) -> None: ...

    def acquire_refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool: ...

    def release_refresh_lock(self, key: str, owner: str) -> None: ...


class MemoryTokenStore:
    """Process-wide token cache: every instance shares the same dict (one process = one cache)."""

    _tokens: dict[str, CachedToken] = {}
    _locks: dict[str, tuple[str, float]] = {}
    _mutex = threading.Lock()

    def load(self, key):
        with self._mutex:
            return self._tokens.get(key)

    def save(self, key, token):
        with self._mutex:
            self._tokens[key] = token

    def acquire_refresh_lock(self, key, owner, ttl_s):
        now = time.monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held and held[0] != owner and held[1] > now:
                return False
            self._locks[key] = (owner, now + ttl_s)
            return True

    def release_refresh_lock(self, key, owner):
        with self._mutex:
            if self._locks.get(key, (None,))[0] == owner:
                del self._locks[key]

    @classmethod
    def clear(cls):
        with cls._mutex:
            cls._tokens.clear()
            cls._locks.clear()

    def __repr__(self):
        return "MemoryTokenStore()"


def token_cache_key(client_id: str, refresh_token: str, token_url: str) -> str:
    return hashlib.sha256((client_id + refresh_token + token_url).encode()).hexdigest()[:32]


def utcnow() -> datetime:
    return datetime.now(UTC)


# One in-process lock per cache key, so two clients of one process never refresh the same token twice.
_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_MUTEX = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _KEY_LOCKS_MUTEX:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


class TokenProvider:
    """Hands out a valid access token; refreshes it (once, for everyone) when it is near expiry or rejected."""

    LOCK_TTL_S = 30.0
    POLL_S = 0.1

    def __init__(
        self,
        config,
        store: TokenStore | None = None,
        session: requests.Session | None = None,
        now: Callable[[], datetime] = utcnow,
        on_refresh: Callable[[], None] | None = None,
    ):
        self.config = config
        self.store = store if store is not None else MemoryTokenStore()
        self.session = session or requests.Session()
        self.now = now
        self.on_refresh = on_refresh
        self.key = token_cache_key(config.client_id, config.refresh_token, config.token_url)
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._token: CachedToken | None = None
        self._rejected: set[str] = set()  # access tokens ZOHO answered 401 to
        self._lock = _key_lock(self.key)
        self._store_down = False  # the shared store failed: the host's fallback keeps and rations tokens
        self.fallback = LocalTokenFallback()

    def __repr__(self):
        return f"TokenProvider(client_id={self.config.client_id!r}, key={self.key[:8]}…)"

    # --- public -------------------------------------------------------------------------------------------
    def get(self) -> CachedToken:
        token = self._token
        if self._usable(token):
            return token
        with self._lock:
            token = self._token
            if self._usable(token):
                return token
            token = self._load_usable()
            if token is None:
                token = self._refresh_across_processes()
            self._token = token
            return token

    def invalidate(self, token: CachedToken) -> None:
        """ZOHO rejected `token` (401): never hand it out again."""
        with self._lock:
            self._rejected.add(token.access_token)
            if self._token is not None and self._token.access_token == token.access_token:
                self._token = None

    @property
    def secrets(self) -> tuple[str, ...]:
        t = self._token
        return (self.config.client_secret, self.config.refresh_token) + ((t.access_token,) if t else ())

    # --- internals ----------------------------------------------------------------------------------------
    def _usable(self, token: CachedToken | None) -> bool:
        return (
            token is not None
            and token.access_token not in self._rejected
            and token.valid_for(self.now()) > self.config.refresh_margin_s
        )

    def _load_usable(self) -> CachedToken | None:
        try:
            token = self.store.load(self.key)
            self._store_down = False
        except Exception as exc:  # noqa: BLE001 - a broken cache must not stop the API calls
            log.warning("zoho token: token store unavailable on load (%s)", type(exc).__name__)
            self._store_down = True
            token = self._load_fallback()
        return token if self._usable(token) else None

    def _load_fallback(self) -> CachedToken | None:
        found = self.fallback.load(self.key)
        if not found:
            return None
        access_token, expires_at, api_domain = found
        return CachedToken(access_token, datetime.fromisoformat(expires_at), api_domain)

    def _try_lock(self) -> bool:
        try:
            return bool(self.store.acquire_refresh_lock(self.key, self.owner, self.LOCK_TTL_S))
        except Exception as exc:  # noqa: BLE001 - refresh under the in-process lock only
            log.warning(
                "zoho token: token store unavailable for the refresh lock (%s); refreshing anyway", type(exc).__name__
            )
            self._store_down = True
            return True

    def _refresh_across_processes(self) -> CachedToken:
        deadline = time.monotonic() + self.config.token_lock_wait_s
        while True:
            if self._try_lock():
                try:
                    token = self._load_usable()  # another process may have refreshed meanwhile
                    if token is None:
                        token = self._mint_rationed() if self._store_down else self._mint()
                        try:
                            self.store.save(self.key, token)
                        except Exception as exc:  # noqa: BLE001
                            log.warning("zoho token: could not save the token to the store (%s)", type(exc).__name__)
                            if not self._store_down:  # the store failed only now: keep the token on the host
                                self._store_down = True
                                self.fallback.reserve_mint(self.key)  # counted, though it could not be refused
                                self._keep_on_host(token)
                    return token
                finally:
                    try:
                        self.store.release_refresh_lock(self.key, self.owner)
                    except Exception:  # noqa: BLE001 - the lock expires by itself
                        log.warning(
                            "zoho token: could not release the refresh lock; it expires in %.0fs", self.LOCK_TTL_S
                        )
            # another process is refreshing: wait for its token to land in the store
            while time.monotonic() < deadline:
                time.sleep(self.POLL_S)
                token = self._load_usable()
                if token is not None:
                    log.info("zoho token: using the token refreshed by another process")
                    return token
                if self._try_lock():
                    break  # the other process gave up (or died): we hold the lock now, refresh ourselves  # the other process gave up (or died): try to refresh ourselves
            else:
                raise ZohoError(
                    kind=RETRYABLE,
                    message="timed out waiting for another process to refresh the ZOHO access token",
                    method="POST",
                    path="/oauth/v2/token",
                )

    def _mint_rationed(self) -> CachedToken:
        """A mint without the shared cache: counted in the host's ledger, refused past its share of ZOHO's limit."""
        wait = self.fallback.reserve_mint(self.key)
        if wait:
            raise ZohoError(
                kind=RETRYABLE,
                message=(
                    "not minting a ZOHO access token: the shared token cache (source database) is down and this host "
                    f"has minted its share of ZOHO's 10 per 10 minutes; next in {wait:.0f}s"
                ),
                method="POST",
                path="/oauth/v2/token",
                retry_after_s=wait,
            )
        token = self._mint()
        self._keep_on_host(token)
        return token

    def _keep_on_host(self, token: CachedToken) -> None:
        try:
            self.fallback.save(self.key, token.access_token, token.expires_at, token.api_domain)
        except OSError as exc:
            log.warning("zoho token: could not keep the token on this host (%s)", type(exc).__name__)

    def _mint(self) -> CachedToken:
        cfg = self.config
        path = "/oauth/v2/token"
        secrets = (cfg.client_secret, cfg.refresh_token)
        data = {
            "grant_type": "refresh_token",
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "refresh_token": cfg.refresh_token,
        }
        started = time.monotonic()
        try:
            resp = self.session.post(
                cfg.token_url,
                data=data,
                headers={"Accept": "application/json"},
                timeout=(cfg.connect_timeout_s, cfg.read_timeout_s),
            )
        except requests.RequestException as exc:
            raise ZohoError(
                kind=RETRYABLE,
                message=f"token refresh failed: {type(exc).__name__}",
                method="POST",
                path=path,
                unreachable=never_sent(exc),
            ) from None
        body = decode_body(resp.content)
        if isinstance(body, dict) and body.get("access_token"):
            try:
                expires_in = float(body.get("expires_in") or 3600)
            except (TypeError, ValueError):
                expires_in = 3600.0
            token = CachedToken(
                access_token=str(body["access_token"]),
                expires_at=self.now() + timedelta(seconds=expires_in),
                api_domain=(body.get("api_domain") or None),
            )
            if self.on_refresh:
                self.on_refresh()
            log.info(
                "zoho token: refreshed key=%s… expires_in=%.0fs in %.0fms",
                self.key[:8],
                expires_in,
                (time.monotonic() - started) * 1000,
            )
            return token
        error = ""
        if isinstance(body, dict):
            error = short(redact(str(body.get("error_description") or body.get("error") or ""), secrets), 120)
        status = resp.status_code
        lowered = error.lower()
        if status == 429 or "too many" in lowered or "access denied" in lowered:
            kind, retry_after = RATE_LIMITED, 60.0
        elif status >= 500:
            kind, retry_after = RETRYABLE, None
        else:
            kind, retry_after = AUTH, None
        log.error("zoho token: refresh failed key=%s… status=%s error=%s", self.key[:8], status, error or "-")
        raise ZohoError(
            kind=kind,
            message=f"token refresh failed: {error or 'no access_token in response'}",
            http_status=status,
            method="POST",
            path=path,
            retry_after_s=retry_after,
        )
