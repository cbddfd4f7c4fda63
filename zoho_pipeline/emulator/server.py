"""HTTP plumbing for the ZOHO Billing emulator: config, auth, limits, faults, admin, and the programmatic handle.

Standard library only; imports nothing from ``zoho_pipeline.zoho`` or ``zoho_pipeline.sync`` (it is the other side of
the wire). See ``api`` for the ZOHO modules and ``state.Store`` for the data kept.
"""

from __future__ import annotations

import collections
import json
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import admin, api, schedule, tokens
from .api.common import Ctx
from .clock import iso, parse_time
from .errors import ApiError
from .faults import SETTABLE, Faults
from .limits import Limiter
from .state import Store

API_PREFIX = "/billing/v1"
ADMIN_PREFIX = "/__emulator__"
TOKEN_PATH = "/oauth/v2/token"
ORG_HEADER = "X-com-zoho-subscriptions-organizationid"
NO_ORG_HEADER = ("/organizations",)
JOURNAL_SIZE = 1000  # API requests kept for GET /__emulator__/requests (what the emulator received, answered)


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    client_id: str = "1000.EMULATOR"
    client_secret: str = "emulator-secret"
    refresh_token: str = "1000.emulator-refresh"
    organization_id: str = "10234695"
    rate_limit_per_minute: int = 100
    daily_limit: int = 10_000
    max_concurrency: int = 10
    lockout_seconds: float = 300
    token_lifetime: int = 3600
    latency_ms: float = 0
    jitter_ms: float = 0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None
    state_file: str | None = None
    retry_after: bool = True
    token_mint_limit: int = 10
    token_mint_window_s: float = 600
    duplicate_email: str = "allow"  # "allow" | "reject"
    drop_mode: str = "reset"  # "reset": close without a response | "hang": wait drop_hang_s, then close
    drop_hang_s: float = 30.0
    storm_rate_limit_per_minute: int | None = None  # while a storm lasts, the per-minute limit is cut to this
    storm_seconds: float = 0
    early_token_expiry_s: float | None = None  # tokens really die after this, though expires_in says lifetime
    # each access token is accepted this many times, then dies (401, code 14) whatever the time: a death mid-run
    # at a point set by the calls made, not by how fast the machine is (read at each check: lowering it applies
    # to the tokens already issued)
    token_max_uses: int | None = None
    start_time: str | None = None  # ZOHO's clock at start (ISO-8601); default the wall clock; a state file's wins
    prorate: bool = False  # the organization's Prorated Billing setting (immediate plan changes raise documents)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.requests = 0
            self.by_status: collections.Counter = collections.Counter()
            self.by_route: collections.Counter = collections.Counter()
            self.counters = collections.Counter(
                {"tokens_minted": 0, "dropped": 0, "failed_injected": 0, "rate_limited": 0}
            )
            self.journal: collections.deque = collections.deque(maxlen=JOURNAL_SIZE)

    def record(self, route: str, status: int | None) -> None:
        with self.lock:
            self.requests += 1
            self.by_route[route] += 1
            if status is not None:
                self.by_status[str(status)] += 1

    def log_request(self, method, path, query, raw: bytes, status, response) -> None:
        """One API request as received (body as sent) and answered (`status` None: the response was dropped)."""
        entry = {
            "method": method,
            "path": path,
            "query": query,
            "body": raw.decode("utf-8", "replace"),
            "status": status,
            "response": response,
        }
        with self.lock:
            self.journal.append(entry)

    def bump(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1


class Emulator:
    """Everything a request handler needs; one per running server."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        start = parse_time(config.start_time) if config.start_time else None
        self.store = Store(config.state_file, start=start)
        self.faults = Faults(config)
        self.limiter = Limiter(self.faults)
        self.stats = Stats()
        self.url = ""
        if start is not None and start > self.store.clock.now():  # a later --start-time moves a saved clock on
            self.move_clock(start)

    def context(self) -> Ctx:
        return Ctx(self.store, self.config, {}, {}, {}, self.url)

    def clock(self) -> dict:
        with self.store.lock:
            return {"now": iso(self.store.clock.now())}

    def move_clock(self, to) -> dict:
        """Move ZOHO's clock forward to `to`, running the scheduled work that falls due (ValueError if earlier)."""
        with self.store.lock:
            done = schedule.advance(self.context(), to)
            self.store.mark_dirty()
            return {"now": iso(self.store.clock.now()), "done": done}

    def requests(self) -> list[dict]:
        """The last API requests received, oldest first."""
        with self.stats.lock:
            return list(self.stats.journal)

    def stats_dict(self) -> dict:
        with self.stats.lock:
            out = {
                "requests": self.stats.requests,
                "by_status": dict(self.stats.by_status),
                "by_route": dict(self.stats.by_route),
                **dict(self.stats.counters),
            }
        out["entities"] = self.store.counts()
        out["limits"] = self.limiter.snapshot()
        return out

    def reset(self) -> None:
        with self.store.lock:
            self.store.wipe()
            self.store.mints.clear()
            self.store.save()
        self.stats.reset()
        self.limiter.reset()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; no 40 ms delayed-ACK stalls
    server_version = "ZohoBillingEmulator/1.0"
    emulator: Emulator  # set on the subclass made per server

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        pass

    # plumbing ---------------------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Lose the response: the write already happened, the client never hears about it."""
        self.close_connection = True
        if self.emulator.faults.settings["drop_mode"] == "hang":
            time.sleep(float(self.emulator.faults.settings["drop_hang_s"]))
        try:  # RST instead of FIN, like a connection reset on the way back
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        raw = self._read_body()
        path = url.path.rstrip("/") or "/"
        try:
            if path.startswith(ADMIN_PREFIX):
                self._admin(method, path[len(ADMIN_PREFIX) :], raw)
            elif path == TOKEN_PATH and method == "POST":
                self._token(query, raw)
            elif path.startswith(API_PREFIX + "/") or path == API_PREFIX:
                self._api(method, path[len(API_PREFIX) :] or "/", query, raw)
            else:
                self._send(404, {"code": 5, "message": "Invalid URL Passed"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # token endpoint ---------------------------------------------------------------------------------------------
    def _token(self, query: dict, raw: bytes) -> None:
        params = dict(query)
        params.update(dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)))
        status, body, minted = tokens.mint(self.emulator.store, self.emulator.config, params, self.emulator.url)
        if minted:
            self.emulator.stats.bump("tokens_minted")
        self.emulator.stats.record("POST " + TOKEN_PATH, status)
        self._send(status, body)

    # admin ------------------------------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, raw: bytes) -> None:
        self._send(*admin.handle(self.emulator, method, path, raw))

    # API --------------------------------------------------------------------------------------------------------
    def _api(self, method: str, path: str, query: dict, raw: bytes) -> None:
        emu = self.emulator
        template, handler, params = api.match(method, path)
        route = f"{method} {template}" if template else f"{method} <unmatched>"
        status = None
        try:
            emu.limiter.enter()
        except ApiError as exc:
            emu.stats.bump("rate_limited")
            emu.stats.record(route, exc.status)
            return self._send(exc.status, exc.body(), exc.headers)
        try:
            delay = emu.faults.delay_s()
            if delay:
                time.sleep(delay)
            status, body, headers, drop = self._api_call(method, path, query, raw, template, handler, params)
            emu.stats.record(route, None if drop else status)
            emu.stats.log_request(method, path, query, raw, None if drop else status, None if drop else body)
            if drop:
                emu.stats.bump("dropped")
                return self._drop()
            self._send(status, body, headers)
        finally:
            emu.limiter.leave()

    def _api_call(self, method, path, query, raw, template, handler, params):
        emu = self.emulator
        try:
            tokens.check(emu.store, emu.config, self.headers.get("Authorization"))
            org = self.headers.get(ORG_HEADER)
            if template not in NO_ORG_HEADER:
                if not org:
                    raise ApiError(400, 6041, "This user is not associated with the CompanyID/CompanyName:.")
                if org != emu.config.organization_id:
                    raise ApiError(403, 57, "You are not authorized to perform this operation")
            try:
                emu.limiter.admit()
            except ApiError:
                emu.stats.bump("rate_limited")
                raise
            if handler is None:
                if params.get("__method_mismatch__"):
                    raise ApiError(405, 37, f"The HTTP method {method} is not allowed for the requested resource")
                raise ApiError(404, 5, "Invalid URL Passed")
            body = self._json_body(raw)
            if emu.faults.should_fail():
                emu.stats.bump("failed_injected")
                raise ApiError(500, 1000, "Internal error")
            write = method in ("POST", "PUT", "DELETE")
            drop = write and emu.faults.should_drop()
            ctx = Ctx(emu.store, emu.config, params, query, body, emu.url)
            with emu.store.lock:
                status, out = handler(ctx)
                if write:
                    emu.store.mark_dirty()
            return status, out, {}, drop
        except ApiError as exc:
            return exc.status, exc.body(), exc.headers, False

    def _json_body(self, raw: bytes) -> dict:
        if not raw.strip():
            return {}
        ctype = (self.headers.get("Content-Type") or "").lower()
        text = raw.decode("utf-8", "replace")
        if "x-www-form-urlencoded" in ctype:  # ZOHO also takes the JSON in a JSONString form field
            form = dict(urllib.parse.parse_qsl(text))
            text = form.get("JSONString", "")
        try:
            body = json.loads(text)
        except ValueError:
            raise ApiError(400, 1038, "JSON is not well formed") from None
        if not isinstance(body, dict):
            raise ApiError(400, 1038, "JSON is not well formed")
        _refuse_unfit_text(body)
        return body


MAX_TEXT = 2000  # ZOHO's longest text field (notes, descriptions); longer, or a NUL byte, is refused


def _refuse_unfit_text(value, field: str = "") -> None:
    """ZOHO refuses a NUL byte and an over-long text in any field: code 4, naming the field."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_unfit_text(item, str(key))
    elif isinstance(value, list):
        for item in value:
            _refuse_unfit_text(item, field)
    elif isinstance(value, str) and ("\x00" in value or len(value) > MAX_TEXT):
        raise ApiError(400, 4, f"Invalid value passed for {field or 'the request'}")


class EmulatorHandle:
    """A running emulator: ``url``, ``store``, ``stats()``, ``faults()``, ``set_faults()``, ``clock()``,
    ``move_clock()``, ``reset()``, ``stop()``."""

    def __init__(self, emulator: Emulator, server: ThreadingHTTPServer, thread: threading.Thread):
        self.emulator, self._server, self._thread = emulator, server, thread
        self.url = emulator.url
        self.config = emulator.config
        self.store = emulator.store
        self.host, self.port = server.server_address[:2]

    def stats(self) -> dict:
        return self.emulator.stats_dict()

    def faults(self) -> dict:
        return self.emulator.faults.current()

    def requests(self) -> list[dict]:
        """Like GET /__emulator__/requests: the last API requests received and what was answered, oldest first."""
        return self.emulator.requests()

    def clock(self) -> str:
        """ZOHO's `now`, ISO-8601 UTC."""
        return self.emulator.clock()["now"]

    def move_clock(self, now: str | None = None, advance_days: int | None = None) -> dict:
        """Like PUT /__emulator__/clock: to `now`, or `advance_days` later; runs the work that falls due."""
        body = {"now": now} if now is not None else {"advance_days": advance_days}
        return self.emulator.move_clock(admin.clock_target(self.store, body))

    def set_faults(self, **changes) -> dict:
        return self.emulator.faults.update(**changes)

    def reset(self) -> None:
        self.emulator.reset()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def start_emulator(config: EmulatorConfig | None = None) -> EmulatorHandle:
    config = config or EmulatorConfig()
    emulator = Emulator(config)
    handler = type("BoundHandler", (Handler,), {"emulator": emulator})
    server = _Server((config.host, config.port), handler)
    host, port = server.server_address[:2]
    emulator.url = f"http://{host}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"zoho-emulator-{port}", daemon=True
    )
    thread.start()
    return EmulatorHandle(emulator, server, thread)


__all__ = ["EmulatorConfig", "EmulatorHandle", "start_emulator", "SETTABLE"]
