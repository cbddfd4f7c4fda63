"""Child process for the memory section: sync the customers already in DB against the emulator at URL, then print
one JSON line with the counts and this process's peak RSS (VmHWM) before and after the sync.

    python benchmarks/bench_child.py DB_URL EMULATOR_URL WORKERS
"""

from __future__ import annotations

import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import make_client, vm_hwm_kb, vm_rss_kb  # noqa: E402

from zoho_pipeline.source.database import make_engine  # noqa: E402
from zoho_pipeline.sync.engine import run_sync  # noqa: E402
from zoho_pipeline.sync.settings import SyncSettings  # noqa: E402


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    db_url, emulator_url, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = make_engine(db_url)
    client = make_client(engine, emulator_url)
    client.get("/organizations")
    before_hwm, before_rss = vm_hwm_kb(), vm_rss_kb()
    report = run_sync(engine, client, SyncSettings(max_workers=workers), entities=["customers"])
    rep = report.entities["customers"]
    print(
        json.dumps(
            dict(
                created=rep.created,
                failed=rep.failed,
                api_calls=report.api_calls,
                duration_s=report.duration_s,
                rss_before_kb=before_rss,
                hwm_before_kb=before_hwm,
                hwm_kb=vm_hwm_kb(),
                rss_after_kb=vm_rss_kb(),
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
