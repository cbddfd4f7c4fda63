"""`make bench`: the pipeline's benchmarks, side by side in one run, one table of ratios and raw figures.

Sections (--only picks some; all by default):
  calls     1. API calls per entity: new / unchanged / changed rows, engine beside the naive search-then-write
  rate      2. rate-limit utilisation at 600 requests/minute with 300 ± 100 ms latency (≥ 16.7 min at 10 000 rows)
  overhead  3. engine rows/s ÷ raw HTTP round trips/s against the unthrottled emulator
  findwork  4. finding due rows in Postgres at 1 M customers (and proportionate children), 0.1 % dirty
  memory    5. peak RSS of a sync of 20 k and 100 k new rows
  backfill  6. the CLI's backfill estimate against a real run
  lifecycle 7. API calls per lifecycle transition (issue 14), and a plan change's cost under each policy
  recurring 8. API calls per linked recurring invoice, and the ledger check's calls per 1 000 customers (issue 15)
  fixedcost 9. a no-op `zoho-pipeline sync`'s wall time and a sensor tick with nothing to do (issue 12)

Targets live in the printed table, never in timed tests. `--quick` runs every section at toy sizes (the smoke test
uses it); the default sizes are the issue's. Results: bench-results/latest.json.

    python benchmarks/run.py [--quick] [--only calls,rate,...] [--rate-rows N] [--scale-10m] ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime

from zoho_pipeline.sync.settings import SyncSettings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SECTIONS = ("calls", "rate", "overhead", "findwork", "memory", "backfill", "lifecycle", "recurring", "fixedcost")
QUICK = dict(
    calls_customers=25,
    calls_changed=3,
    rate_rows=60,
    rate_limit=6000,
    rate_latency_ms=30,
    rate_jitter_ms=10,
    overhead_rows=150,
    overhead_raw_rows=150,
    findwork_customers=2000,
    findwork_repeats=2,
    memory_rows="150,300",
    backfill_customers=8,
    backfill_rate=6000,
    backfill_latency_ms=10,
    overhead_rounds=1,
    fixedcost_customers=5,
    fixedcost_rounds=1,
    fixedcost_ticks=3,
)


def _ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in str(text).split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="toy sizes for every section (seconds, for the smoke test)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "bench-results", "latest.json"))
    p.add_argument(
        "--workers",
        type=int,
        default=SyncSettings().max_workers,
        help=f"SyncSettings.max_workers (default {SyncSettings().max_workers}, the engine's)",
    )
    p.add_argument("--batch-size", type=int, default=200, help="SyncSettings.batch_size: find_due's limit")
    p.add_argument("-v", "--verbose", action="store_true", help="the engine's INFO logs")
    g = p.add_argument_group("1 calls")
    g.add_argument("--calls-customers", type=int, default=300, help="demo customers (children follow)")
    g.add_argument("--calls-changed", type=int, default=50, help="rows per entity re-saved / changed")
    g = p.add_argument_group("2 rate")
    g.add_argument("--rate-rows", type=int, default=10_000, help="new customers (time ≥ rows ÷ limit minutes)")
    g.add_argument("--rate-limit", type=int, default=600, help="emulator requests/minute")
    g.add_argument("--rate-latency-ms", type=float, default=300)
    g.add_argument("--rate-jitter-ms", type=float, default=100)
    g.add_argument("--rate-workers", type=int, default=8)
    g.add_argument("--rate-concurrency", type=int, default=10, help="emulator in-flight cap (ZOHO's: 10)")
    g.add_argument("--rate-lockout-s", type=float, default=300, help="emulator lockout after a breach")
    g.add_argument("--rate-db", choices=("sqlite", "postgres"), default="sqlite")
    g.add_argument(
        "--rate-client-fractions",
        type=_floats,
        default=[1.0],
        help="ZOHO_RATE_LIMIT_PER_MINUTE as fractions of the limit, e.g. 1,0.98 (one run each)",
    )
    g.add_argument(
        "--rate-windows",
        type=_floats,
        default=[],
        help="client limiter windows in seconds, e.g. 60,61 (default: the shipped limiter's; others: "
        "an experiment through an explicit RateLimiter)",
    )
    g = p.add_argument_group("3 overhead")
    g.add_argument("--overhead-rows", type=int, default=5000)
    g.add_argument("--overhead-raw-rows", type=int, default=2000)
    g.add_argument("--overhead-rounds", type=int, default=2, help="alternating raw/engine rounds; best of each")
    g.add_argument("--no-postgres", dest="postgres", action="store_false", help="SQLite only in sections 3")
    g.add_argument("--overhead-cg-rows", type=int, default=400, help="customers per callgrind run (~50 ms each)")
    g.add_argument("--overhead-cg-pairs", type=int, default=3, help="inspector on/off callgrind pairs; 0: none")
    g = p.add_argument_group("4 find work")
    g.add_argument("--findwork-customers", type=int, default=1_000_000)
    g.add_argument("--findwork-repeats", type=int, default=5)
    g.add_argument("--findwork-timeout-s", type=float, default=30.0, help="statement_timeout per query")
    g.add_argument(
        "--no-proposed-index",
        dest="findwork_proposed_index",
        action="store_false",
        help="skip re-measuring payments with an index on payment_transactions(invoice_id)",
    )
    g.add_argument("--scale-10m", action="store_true", help="also 10x the customers (long; much disk)")
    g.add_argument("--keep-db", action="store_true", help="keep the zp_bench_* databases")
    g = p.add_argument_group("5 memory")
    g.add_argument("--memory-rows", default="20000,100000", help="sizes, comma-separated")
    g.add_argument("--memory-db", choices=("sqlite", "postgres"), default="sqlite")
    g.add_argument("--memory-timeout-s", type=float, default=3600)
    g = p.add_argument_group("6 backfill")
    g.add_argument("--backfill-customers", type=int, default=60)
    g.add_argument("--backfill-rate", type=int, default=120, help="emulator and client requests/minute")
    g.add_argument("--backfill-latency-ms", type=float, default=100)
    g.add_argument(
        "--backfill-client-fraction",
        type=float,
        default=1.0,
        help="ZOHO_RATE_LIMIT_PER_MINUTE the client uses, as a fraction of the emulator's limit",
    )
    g = p.add_argument_group("9 fixed cost")
    g.add_argument("--fixedcost-customers", type=int, default=100, help="demo customers synced before the no-op")
    g.add_argument("--fixedcost-rounds", type=int, default=3, help="no-op syncs timed; best of them")
    g.add_argument("--fixedcost-ticks", type=int, default=10, help="sensor ticks timed; best of them")
    return p


def parse(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:  # toy sizes, unless given explicitly on the command line
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv[1:]) if a.startswith("--")}
        for key, value in QUICK.items():
            if key not in given:
                setattr(args, key, value)
    args.memory_rows = _ints(args.memory_rows) if isinstance(args.memory_rows, str) else args.memory_rows
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {','.join(SECTIONS)}")
    return args


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    info = dict(nproc=os.cpu_count(), cpu=cpu, python=platform.python_version(), platform=platform.platform())
    try:
        info["loadavg"] = os.getloadavg()
        with open("/proc/meminfo") as fh:
            info["mem_total_gb"] = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(rows: list[dict]) -> str:
    headers = ["section", "metric", "value", "unit", "target", "pass", "raw figures / notes"]
    cells = []
    for r in rows:
        target = "" if r.get("target") is None else f"{r['op']} {_fmt(r['target'])}"
        ok = {True: "PASS", False: "FAIL", None: ""}[r.get("ok")]
        cells.append([r["section"], r["metric"], _fmt(r["value"]), r.get("unit", ""), target, ok, r.get("note", "")])
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])
    line = lambda c: "  ".join(
        x.ljust(w) if i in (0, 1, 3, 6) else x.rjust(w)  # noqa: E731
        for i, (x, w) in enumerate(zip(c, widths))
    ).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells])


def main(argv=None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    import importlib

    info = machine()
    print(
        f"zoho-pipeline benchmarks  {datetime.now(UTC).isoformat(timespec='seconds')}  "
        f"sections: {','.join(args.only)}{'  (quick)' if args.quick else ''}",
        flush=True,
    )
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, load average {info.get('loadavg')}",
        flush=True,
    )
    rows, raw, failures = [], {"machine": info, "args": {k: v for k, v in vars(args).items()}}, 0
    started = time.monotonic()
    for name in SECTIONS:
        if name not in args.only:
            continue
        module = importlib.import_module(f"sec_{name}")
        t0 = time.monotonic()
        print(f"[{name}] running ...", flush=True)
        try:
            kwargs = {"log": lambda m: print(m, flush=True)} if name in ("findwork", "memory") else {}
            section_rows, section_raw = module.run(args, **kwargs)
        except Exception as exc:  # a broken section is reported, the others still run
            failures += 1
            traceback.print_exc()
            section_rows = [
                dict(
                    section=name,
                    metric="section failed",
                    value=None,
                    unit="",
                    target=None,
                    op=None,
                    ok=False,
                    note=f"{type(exc).__name__}: {exc}"[:200],
                )
            ]
            section_raw = {"error": f"{type(exc).__name__}: {exc}"}
        section_raw["section_s"] = round(time.monotonic() - t0, 1)
        print(f"[{name}] done in {section_raw['section_s']}s", flush=True)
        rows += section_rows
        raw[name] = section_raw
    raw["total_s"] = round(time.monotonic() - started, 1)
    raw["machine"]["loadavg_end"] = os.getloadavg()
    raw["table"] = rows
    print()
    print(render(rows))
    if "findwork" in raw and isinstance(raw["findwork"], dict):
        from sec_findwork import index_lines

        lines = index_lines(raw["findwork"])
        if lines:
            print("\nEXPLAIN (ANALYZE, BUFFERS) of find_due, index lines:")
            print("\n".join(lines))
    missed = [r for r in rows if r.get("ok") is False]
    print(
        f"\n{len([r for r in rows if r.get('ok')])} targets met, {len(missed)} missed; "
        f"{raw['total_s']:.0f}s in all; load average {info.get('loadavg')} → {raw['machine']['loadavg_end']}"
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(raw, fh, indent=2, default=str)
    print(f"results: {args.out}")
    return 1 if failures else 0  # missed targets are findings, not errors


if __name__ == "__main__":
    sys.exit(main())
