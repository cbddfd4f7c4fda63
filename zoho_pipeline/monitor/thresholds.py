"""One number per fact the pipeline judges about itself, and one environment variable for each.

The Dagster checks, `zoho-pipeline health` and `zoho-pipeline alert` read the same Thresholds, so they agree. The
names they used before (three names for one threshold, in places) keep working for one release, with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

from zoho_pipeline.env import environ, number, renamed


@dataclass(frozen=True)
class Thresholds:
    stuck_after_s: float = 900.0  # a `syncing` claim older than this is stuck
    heartbeat_stale_s: float = 120.0  # a run whose heartbeat is older is dead (the engine's own rule)
    max_failed: int = 10  # failed rows (not dead-lettered) of an entity above this fail; 1..max warn
    max_dead_lettered: int = 0  # dead-lettered rows of an entity above this fail
    max_backlog_age_s: float = 3600.0  # the oldest due row may wait this long
    activity_hours: float = 24.0  # a run must have started within this many hours
    min_success_rate: float = 0.9  # over 24 h; below warns
    budget_warn_ratio: float = 0.8  # API calls today / daily budget above this warns; >= 1 fails

    @classmethod
    def from_env(cls, env=None) -> Thresholds:
        env = environ(env)
        for old in IGNORED:
            if env.get(old):
                warnings.warn(
                    f"{old} no longer has an effect: a failed row warns, more than ZOHO_MAX_FAILED_ROWS fail",
                    DeprecationWarning,
                    stacklevel=2,
                )
        values = {}
        for f in fields(cls):
            name, old_names = ENV_VARS[f.name]
            default = getattr(cls, f.name)
            values[f.name] = number(renamed(name, old_names, env), default, type(default), env)
        return cls(**values)


# field → (environment variable, the names it had before this release)
ENV_VARS = {
    "stuck_after_s": ("ZOHO_STUCK_AFTER_S", ("ZOHO_CHECK_STUCK_AFTER_S",)),
    "heartbeat_stale_s": ("ZOHO_SYNC_RUN_STALE_AFTER_S", ("ZOHO_HEALTH_HEARTBEAT_STALE_S",)),
    "max_failed": (
        "ZOHO_MAX_FAILED_ROWS",
        ("ZOHO_HEALTH_MAX_FAILED", "ZOHO_CHECK_FAILED_ERROR", "ALERT_FAILED_THRESHOLD"),
    ),
    "max_dead_lettered": ("ZOHO_MAX_DEAD_LETTERED", ("ZOHO_HEALTH_MAX_DEAD_LETTERED",)),
    "max_backlog_age_s": ("ZOHO_MAX_BACKLOG_AGE_S", ("ZOHO_HEALTH_MAX_BACKLOG_AGE_S", "ZOHO_CHECK_FRESHNESS_S")),
    "activity_hours": ("ZOHO_HEALTH_ACTIVITY_HOURS", ()),
    "min_success_rate": ("ZOHO_HEALTH_MIN_SUCCESS_RATE", ()),
    "budget_warn_ratio": ("ZOHO_HEALTH_BUDGET_WARN_RATIO", ()),
}
IGNORED = ("ZOHO_CHECK_FAILED_WARN",)  # its fact is gone: any failed row warns


def thresholds_help() -> str:
    """The variables and their defaults, for --help."""
    return ", ".join(f"{ENV_VARS[f.name][0]} ({getattr(Thresholds, f.name):g})" for f in fields(Thresholds)) + "."
