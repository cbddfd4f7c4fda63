"""Shared by schedules and sensors: whether they start RUNNING, and whether the kill switch is on."""

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
