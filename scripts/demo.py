"""`make demo`: a demo source database, the ZOHO Billing emulator as a real process, and one sync through Dagster.

    python scripts/demo.py --dir .demo [--customers 300] [--seed 42] [--months-back 6]

The demo's business runs `--months-back` months behind the wall clock (its data ends then, and ZOHO's clock starts
then), so `make month` can play that many months up to today: the pipeline judges dates against the real today.

Leaves .demo/source.db, .demo/zoho-state.json and .demo/.env (the settings used), and the run in DAGSTER_HOME.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

CREDENTIALS = {
    "ZOHO_CLIENT_ID": "1000.DEMOCLIENT",
    "ZOHO_CLIENT_SECRET": "demo-client-secret",
    "ZOHO_REFRESH_TOKEN": "1000.demo-refresh-token",
    "ZOHO_ORGANIZATION_ID": "10234695",
}
RATE_PER_MINUTE = 3000  # the emulator's limit: generous, so the demo takes a minute, not ZOHO's real quarter hour
PACE_PER_MINUTE = 2700  # what the pipeline allows itself: always below the limit, as against real ZOHO
DAILY_LIMIT = 100_000
# the demo's Dagster instance: SQLite storage in DAGSTER_HOME and, as in a deployment (dagster.yaml), one run talking
# to ZOHO at a time: a sensor's run started during a backfill queues behind it
DEMO_INSTANCE = """\
# the demo's Dagster instance (make demo / make dev): SQLite storage in this folder
telemetry:
  enabled: false
concurrency:
  runs:
    tag_concurrency_limits:
      - key: zoho_sync
        limit: 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(
    state_file: Path, log_file: Path, port: int | None = None, start_time: str | None = None
) -> tuple[subprocess.Popen, str]:
    """The emulator as its own process (and process group, so it can be stopped as one) on `port` (default: a free
    one), keeping its accounts and clock in `state_file`; ZOHO's clock starts at `start_time` (default: the one the
    state file saved, else the wall clock)."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "zoho_pipeline.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state-file",
        str(state_file),
        "--rate-limit-per-minute",
        str(RATE_PER_MINUTE),
        "--daily-limit",
        str(DAILY_LIMIT),
        "--latency-ms",
        "20",
        "--jitter-ms",
        "10",
        "--client-id",
        CREDENTIALS["ZOHO_CLIENT_ID"],
        "--client-secret",
        CREDENTIALS["ZOHO_CLIENT_SECRET"],
        "--refresh-token",
        CREDENTIALS["ZOHO_REFRESH_TOKEN"],
        "--organization-id",
        CREDENTIALS["ZOHO_ORGANIZATION_ID"],
        *(["--start-time", start_time] if start_time else []),
    ]
    log = open(log_file, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, process_group=0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise SystemExit(f"the emulator exited ({proc.returncode}); see {log_file}")
            continue
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise SystemExit(f"the emulator did not start within 30 s; see {log_file}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=".demo", help="where the demo's files go (default .demo)")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--months-back", type=int, default=6, help="how far behind today the demo's business is")
    args = p.parse_args(argv)

    from zoho_pipeline.source.migrate import create_demo, reset

    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source_url = f"sqlite:///{workdir / 'source.db'}"
    state_file = workdir / "zoho-state.json"
    # --reset each time: a fresh source, and a fresh ZOHO to match it
    reset(source_url)
    state_file.unlink(missing_ok=True)
    from zoho_pipeline.source.demo_month import months_before

    today = months_before(dt.datetime.now(dt.UTC).date(), args.months_back)
    counts = create_demo(source_url, customers=args.customers, seed=args.seed, today=today)
    from zoho_pipeline.source.database import make_engine
    from zoho_pipeline.source.demo_month import first_month

    engine = make_engine(source_url)
    start = first_month(engine)
    print(
        f"Source database {workdir / 'source.db'}: "
        + ", ".join(f"{n} {t}" for t, n in counts.items() if isinstance(n, int))
    )
    if counts.get("bad_rows"):
        print(
            "  with deliberately bad rows (they fail with their reason): "
            + ", ".join(f"{n} {k}" for k, n in counts["bad_rows"].items())
        )

    # ZOHO's clock starts on the demo's day, after its last change (06:00)
    proc, url = start_emulator(state_file, workdir / "emulator.log", start_time=f"{today.isoformat()}T12:00:00Z")
    try:
        settings = {
            "SOURCE_DATABASE_URL": source_url,
            "ZOHO_API_BASE_URL": f"{url}/billing/v1",
            "ZOHO_ACCOUNTS_URL": url,
            **CREDENTIALS,
            "ZOHO_RATE_LIMIT_PER_MINUTE": str(PACE_PER_MINUTE),
            "ZOHO_DAILY_BUDGET": str(DAILY_LIMIT),
            "ENABLE_ZOHO_SYNC": "true",
            # the monthly partitions start at the data's first month: the grid shows the months that exist
            **({"ZOHO_PARTITIONS_START": start.isoformat()} if start else {}),
        }
        (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        os.environ.update(settings)
        dagster_home = os.environ.get("DAGSTER_HOME")
        if dagster_home:
            Path(dagster_home).mkdir(parents=True, exist_ok=True)
            instance_yaml = Path(dagster_home) / "dagster.yaml"
            if not instance_yaml.exists():  # the embedded default: SQLite storage in DAGSTER_HOME, no telemetry
                instance_yaml.write_text(DEMO_INSTANCE)
        print(
            f"ZOHO Billing emulator on {url} ({RATE_PER_MINUTE} requests/min, {DAILY_LIMIT} a day; "
            f"the pipeline paces itself at {PACE_PER_MINUTE}/min)\n"
        )
        print("$ zoho-pipeline sync")
        from zoho_pipeline.cli import sync as sync_cmd

        code = sync_cmd.main([])
        import requests

        stats = requests.get(f"{url}/__emulator__/stats", timeout=5).json()
        print(f"\nThe emulator answered {stats.get('requests')} requests: {stats.get('by_status')}")
        from zoho_pipeline.cli.demo import print_figures

        print_figures(engine)
        print(f"""
Where to look next
  The whole product, the Dagster UI on http://127.0.0.1:3000 with this demo's settings, schedules and sensors on:
      make dev          (then, in another terminal, `make month` plays a month of business)
  Sync state and failures:
      set -a; . {workdir / ".env"}; set +a; .venv/bin/zoho-pipeline status
  The emulator keeps its state in {state_file}; start it again with
      .venv/bin/zoho-pipeline emulator --port <port> --state-file {state_file}
  and read GET <url>/__emulator__/stats (this run's was {url}/__emulator__/stats).
Exit code of the sync: {code} (0 all synced, 1 some rows failed: the demo's bad rows, 2 the run failed).""")
        return 0 if code in (0, 1) else code
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
