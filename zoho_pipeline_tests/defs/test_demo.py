"""The demo deployment (`make dev` sets DAGSTER_DEPLOYMENT=demo): schedules and sensors run, and a value that is
neither production nor demo is an error naming the variable, never a silent default."""

from __future__ import annotations

import dagster as dg
import pytest

from zoho_pipeline.defs import switches


@pytest.fixture
def early_emulator():
    """An emulator whose clock starts on the demo's day (the shared fixture's starts at the wall clock)."""
    from zoho_pipeline_tests.support.emulator import start_emulator

    handle = start_emulator(start_time="2026-05-09T06:00:00Z")
    yield handle
    handle.stop()


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


def test_the_month_job_exists_only_in_the_demo(monkeypatch):
    from zoho_pipeline.defs.demo import demo_jobs

    monkeypatch.delenv("DAGSTER_DEPLOYMENT", raising=False)
    assert demo_jobs() == []
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", "production")
    assert demo_jobs() == []
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", "demo")
    assert [j.name for j in demo_jobs()] == ["zoho_demo_month_job"]


def test_the_month_job_plays_a_month_and_moves_zoho_clock(sqlite_url, early_emulator, zoho_config):
    import datetime as dt

    from zoho_pipeline.defs.demo import zoho_demo_month_job
    from zoho_pipeline.source.migrate import create_demo
    from zoho_pipeline_tests.support.dagster import make_resources
    from zoho_pipeline_tests.support.emulator import zoho_config as emulator_config

    create_demo(sqlite_url, customers=20, seed=4, today=dt.date(2026, 5, 9))
    resources = make_resources(sqlite_url, emulator_config(early_emulator.url))
    result = zoho_demo_month_job.execute_in_process(resources={k: resources[k] for k in ("source", "zoho", "engine")})
    assert result.success
    played = result.output_for_node("play_demo_month")
    assert played["month"] == "2026-06-01" and played["recurring_invoices"] > 0
    assert early_emulator.clock() == "2026-06-01T06:00:00Z"
    [materialization] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialization.event_specific_data.metadata
    assert metadata["zoho_clock"].value.startswith("2026-06-01T06:00") and metadata["new_customers"].value >= 2


def test_partitions_start_is_read_strictly():
    from zoho_pipeline.defs.partitions import DEFAULT_START, partitions_start

    assert partitions_start({}) == DEFAULT_START
    assert partitions_start({"ZOHO_PARTITIONS_START": "2026-06-01"}) == "2026-06-01"
    with pytest.raises(ValueError, match="ZOHO_PARTITIONS_START='June 2026' is not a date"):
        partitions_start({"ZOHO_PARTITIONS_START": "June 2026"})
