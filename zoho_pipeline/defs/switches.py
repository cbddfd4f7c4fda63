"""The switches schedules and sensors share: whether they start RUNNING (DAGSTER_DEPLOYMENT=production, or demo:
`make dev`, the whole product on one machine), and what they say when the kill switch (ENABLE_ZOHO_SYNC=false) is
off."""

from __future__ import annotations

import dagster as dg

from zoho_pipeline.env import text

DEPLOYMENTS = ("production", "demo")


def deployment() -> str | None:
    """DAGSTER_DEPLOYMENT: production, demo, or unset (tests, a bare `dagster dev`); anything else is an error
    naming the variable."""
    value = (text("DAGSTER_DEPLOYMENT") or "").strip().lower() or None
    if value not in (None, *DEPLOYMENTS):
        raise ValueError(f"DAGSTER_DEPLOYMENT={value!r} is not one of {', '.join(DEPLOYMENTS)} (or unset)")
    return value


def is_demo() -> bool:
    return deployment() == "demo"


def default_status_is_running() -> bool:
    return deployment() is not None


def default_schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if default_status_is_running() else dg.DefaultScheduleStatus.STOPPED


def default_sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if default_status_is_running() else dg.DefaultSensorStatus.STOPPED


KILL_SWITCH_SKIP = "ENABLE_ZOHO_SYNC is false: the sync is switched off, no run requested"
