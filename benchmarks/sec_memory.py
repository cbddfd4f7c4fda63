"""5. Memory: peak RSS of a sync of N new customers against the unthrottled emulator, for two sizes.

Each sync runs in a fresh child process (`bench_child.py`) that reports its own VmHWM; the emulator is another
process, so its store is not counted. Flat in rows: the larger run's peak should be about the smaller one's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from bench_common import UNLIMITED, EmulatorProc, customers_database, metric, source_database

SECTION = "5 memory"
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_child.py")


def run(args, log=print) -> tuple[list[dict], dict]:
    raw, rows = {}, []
    for n in args.memory_rows:
        with EmulatorProc(**UNLIMITED) as emu, source_database(args.memory_db) as url:
            log(f"[5] {n:,} new customers on {args.memory_db} ...")
            customers_database(url, n)
            out = subprocess.run(
                [sys.executable, CHILD, url, emu.url, str(args.workers)],
                capture_output=True,
                text=True,
                timeout=args.memory_timeout_s,
            )
            if out.returncode != 0:
                raise RuntimeError(f"memory child failed: {out.stderr[-2000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
        result["children_maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        raw[str(n)] = result
        peak_mb = result["hwm_kb"] / 1024
        rows.append(
            metric(
                SECTION,
                f"peak RSS, sync of {n:,} new rows ({args.memory_db})",
                round(peak_mb, 1),
                "MB",
                300,
                "<=",
                note=f"{result['rss_before_kb'] / 1024:.0f} MB before the sync; "
                f"{result['created']:,} created in {result['duration_s']:.0f}s",
            )
        )
    sizes = sorted(args.memory_rows)
    if len(sizes) >= 2:
        small, large = raw[str(sizes[0])], raw[str(sizes[-1])]
        growth = (large["hwm_kb"] - small["hwm_kb"]) / 1024
        per_10k = growth / ((sizes[-1] - sizes[0]) / 10_000)
        rows.append(
            metric(
                SECTION,
                f"peak RSS growth {sizes[0]:,} → {sizes[-1]:,} rows",
                round(growth, 1),
                "MB",
                note=f"{per_10k:.2f} MB per 10k rows",
            )
        )
        rows.append(
            metric(
                SECTION,
                "peak RSS ratio large ÷ small (flat ≈ 1)",
                round(large["hwm_kb"] / small["hwm_kb"], 3),
                "ratio",
                1.10,
                "<=",
            )
        )
    return rows, raw
