"""Child process for section 3's instruction count: sync the customers already in DB against the emulator at URL,
inspector on (CALLS > 0) or off, nothing else. Run under `valgrind --tool=callgrind` by sec_overhead_cg.py.

    python benchmarks/cg_child.py DB_URL EMULATOR_URL WORKERS CALLS
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import make_client  # noqa: E402

from zoho_pipeline.source.database import make_engine  # noqa: E402
from zoho_pipeline.sync.engine import run_sync  # noqa: E402
from zoho_pipeline.sync.settings import SyncSettings  # noqa: E402


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    db_url, emulator_url, workers, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    engine = make_engine(db_url)
    client = make_client(engine, emulator_url)
    client.get("/organizations")
    report = run_sync(engine, client, SyncSettings(max_workers=workers, inspector_calls=calls), entities=["customers"])
    client.close()
    engine.dispose()
    print(f"created={report.entities['customers'].created}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
