"""The engine's knobs. One dataclass; each field's default is written once, here, and `from_env` names the
environment variable of each (the Dagster resource shows the same fields in the Launchpad)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from zoho_pipeline.env import dataclass_from_env

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
    inspector_calls: int = 10_000  # API calls kept (redacted) for `zoho-pipeline calls`; 0 keeps none
    # a payment on a recurring invoice waits this long for the link to ZOHO's invoice, then goes as credit
    recurring_link_wait_h: float = 72.0
    # a recurring invoice not linked yet is looked for in ZOHO again after this long (ZOHO bills once a day)
    recurring_recheck_min: float = 60.0
    # bodies kept: of failed calls (a success's request is the accepted payload, its answer ZOHO's echo), or all
    inspector_bodies: str = field(default="failed", metadata={"choices": ("failed", "all")})
    # lifecycle policies (design.md "ZOHO over time", docs/runbook.md): when a package or price change and a
    # cancellation reach ZOHO
    plan_change_at: str = field(default="end_of_term", metadata={"choices": ("end_of_term", "immediate")})
    cancel_at: str = field(default="immediate", metadata={"choices": ("immediate", "end_of_term")})
    # a field changed in ZOHO by hand (the daily zoho_drift check): only reported, or its row requeued so the
    # next sync sends the source's version back
    drift_policy: str = field(default="report", metadata={"choices": ("report", "repair")})

    def __post_init__(self):
        for f in fields(self):  # set directly (a resource's config): the same check as from the environment
            if "choices" in f.metadata and getattr(self, f.name) not in f.metadata["choices"]:
                raise ValueError(
                    f"{ENV_VARS[f.name]}={getattr(self, f.name)!r} is not a policy: expected one of "
                    + ", ".join(f.metadata["choices"])
                )

    @property
    def silent_after_s(self) -> float:
        """A run whose heartbeat is older than this has stopped beating: its claims count as backlog (in doubt),
        though nobody may take them over before `run_stale_after_s`."""
        return min(self.run_stale_after_s, max(3 * self.heartbeat_interval_s, 5.0))

    @classmethod
    def from_env(cls, env=None) -> SyncSettings:
        return dataclass_from_env(cls, ENV_VARS, env)


# field → environment variable (fields without one keep their default)
ENV_VARS = {
    "enabled": "ENABLE_ZOHO_SYNC",
    "max_workers": "ZOHO_SYNC_WORKERS",
    "batch_size": "ZOHO_SYNC_BATCH_SIZE",
    "claim_chunk": "ZOHO_SYNC_CLAIM_CHUNK",
    "max_attempts": "ZOHO_SYNC_MAX_ATTEMPTS",
    "backoff_base_s": "ZOHO_SYNC_BACKOFF_BASE_S",
    "backoff_max_s": "ZOHO_SYNC_BACKOFF_MAX_S",
    "in_run_retry_window_s": "ZOHO_SYNC_IN_RUN_RETRY_WINDOW_S",
    "run_stale_after_s": "ZOHO_SYNC_RUN_STALE_AFTER_S",
    "heartbeat_interval_s": "ZOHO_SYNC_HEARTBEAT_S",
    "plan_change_at": "ZOHO_PLAN_CHANGE_AT",
    "cancel_at": "ZOHO_CANCEL_AT",
    "drift_policy": "ZOHO_DRIFT",
    "inspector_calls": "ZOHO_INSPECTOR_CALLS",
    "recurring_link_wait_h": "ZOHO_RECURRING_LINK_WAIT_H",
    "recurring_recheck_min": "ZOHO_RECURRING_RECHECK_MIN",
    "inspector_bodies": "ZOHO_INSPECTOR_BODIES",
}
END_OF_TERM, IMMEDIATE = "end_of_term", "immediate"
REPORT, REPAIR = "report", "repair"
