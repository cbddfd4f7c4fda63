"""2. Rate-limit utilisation: the emulator at L requests/minute with latency ± jitter, N new customers.

The emulator enforces ZOHO's rules (sliding one-minute window, a lockout after a breach, the in-flight cap);
ZOHO_RATE_LIMIT_PER_MINUTE is set to the same L, as an operator would. Reported: requests per minute achieved
÷ L over the whole run, and over the steady state (after the first window, whose burst a fresh sliding window
allows), the 429s the emulator sent, and the wall time against the ideal N ÷ L.
"""

from __future__ import annotations

import threading
import time

import requests
from bench_common import EmulatorProc, api_requests, customers_database, make_client, metric, source_database
from requests.adapters import HTTPAdapter

from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.zoho import limiter as limiter_mod
from zoho_pipeline.zoho.limiter import RateLimiter

PRODUCTION_WINDOW_S = float(getattr(limiter_mod, "WINDOW_S", 60.0))

SECTION = "2 rate"


def _timed_session():
    """A session like the client's own, recording when each response arrived."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    stamps, lock = [], threading.Lock()

    def hook(resp, *args, **kwargs):
        if "/billing/v1/" in resp.url:
            with lock:
                stamps.append((time.monotonic(), resp.status_code))

    session.hooks["response"].append(hook)
    return session, stamps


def run(args) -> tuple[list[dict], dict]:
    rows, raw = [], {}
    for fraction in args.rate_client_fractions:
        for window in args.rate_windows or [PRODUCTION_WINDOW_S]:
            r, d = run_one(args, fraction, window)
            rows += r
            raw[f"client_at_{fraction:g}L_window_{window:g}s"] = d
    return rows, raw


def run_one(args, fraction: float, window_s: float) -> tuple[list[dict], dict]:
    """`fraction`: ZOHO_RATE_LIMIT_PER_MINUTE as a fraction of the emulator's limit (1 = the operator sets the
    real limit). `window_s`: the client limiter's sliding window (PRODUCTION_WINDOW_S: the shipped default)."""
    n, limit = args.rate_rows, args.rate_limit
    client_limit = max(1, int(limit * fraction))
    production = window_s == PRODUCTION_WINDOW_S
    tag = "" if (fraction == 1 and production) else f" [client {client_limit}/min, window {window_s:g}s]"
    raw = dict(
        rows=n,
        limit_per_minute=limit,
        client_limit_per_minute=client_limit,
        client_window_s=window_s,
        production_window=production,
        latency_ms=args.rate_latency_ms,
        jitter_ms=args.rate_jitter_ms,
        workers=args.rate_workers,
        emulator_lockout_s=args.rate_lockout_s,
    )
    emu_settings = dict(
        rate_limit_per_minute=limit,
        daily_limit=100_000_000,
        max_concurrency=args.rate_concurrency,
        lockout_seconds=args.rate_lockout_s,
        latency_ms=args.rate_latency_ms,
        jitter_ms=args.rate_jitter_ms,
        seed=11,
    )
    with EmulatorProc(**emu_settings) as emu, source_database(args.rate_db) as url:
        customers_database(url, n)
        engine = make_engine(url)
        session, stamps = _timed_session()
        limiter = None
        if not production:
            RateLimiter.reset_registry()
            limiter = RateLimiter(client_limit, 100_000_000, None, "10234695", window_s=window_s)
        client = make_client(
            engine, emu.url, session=session, requests_per_minute=client_limit, daily_budget=100_000_000
        )
        if limiter is not None:
            client.limiter = limiter
        started = time.monotonic()
        report = run_sync(engine, client, SyncSettings(max_workers=args.rate_workers), entities=["customers"])
        wall = time.monotonic() - started
        stats = emu.stats()
        client.close()
        session.close()
        engine.dispose()
    rep = report.entities["customers"]
    calls = api_requests(stats)
    n429 = int(stats.get("by_status", {}).get("429", 0))
    raw.update(
        created=rep.created,
        failed=rep.failed,
        backlog=rep.backlog,
        api_calls=report.api_calls,
        emulator_requests=calls,
        emulator_429=n429,
        client_429=client.stats.rate_limited,
        client_waited_s=round(client.stats.waited_s, 1),
        wall_s=round(wall, 2),
        stopped=report.stopped_reason,
    )
    achieved = calls / (wall / 60.0)
    ideal_s = n / limit * 60.0
    # a sliding window lets L calls go at once at the start of each window: the best a client can do is
    # floor((N-1)/L) full windows, then the last window's calls as fast as the workers carry them
    windows = (n - 1) // limit
    tail = n - windows * limit
    per_call_s = args.rate_latency_ms / 1000.0
    window_ideal_s = windows * 60.0 + tail * per_call_s / max(1, min(args.rate_workers, args.rate_concurrency))
    first_429 = min((t for t, status in stamps if status == 429), default=None)
    raw["first_429_after_s"] = None if first_429 is None else round(first_429 - started, 1)
    raw.update(
        achieved_per_minute=round(achieved, 1),
        ideal_wall_s=round(ideal_s, 1),
        window_ideal_wall_s=round(window_ideal_s, 1),
    )
    burst_note = "" if n > 5 * limit else " (N < 5 L: the first window's burst inflates this)"
    rows = [
        metric(
            SECTION,
            f"achieved req/min ÷ limit ({n} rows at {limit}/min){tag}",
            round(achieved / limit, 3),
            "ratio",
            0.97,
            ">=",
            note=f"{achieved:.0f}/min over {wall:.0f}s{burst_note}",
        ),
        metric(
            SECTION,
            f"429s received{tag}",
            n429,
            "",
            0,
            "==",
            note=f"emulator lockout {args.rate_lockout_s:g}s per breach",
        ),
        metric(
            SECTION,
            f"wall time ÷ ideal (rows ÷ limit){tag}",
            round(wall / ideal_s, 3),
            "ratio",
            note=f"{wall:.1f}s vs {ideal_s:.1f}s; created {rep.created}/{n}",
        ),
        metric(
            SECTION,
            f"wall time ÷ sliding-window ideal{tag}",
            round(wall / window_ideal_s, 3),
            "ratio",
            note=f"{wall:.1f}s vs {window_ideal_s:.1f}s ({windows} full windows + {tail} calls)",
        ),
    ]
    return rows, raw
