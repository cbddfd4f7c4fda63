"""The switches schedules and sensors share: whether they start RUNNING (DAGSTER_DEPLOYMENT=production), and what
they say when the kill switch (ENABLE_ZOHO_SYNC=false) is off."""

from __future__ import annotations

import dagster as dg

from zoho_pipeline.env import text


def default_status_is_running() -> bool:
    return (text("DAGSTER_DEPLOYMENT") or "").strip().lower() == "production"


def default_schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if default_status_is_running() else dg.DefaultScheduleStatus.STOPPED


def default_sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if default_status_is_running() else dg.DefaultSensorStatus.STOPPED


KILL_SWITCH_SKIP = "ENABLE_ZOHO_SYNC is false: the sync is switched off, no run requested"
