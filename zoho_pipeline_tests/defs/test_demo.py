"""The demo deployment (`make dev` sets DAGSTER_DEPLOYMENT=demo): schedules and sensors run, and a value that is
neither production nor demo is an error naming the variable, never a silent default."""

from __future__ import annotations

import dagster as dg
import pytest

from zoho_pipeline.defs import switches


@pytest.mark.parametrize("value", ["demo", "production", " Demo "])
def test_demo_and_production_run_schedules_and_sensors(monkeypatch, value):
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", value)
    assert switches.default_schedule_status() == dg.DefaultScheduleStatus.RUNNING
    assert switches.default_sensor_status() == dg.DefaultSensorStatus.RUNNING
    assert switches.is_demo() == (value.strip().lower() == "demo")


def test_unset_stops_them(monkeypatch):
    monkeypatch.delenv("DAGSTER_DEPLOYMENT", raising=False)
    assert switches.default_sensor_status() == dg.DefaultSensorStatus.STOPPED
    assert not switches.is_demo()


def test_a_typo_names_the_variable(monkeypatch):
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", "prodcution")
    with pytest.raises(ValueError, match="DAGSTER_DEPLOYMENT='prodcution' is not one of production, demo"):
        switches.default_schedule_status()
