"""Issue 12, low items: data never becomes Slack markup in a webhook alert, and bound parameters (the access token
in zoho_oauth_tokens) never reach a log through SQLAlchemy's logging."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from zoho_pipeline.monitor.alert_types import AlertEvent, AlertSettings
from zoho_pipeline.monitor.messages import webhook_payload
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync.stores import DbTokenStore
from zoho_pipeline.zoho.auth import CachedToken
from zoho_pipeline_tests.support.rows import make_source

HOSTILE = "Thandi <!channel> <https://evil.example/login|Reset your password> & co"


def test_a_customer_name_never_pings_the_channel_nor_disguises_a_link():
    event = AlertEvent(
        kind="failed_rows",
        title=f"1 row failed: {HOSTILE}",
        summary=f"customer {HOSTILE} failed",
        details={"customer": HOSTILE},
        rows=[{"entity": "customers", "label": HOSTILE, "error": "email: <!here> is not valid"}],
        link="https://dagster.example/runs/1",
    )
    payload = webhook_payload(event, AlertSettings(webhook_url="https://hooks.slack.com/services/T/B/X"))
    text = json.dumps(payload)
    assert "<!channel>" not in text and "<!here>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "&amp; co" in text
    assert "<https://dagster.example/runs/1|Dagster UI>" in text  # our own link stays a link


def test_bound_parameters_never_reach_the_sql_log(sqlite_url, caplog):
    make_source(sqlite_url).dispose()
    engine = make_engine(sqlite_url, echo=True)
    secret = "1000.access-token-that-must-not-be-logged"
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        DbTokenStore(engine).save("k", CachedToken(secret, datetime.now(UTC) + timedelta(hours=1)))
    assert caplog.records, "SQLAlchemy logged nothing: the test would prove nothing"
    assert secret not in caplog.text
    engine.dispose()
