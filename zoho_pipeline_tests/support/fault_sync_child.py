"""One sync run in its own process, for the fault suite's SIGKILL scenario.

    python -m zoho_pipeline_tests.support.fault_sync_child DATABASE_URL EMULATOR_URL

Prints "started <run_id>" once the run is registered, then syncs every entity; the test kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import uuid


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)
    from zoho_pipeline.source.database import make_engine
    from zoho_pipeline.sync.engine import run_sync
    from zoho_pipeline_tests.support.faults import fast_settings, make_client

    url, emulator_url = argv[1], argv[2]
    engine = make_engine(url)
    client = make_client(emulator_url, engine)
    run_id = uuid.uuid4().hex
    print(f"started {run_id}", flush=True)
    report = run_sync(engine, client, fast_settings(heartbeat_interval_s=0.3), run_id=run_id)
    print(f"finished {run_id} api_calls={report.api_calls} stopped={report.stopped_reason}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
