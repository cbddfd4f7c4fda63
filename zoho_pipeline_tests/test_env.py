"""Issue 12 item 4: strict configuration. A typo is an error naming the variable, never a silent "off"; a number
or an enum that does not parse names the variable and what it accepts; an unknown ZOHO_*/ALERT_* variable is warned
about with the likely intended name; and `status` never calls a variable unset because another one is malformed."""

from __future__ import annotations

import os

import pytest

from zoho_pipeline import env
from zoho_pipeline.cli import main as cli
from zoho_pipeline.env import ConfigError
from zoho_pipeline.monitor.alert_types import AlertSettings
from zoho_pipeline.monitor.thresholds import Thresholds
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline_tests.support.rows import make_source, scenario

ZOHO_BASE = {"ZOHO_CLIENT_ID": "id", "ZOHO_CLIENT_SECRET": "s", "ZOHO_REFRESH_TOKEN": "r", "ZOHO_ORGANIZATION_ID": "o"}


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes", "YES", " yes "])
def test_true_spellings(value):
    assert SyncSettings.from_env({"ENABLE_ZOHO_SYNC": value}).enabled is True


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", "No"])
def test_false_spellings(value):
    assert SyncSettings.from_env({"ENABLE_ZOHO_SYNC": value}).enabled is False


@pytest.mark.parametrize("value", ["ture", "flase", "on", "off", "y", "n", "2", "enabled"])
def test_any_other_boolean_is_an_error_naming_the_variable(value):
    with pytest.raises(ConfigError) as exc:
        SyncSettings.from_env({"ENABLE_ZOHO_SYNC": value})
    assert exc.value.variables == ["ENABLE_ZOHO_SYNC"]
    assert f"ENABLE_ZOHO_SYNC={value!r}" in str(exc.value) and "true/false, 1/0 or yes/no" in str(exc.value)


def test_a_starttls_typo_is_an_error_not_tls_off():
    with pytest.raises(ConfigError) as exc:
        AlertSettings.from_env({"ALERT_SMTP_HOST": "smtp.example.co.za", "ALERT_SMTP_STARTTLS": "ture"})
    assert exc.value.variables == ["ALERT_SMTP_STARTTLS"]
    assert AlertSettings.from_env({"ALERT_SMTP_STARTTLS": "yes"}).smtp_starttls is True
    assert AlertSettings.from_env({}).smtp_starttls is None  # unset: decided from port and user, as before


@pytest.mark.parametrize("value", ["15m", "-5", "1.5", "nan", "1e400", "100/min"])
def test_a_malformed_number_names_the_variable_and_what_it_takes(value):
    with pytest.raises(ConfigError) as exc:
        ZohoConfig.from_env({**ZOHO_BASE, "ZOHO_RATE_LIMIT_PER_MINUTE": value})
    assert exc.value.variables == ["ZOHO_RATE_LIMIT_PER_MINUTE"]
    assert "a whole number" in str(exc.value)


def test_every_malformed_variable_is_named_at_once():
    with pytest.raises(ConfigError) as exc:
        AlertSettings.from_env(
            {
                "ALERT_SMTP_PORT": "smtp",
                "ALERT_REMIND_AFTER_S": "1h",
                "ALERT_SMTP_SSL": "sure",
                "ALERT_SMTP_STARTTLS": "1",
            }
        )
    assert exc.value.variables == ["ALERT_SMTP_PORT", "ALERT_SMTP_SSL", "ALERT_REMIND_AFTER_S"]
    with pytest.raises(ConfigError) as exc:
        Thresholds.from_env({"ZOHO_MAX_FAILED_ROWS": "ten", "ZOHO_STUCK_AFTER_S": "15 min"})
    assert sorted(exc.value.variables) == ["ZOHO_MAX_FAILED_ROWS", "ZOHO_STUCK_AFTER_S"]


