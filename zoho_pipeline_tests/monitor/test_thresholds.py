"""One number and one variable per fact; the names before this release still work, with a warning."""

from __future__ import annotations

import pytest

from zoho_pipeline.monitor.thresholds import ENV_VARS, Thresholds


def test_each_fact_has_one_variable_and_the_dataclass_default():
    assert Thresholds.from_env({}) == Thresholds()
    names = [name for name, _ in ENV_VARS.values()]
    assert len(names) == len(set(names))
    th = Thresholds.from_env({"ZOHO_MAX_FAILED_ROWS": "3", "ZOHO_STUCK_AFTER_S": "60"})
    assert (th.max_failed, th.stuck_after_s) == (3, 60.0)


@pytest.mark.parametrize(
    "old, field",
    [
        ("ZOHO_CHECK_FAILED_ERROR", "max_failed"),
        ("ALERT_FAILED_THRESHOLD", "max_failed"),
        ("ZOHO_HEALTH_MAX_FAILED", "max_failed"),
        ("ZOHO_CHECK_FRESHNESS_S", "max_backlog_age_s"),
        ("ZOHO_CHECK_STUCK_AFTER_S", "stuck_after_s"),
        ("ZOHO_HEALTH_HEARTBEAT_STALE_S", "heartbeat_stale_s"),
    ],
)
def test_an_old_name_still_works_with_a_warning(old, field):
    with pytest.warns(DeprecationWarning, match=ENV_VARS[field][0]):
        assert getattr(Thresholds.from_env({old: "7"}), field) == 7


def test_the_new_name_wins_and_a_malformed_value_names_its_variable():
    assert Thresholds.from_env({"ZOHO_MAX_FAILED_ROWS": "2", "ZOHO_HEALTH_MAX_FAILED": "9"}).max_failed == 2
    with pytest.raises(ValueError, match="ZOHO_MAX_FAILED_ROWS"):
        Thresholds.from_env({"ZOHO_MAX_FAILED_ROWS": "ten"})
