"""The engine's knobs. One dataclass, read from the environment or built by the Dagster resource."""

from __future__ import annotations

import os
from dataclasses import dataclass

from zoho_pipeline.env import flag, number

ENTITY_ORDER = ("plans", "customers", "subscriptions", "invoices", "payments")
MODES = ("due", "failed", "all")


@dataclass(frozen=True)
class SyncSettings:
    enabled: bool = True  # ENABLE_ZOHO_SYNC: false stops every call
    # in flight at once: 100/min is reached with calls up to 2.4 s, under the Free plan's 5 concurrent calls;
    # more threads only contend for the GIL (measured: 8 workers do 10 % fewer rows/s than 4 on a fast server)
    max_workers: int = 4
    batch_size: int = 200  # rows read and dispatched per batch
    record_every_s: float = 1.0  # slow calls: finished rows are written at least this often, not per chunk
    claim_chunk: int = 32  # rows claimed (and recorded) per transaction; a crashed run's look-ups are ≤ 2 chunks
    max_attempts: int = 5  # retryable failures before a row is dead-lettered
    backoff_base_s: float = 30.0  # first retry delay; doubles per attempt, with jitter
    backoff_max_s: float = 3600.0
    in_run_retry_window_s: float = 60.0  # retry in the same run when the next attempt is due within this
    in_run_retry_rounds: int = 3
    run_stale_after_s: float = 120.0  # a run whose heartbeat is older than this is dead: its claims are free
    heartbeat_interval_s: float = 15.0
    progress_interval_s: float = 10.0

    @classmethod
    def from_env(cls, env=None) -> "SyncSettings":
        env = os.environ if env is None else env

        def num(name, default, kind=int):
            return number(name, default, kind, env)

        return cls(
            enabled=flag(env.get("ENABLE_ZOHO_SYNC"), True),
            max_workers=num("ZOHO_SYNC_WORKERS", 4),
            batch_size=num("ZOHO_SYNC_BATCH_SIZE", 200),
            claim_chunk=num("ZOHO_SYNC_CLAIM_CHUNK", 32),
            max_attempts=num("ZOHO_SYNC_MAX_ATTEMPTS", 5),
            backoff_base_s=num("ZOHO_SYNC_BACKOFF_BASE_S", 30.0, float),
            backoff_max_s=num("ZOHO_SYNC_BACKOFF_MAX_S", 3600.0, float),
            in_run_retry_window_s=num("ZOHO_SYNC_IN_RUN_RETRY_WINDOW_S", 60.0, float),
            run_stale_after_s=num("ZOHO_SYNC_RUN_STALE_AFTER_S", 120.0, float),
            heartbeat_interval_s=num("ZOHO_SYNC_HEARTBEAT_S", 15.0, float),
        )
