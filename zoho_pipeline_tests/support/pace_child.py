"""One client process for the shared-pace tests: as many calls as it is allowed, then a JSON line.

    python -m zoho_pipeline_tests.support.pace_child DATABASE_URL EMULATOR_URL PER_MINUTE CALLS

Calls GET /organizations up to CALLS times, through the client every process builds (`sync.stores.zoho_client`:
the shared token, budget and pace); stops at the first call the pace would hold back longer than 2 s.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from zoho_pipeline.source.database import make_engine
    from zoho_pipeline.sync.stores import zoho_client
    from zoho_pipeline.zoho.errors import RATE_LIMITED, ZohoError
    from zoho_pipeline_tests.support.emulator import zoho_config

    url, emulator_url, per_minute, calls = argv[1], argv[2], int(argv[3]), int(argv[4])
    config = zoho_config(emulator_url, requests_per_minute=per_minute, max_rate_limit_wait_s=2.0)
    engine = make_engine(url)
    made, held_back = 0, None
    with zoho_client(config, engine) as client:
        for _ in range(calls):
            try:
                client.get("/organizations")
            except ZohoError as exc:
                if exc.kind != RATE_LIMITED:
                    raise
                held_back = str(exc)
                break
            made += 1
        stats = client.stats.snapshot()
    print(json.dumps({"calls": made, "rate_limited": stats["rate_limited"], "held_back": held_back}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
