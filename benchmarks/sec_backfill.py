"""6. Backfill estimate: what the CLI predicts before a full backfill, checked against a real run.

A seeded demo database; the emulator at L requests/minute with latency. First the dry run the CLI's
`zoho-pipeline sync --dry-run` performs (`run_sync(dry_run=True)`) and its estimate, as `sync_summary.format_summary`
prints it: calls = would_create + would_update, time = calls ÷ L. Also `status`'s estimate
(`status_cmd.estimate`: due rows × 1 call ÷ L). Then the real run: calls and wall time. `estimate_backfill` below
is the fuller estimate this benchmark proposes for the CLI (set-up calls, inactive plans, the rate window's
burst, and the latency bound of the worker pool).
"""

from __future__ import annotations

import math
import time

from bench_common import EmulatorProc, api_requests, make_client, metric, sqlite_database

from zoho_pipeline.cli.status import estimate as status_estimate
from zoho_pipeline.cli.sync_summary import format_summary
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.source.migrate import create_demo
from zoho_pipeline.sync.catalog import PRODUCTS
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.zoho import limiter as limiter_mod
from zoho_pipeline.zoho.limiter import paced_seconds

WINDOW_S = float(getattr(limiter_mod, "WINDOW_S", 60.0))  # the client limiter's sliding window

SECTION = "6 backfill"


def estimate_backfill(
    report, requests_per_minute: int, *, latency_s: float = 0.0, workers: int = 8, setup_calls: int | None = None
) -> dict:
    """Calls and seconds of the run a dry-run `report` describes, paced at `requests_per_minute`.

    calls = would_create + would_update (+ the catalog's one-off look-ups when nothing is cached yet).
    time = the larger of the rate bound and the latency bound (workers ÷ latency calls per second), the rate bound
    taking the sliding window's first-minute burst into account (`calls ÷ L` minutes is the conservative figure
    the CLI prints)."""
    rows = sum(e.would_create + e.would_update for e in report.entities.values())
    setup = (1 + 2 * len(PRODUCTS)) if setup_calls is None else setup_calls  # tax look-up, product list+create
    calls = rows + setup
    limit = max(1, requests_per_minute)
    simple_s = calls / limit * 60.0
    windows = (calls - 1) // limit if calls else 0
    tail = calls - windows * limit
    latency_rate = workers / latency_s if latency_s > 0 else math.inf  # calls per second the pool can carry
    window_s = windows * WINDOW_S + (tail / latency_rate if latency_rate != math.inf else 0.0)
    latency_s_total = calls / latency_rate if latency_rate != math.inf else 0.0
    return dict(
        rows=rows,
        setup_calls=setup,
        calls=calls,
        simple_s=round(simple_s, 1),
        windowed_s=round(max(window_s, latency_s_total), 1),
    )


def run(args) -> tuple[list[dict], dict]:
    zoho_limit, latency = args.backfill_rate, args.backfill_latency_ms
    # the operator's ZOHO_RATE_LIMIT_PER_MINUTE (--backfill-client-fraction of ZOHO's limit); the estimates use it,
    # as the CLI does
    limit = max(1, int(zoho_limit * args.backfill_client_fraction))
    raw = dict(
        customers=args.backfill_customers,
        zoho_limit_per_minute=zoho_limit,
        client_limit_per_minute=limit,
        latency_ms=latency,
    )
    emu_settings = dict(
        rate_limit_per_minute=zoho_limit,
        daily_limit=100_000_000,
        max_concurrency=10,
        lockout_seconds=300,
        latency_ms=latency,
        jitter_ms=0,
        seed=5,
    )
    with EmulatorProc(**emu_settings) as emu, sqlite_database() as url:
        create_demo(url, customers=args.backfill_customers, seed=11)
        engine = make_engine(url)
        client = make_client(engine, emu.url, requests_per_minute=limit, daily_budget=100_000_000)
        settings = SyncSettings(max_workers=args.workers, in_run_retry_rounds=0)
        dry = run_sync(engine, client, settings, dry_run=True)
        cli_text = format_summary(dry, limit)
        cli_calls = dry.estimated_calls  # what `zoho-pipeline sync --dry-run` prints
        cli_s = paced_seconds(cli_calls, limit)
        due = sum(e.due for e in dry.entities.values())
        status = status_estimate(due, 1.0, limit, 100_000_000, 0)
        proposed = estimate_backfill(dry, limit, latency_s=latency / 1000.0, workers=args.workers)
        started = time.monotonic()
        real = run_sync(engine, client, settings)
        wall = time.monotonic() - started
        stats = emu.stats()
        real_calls = api_requests(stats)
        client.close()
        engine.dispose()
    raw.update(
        dry_run={
            n: dict(due=e.due, would_create=e.would_create, would_update=e.would_update, invalid=e.invalid)
            for n, e in dry.entities.items()
        },
        cli_summary=cli_text,
        cli_calls=cli_calls,
        cli_s=round(cli_s, 1),
        status_estimate=status,
        proposed=proposed,
        real_calls=real_calls,
        real_wall_s=round(wall, 1),
        emulator_429=int(stats.get("by_status", {}).get("429", 0)),
        real={
            n: dict(created=e.created, failed=e.failed, api_calls=e.api_calls, prerequisites=e.prerequisites)
            for n, e in real.entities.items()
        },
    )
    rows = [
        metric(
            SECTION,
            "CLI dry-run calls ÷ real calls",
            round(cli_calls / real_calls, 3),
            "ratio",
            note=f"estimated {cli_calls}, real {real_calls} (status: {status['estimated_calls']} for {due} due)",
        ),
        metric(
            SECTION,
            "CLI dry-run time ÷ real time",
            round(cli_s / wall, 3),
            "ratio",
            note=f"estimated {cli_s:.0f}s, real {wall:.0f}s at {limit}/min (ZOHO {zoho_limit}/min), {latency:g} ms "
            f"latency, {raw['emulator_429']} 429s",
        ),
        metric(
            SECTION,
            "proposed estimate calls ÷ real calls",
            round(proposed["calls"] / real_calls, 3),
            "ratio",
            note=f"{proposed['rows']} rows + {proposed['setup_calls']} set-up",
        ),
        metric(
            SECTION,
            "proposed estimate time ÷ real time",
            round(proposed["windowed_s"] / wall, 3),
            "ratio",
            note=f"{proposed['windowed_s']:.0f}s (window- and latency-aware) vs {wall:.0f}s",
        ),
    ]
    return rows, raw
