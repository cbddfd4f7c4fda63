"""Issue 12, low item: two `alert` runs at once send an alert once. Each evaluation of a key holds the key's claim
(zoho_pipeline_state) while it decides and sends, so the second sees the state the first recorded."""

from __future__ import annotations

import threading
import time

from zoho_pipeline.monitor import alerts
from zoho_pipeline.monitor.alert_types import AlertEvent, AlertSettings
from zoho_pipeline_tests.support.rows import make_source


def test_two_evaluations_at_once_send_one_alert(db_url, monkeypatch):
    engine = make_source(db_url)
    sent = []

    def slow_send(event, settings, dry_run=False, out=None):  # a webhook that takes a while to answer
        time.sleep(0.5)
        sent.append(event.title)
        return {"sent": ["webhook"], "errors": {}}

    monkeypatch.setattr(alerts, "send_alert", slow_send)
    settings = AlertSettings(webhook_url="https://hooks.example/x")
    event = AlertEvent(kind="failed_rows", title="2 customers failed")
    start = threading.Barrier(2)
    actions = []

    def evaluate():
        start.wait()
        actions.append(alerts.alert_on_state_change(engine, "failed_rows", True, event, settings)["action"])

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sent == ["2 customers failed"]
    assert sorted(actions) == ["alerted", "unchanged"]
    assert alerts.alert_state(engine, "failed_rows") == "failing"
    engine.dispose()
