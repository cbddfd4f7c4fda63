"""Section 3's load-independent figure: the engine's instructions per row, API call inspector on vs off, counted by
valgrind's callgrind (the machine's load does not change an instruction count; whole-run CPU swings ±15 % here).

Each run is benchmarks/cg_child.py (one `run_sync` of N new customers, SQLite) in its own process under callgrind,
the database filled beforehand outside it. Per row = (I(N) − I(N/10)) / (N − N/10), the small run of the same
setting: that cancels the start-up (imports, engine, client, token: ~2.4 G, steady to a few k) and each run's
fixed cost (the inspector's ring pruned at the run's end), which a short run would spread over its rows. Two
identical runs of N still differ by ~10 k/row (the worker threads' hand-offs), hence several on/off pairs, in
alternating order. valgrind sees only our process, so Postgres (its server's work unseen) is left out; each run
costs ~20 s of start-up plus ~50 ms a row.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

from bench_common import customers_database, sqlite_database

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cg_child.py")


def count(emu, n: int, workers: int, calls: int) -> int:
    """Instructions of one child run of n customers (inspector_calls=calls) under callgrind."""
    emu.reset()
    with sqlite_database() as url:
        customers_database(url, n)
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", "--dump-instr=no"]
            cmd += [sys.executable, CHILD, url, emu.url, str(workers), str(calls)]
            env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict and set layouts each run
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not found or f"created={n}" not in proc.stdout:
        raise RuntimeError(f"callgrind run of {n} rows failed: {proc.stdout[-300:]} {proc.stderr[-1500:]}")
    return int(found.group(1))


def skipped(args) -> str | None:
    if args.quick:
        return "skipped in --quick: a run under callgrind takes ~20 s of start-up alone"
    if not shutil.which("valgrind"):
        return "skipped: valgrind is not installed (apt-get install valgrind)"
    if args.overhead_cg_pairs < 1:
        return "skipped: --overhead-cg-pairs 0"
    return None


def measure(emu, n: int, pairs: int, workers: int) -> dict:
    """Instructions per row of pairs × (on, off) runs of n rows, alternating which goes first."""
    small = max(1, n // 10)
    base = {calls: count(emu, small, workers, calls) for calls in (10_000, 0)}
    on, off = [], []
    for k in range(pairs):
        for calls in (10_000, 0) if k % 2 == 0 else (0, 10_000):
            (on if calls else off).append((count(emu, n, workers, calls) - base[calls]) / (n - small))
    per_run = base[10_000] - base[0] - small * (sum(on) / len(on) - sum(off) / len(off))
    return dict(rows=n, small=small, base_on=base[10_000], base_off=base[0], per_run=per_run, on=on, off=off)
