"""``zoho-pipeline emulator``: run the ZOHO Billing emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .clock import parse_time
from .server import EmulatorConfig, start_emulator


def _iso_time(value: str) -> str:
    try:
        parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _parser() -> argparse.ArgumentParser:
    d = EmulatorConfig()
    p = argparse.ArgumentParser(
        prog="zoho-pipeline emulator",
        description="A local ZOHO Billing API (OAuth token + /billing/v1) with limits and "
        "fault injection. Admin: /__emulator__/stats|reset|faults|clock|health.",
    )
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--client-id", default=d.client_id)
    p.add_argument("--client-secret", default=d.client_secret)
    p.add_argument("--refresh-token", default=d.refresh_token)
    p.add_argument("--organization-id", default=d.organization_id)
    p.add_argument("--rate-limit-per-minute", type=int, default=d.rate_limit_per_minute)
    p.add_argument("--daily-limit", type=int, default=d.daily_limit)
    p.add_argument("--max-concurrency", type=int, default=d.max_concurrency)
    p.add_argument("--lockout-seconds", type=float, default=d.lockout_seconds)
    p.add_argument("--token-lifetime", type=int, default=d.token_lifetime)
    p.add_argument("--latency-ms", type=float, default=d.latency_ms)
    p.add_argument("--jitter-ms", type=float, default=d.jitter_ms)
    p.add_argument("--fail-rate", type=float, default=d.fail_rate, help="fraction of API calls answered 500")
    p.add_argument(
        "--drop-rate", type=float, default=d.drop_rate, help="fraction of writes that act and then lose their response"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--state-file", default=d.state_file, help="JSON file shared by successive emulator processes")
    p.add_argument("--token-mint-limit", type=int, default=d.token_mint_limit)
    p.add_argument("--token-mint-window-s", type=float, default=d.token_mint_window_s)
    p.add_argument("--duplicate-email", choices=("allow", "reject"), default=d.duplicate_email)
    p.add_argument("--drop-mode", choices=("reset", "hang"), default=d.drop_mode)
    p.add_argument("--drop-hang-s", type=float, default=d.drop_hang_s)
    p.add_argument("--storm-rate-limit-per-minute", type=int, default=d.storm_rate_limit_per_minute)
    p.add_argument("--storm-seconds", type=float, default=d.storm_seconds)
    p.add_argument("--early-token-expiry-s", type=float, default=d.early_token_expiry_s)
    p.add_argument(
        "--token-max-uses", type=int, default=d.token_max_uses, help="each access token dies after this many calls"
    )
    p.add_argument(
        "--start-time",
        default=d.start_time,
        type=_iso_time,
        help="ZOHO's clock at start, ISO-8601 (default: the wall clock; a clock saved in --state-file is kept, "
        "and moved forward to --start-time if that is later). Move it with PUT /__emulator__/clock",
    )
    p.add_argument(
        "--prorate",
        action="store_true",
        help="the organization prorates: an immediate plan change raises a prorated invoice or credit note",
    )
    p.add_argument(
        "--no-retry-after", dest="retry_after", action="store_false", help="send 429s without a Retry-After header"
    )
    return p


def main(argv=None) -> int:
    args = vars(_parser().parse_args(argv))
    handle = start_emulator(EmulatorConfig(**args))
    print(f"ZOHO Billing emulator listening on {handle.url}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