def test_enums_name_the_variable_and_the_accepted_values():
    with pytest.raises(ConfigError) as exc:
        AlertSettings.from_env({"ALERT_WEBHOOK_FORMAT": "slak"})
    assert exc.value.variables == ["ALERT_WEBHOOK_FORMAT"] and "auto, slack, discord, generic" in str(exc.value)
    assert AlertSettings.from_env({"ALERT_WEBHOOK_FORMAT": "Slack"}).webhook_format == "slack"
    with pytest.raises(ConfigError) as exc:
        ZohoConfig.from_env({**ZOHO_BASE, "ZOHO_REGION": "moon"})
    assert exc.value.variables == ["ZOHO_REGION"] and "com, eu, in" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        env.choice("ZOHO_SYNC_LOG_LEVEL", "warning", ("debug", "info", "warning"), {"ZOHO_SYNC_LOG_LEVEL": "loud"})
    assert exc.value.variables == ["ZOHO_SYNC_LOG_LEVEL"]


def test_unknown_variables_are_warned_with_the_likely_name():
    warnings = env.unknown_variables(
        {"ZOHO_RATE_LIMT_PER_MINUTE": "50", "ALERT_SMTP_STARTLS": "true", "ZOHO_REGION": "eu", "PATH": "/bin"}
    )
    assert len(warnings) == 2
    assert "ALERT_SMTP_STARTLS" in warnings[0] and "did you mean ALERT_SMTP_STARTTLS?" in warnings[0]
    assert "ZOHO_RATE_LIMT_PER_MINUTE" in warnings[1] and "did you mean ZOHO_RATE_LIMIT_PER_MINUTE?" in warnings[1]
    # every variable the code reads is known, old names included
    for name in ("ZOHO_SYNC_CLAIM_CHUNK", "ZOHO_CHECK_FRESHNESS_S", "ALERT_DRY_RUN", "ZOHO_SYNC_CRON"):
        assert name in env.known_variables()


@pytest.fixture
def cli_env(sqlite_url, monkeypatch):
    for k in list(os.environ):
        if k.startswith(("ZOHO_", "ALERT_")) or k == "ENABLE_ZOHO_SYNC":
            monkeypatch.delenv(k)
    engine = make_source(sqlite_url)
    scenario(engine)
    engine.dispose()
    monkeypatch.setenv("SOURCE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ZOHO_ORGANIZATION_ID", "org-7001")
    return monkeypatch


def test_status_names_the_malformed_variable_and_still_shows_the_organization(cli_env, capsys):
    cli_env.setenv("ZOHO_RATE_LIMIT_PER_MINUTE", "15m")
    code = cli.main(["status"])
    out = capsys.readouterr().out
    assert code == 2
    assert "Configuration error: ZOHO_RATE_LIMIT_PER_MINUTE='15m' is not valid: a whole number" in out
    assert "for organization org-7001" in out
    assert "not set" not in out


def test_the_cli_warns_about_an_unknown_variable_and_names_a_malformed_one(cli_env, capsys):
    cli_env.setenv("ZOHO_DAILY_BUDGT", "500")
    assert cli.main(["status"]) == 0
    err = capsys.readouterr().err
    assert "ZOHO_DAILY_BUDGT is set but zoho-pipeline reads no such variable (did you mean ZOHO_DAILY_BUDGET?)" in err
    cli_env.setenv("ENABLE_ZOHO_SYNC", "ture")
    assert cli.main(["health", "--no-api"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: ENABLE_ZOHO_SYNC='ture' is not valid" in err
    assert "Traceback" not in err


def test_alert_with_a_starttls_typo_sends_nothing(env, smtp_server, capsys, monkeypatch):
    monkeypatch.setenv("ALERT_SMTP_STARTTLS", "ture")
    assert cli.main(["alert", "--test"]) == 2
    assert "ALERT_SMTP_STARTTLS='ture'" in capsys.readouterr().err
    assert smtp_server.messages == []


def test_the_dagster_resources_refuse_a_malformed_pace():
    from zoho_pipeline.defs.resources import zoho_resource_from_env

    with pytest.raises(ConfigError) as exc:
        zoho_resource_from_env({**ZOHO_BASE, "ZOHO_RATE_LIMIT_PER_MINUTE": "15m"})
    assert exc.value.variables == ["ZOHO_RATE_LIMIT_PER_MINUTE"]
