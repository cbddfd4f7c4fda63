"""ops.alerts against a local SMTP server and a local HTTP webhook receiver: content, formats, one alert per change
of state plus one on recovery, dry run sends nothing, secrets never leave."""

from __future__ import annotations

import email
import email.policy
import io
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zoho_pipeline.cli import alert as alert_cmd
from zoho_pipeline.monitor import alerts
from zoho_pipeline_tests.support.rows import make_source, scenario

SECRET = "s3cr3t-ZOHO-refresh-9a7e"
SMTP_PASSWORD = "smtp-pa55-word"


# --- a tiny SMTP server: EHLO/HELO, AUTH PLAIN/LOGIN (accepted), MAIL, RCPT, DATA, RSET, NOOP, QUIT ------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 localhost test SMTP")
        envelope = {"from": None, "to": [], "auth": None}
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            cmd = line.split(" ", 1)[0].upper()
            if cmd in ("EHLO", "HELO"):
                self.wfile.write(b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            elif cmd == "AUTH":
                envelope["auth"] = line
                self.reply("235 2.7.0 Authentication successful")
            elif cmd == "MAIL":
                envelope["from"] = line.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif cmd == "RCPT":
                envelope["to"].append(line.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif cmd == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    data = self.rfile.readline()
                    if data in (b".\r\n", b".\n", b""):
                        break
                    chunks.append(data[1:] if data.startswith(b"..") else data)
                self.server.messages.append({**envelope, "data": b"".join(chunks)})
                envelope = {"from": None, "to": [], "auth": envelope["auth"]}
                self.reply("250 OK queued")
            elif cmd in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif cmd == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def smtp_server():
    server = _SMTPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook_server():
    received = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(status["code"])
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.received = received
    server.status = status
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook/{SECRET}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(monkeypatch, smtp_server, webhook_server):
    for k in list(__import__("os").environ):
        if k.startswith("ALERT_"):
            monkeypatch.delenv(k)
    values = {
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(smtp_server.server_address[1]),
        "ALERT_SMTP_USER": "alerts@example.co.za",
        "ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "ALERT_SMTP_STARTTLS": "false",
        "ALERT_EMAIL_FROM": "zoho-pipeline@example.co.za",
        "ALERT_EMAIL_TO": "ops@example.co.za, finance@example.co.za",
        "ALERT_WEBHOOK_URL": webhook_server.url,
        "ZOHO_REFRESH_TOKEN": SECRET,
        "ZOHO_CLIENT_SECRET": "client-secret-5f1c",
        "SOME_API_TOKEN": "tok-abcdef",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def _event(**kw) -> alerts.AlertEvent:
    base = dict(
        kind="failed_rows",
        title="2 rows failed to sync",
        severity="error",
        details={"customers": "1 failed", "invoices": "1 failed"},
        rows=[
            {
                "entity": "customers",
                "label": "Thandi Nkosi <thandi@example.co.za>",
                "error_code": "4",
                "error": f"Invalid value; refresh_token={SECRET}",
                "attempts": 1,
            },
            {
                "entity": "invoices",
                "label": "INV-2025-000123",
                "error_code": "1001",
                "error": "Customer does not exist <b>",
                "attempts": 2,
                "dead_lettered": True,
            },
        ],
    )
    base.update(kw)
    return alerts.AlertEvent(**base)


def _parse(message: dict):
    return email.message_from_bytes(message["data"], policy=email.policy.default)


def _everything_sent(smtp_server, webhook_server) -> str:
    parts = [m["data"].decode("utf-8", "replace") for m in smtp_server.messages]
    for m in smtp_server.messages:
        msg = _parse(m)
        parts += [p.get_content() for p in msg.iter_parts()] + [str(msg["Subject"])]
    parts += [r["body"].decode() for r in webhook_server.received]
    return "\n".join(parts)


def test_email_multipart_html_and_text(env, smtp_server, webhook_server):
    result = alerts.send_alert(_event())
    assert result["sent"] == ["email", "webhook"] and not result["errors"]
    assert len(smtp_server.messages) == 1
    m = smtp_server.messages[0]
    assert m["to"] == ["<ops@example.co.za>", "<finance@example.co.za>"]
    assert m["auth"] is not None  # logged in with the configured user
    msg = _parse(m)
    assert msg["Subject"] == "[zoho-pipeline ALERT] 2 rows failed to sync"
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    text, html_ = (p.get_content() for p in msg.iter_parts())
    assert "Thandi Nkosi <thandi@example.co.za>" in text and "INV-2025-000123" in text
    assert "Thandi Nkosi &lt;thandi@example.co.za&gt;" in html_ and "<table" in html_
    assert "Customer does not exist &lt;b&gt;" in html_  # escaped, never injected


def test_webhook_generic_carries_slack_and_discord_keys(env, smtp_server, webhook_server):
    alerts.send_alert(_event())
    assert len(webhook_server.received) == 1
    req = webhook_server.received[0]
    assert req["headers"]["Content-Type"] == "application/json"
    body = json.loads(req["body"])
    assert {"text", "blocks", "content", "embeds", "event"} <= set(body)
    assert body["blocks"][0]["type"] == "header"
    assert body["embeds"][0]["title"] == "2 rows failed to sync"
    assert body["event"]["kind"] == "failed_rows"


@pytest.mark.parametrize(
    "fmt,keys,absent",
    [("slack", {"text", "blocks"}, {"content", "embeds"}), ("discord", {"content", "embeds"}, {"text", "blocks"})],
)
def test_webhook_formats(env, monkeypatch, smtp_server, webhook_server, fmt, keys, absent):
    monkeypatch.setenv("ALERT_WEBHOOK_FORMAT", fmt)
    monkeypatch.delenv("ALERT_SMTP_HOST")
    result = alerts.send_alert(_event())
    assert result["sent"] == ["webhook"] and smtp_server.messages == []
    body = json.loads(webhook_server.received[0]["body"])
    assert keys <= set(body) and not absent & set(body)
    if fmt == "discord":
        assert body["embeds"][0]["color"] == 0xC62828
        assert any("INV-2025-000123" in f["value"] for f in body["embeds"][0]["fields"])


def test_auto_format_by_url():
    assert alerts.webhook_format(alerts.AlertSettings(webhook_url="https://hooks.slack.com/services/x")) == "slack"
    assert alerts.webhook_format(alerts.AlertSettings(webhook_url="https://discord.com/api/webhooks/1/x")) == "discord"
    assert alerts.webhook_format(alerts.AlertSettings(webhook_url="https://example.com/hook")) == "generic"


def test_secrets_never_sent(env, smtp_server, webhook_server):
    ev = _event(
        summary=f"token {SECRET}; smtp {SMTP_PASSWORD}; client client-secret-5f1c; other tok-abcdef",
        details={"url": f"postgresql://zoho:{SMTP_PASSWORD}@db/billing", "secret": SECRET},
    )
    alerts.send_alert(ev)
    sent = _everything_sent(smtp_server, webhook_server)
    assert sent and "***" in sent
    for secret in (SECRET, SMTP_PASSWORD, "client-secret-5f1c", "tok-abcdef"):
        assert secret not in sent


def test_dry_run_sends_nothing_and_prints(env, smtp_server, webhook_server):
    out = io.StringIO()
    result = alerts.send_alert(_event(), dry_run=True, out=out)
    assert result["dry_run"] and result["sent"] == []
    assert smtp_server.messages == [] and webhook_server.received == []
    printed = out.getvalue()
    assert "DRY RUN" in printed and "INV-2025-000123" in printed and '"blocks"' in printed
    assert SECRET not in printed  # neither in the bodies nor the webhook URL (only its host is shown)


def test_failing_target_does_not_hide_the_other(env, monkeypatch, smtp_server, webhook_server):
    webhook_server.status["code"] = 500
    result = alerts.send_alert(_event())
    assert result["sent"] == ["email"] and "webhook" in result["errors"]
    monkeypatch.setenv("ALERT_SMTP_PORT", "1")  # nothing listens there
    result = alerts.send_alert(_event())
    assert "email" in result["errors"] and SMTP_PASSWORD not in json.dumps(result)


def test_one_alert_per_state_change_and_recovery(env, sqlite_url, smtp_server, webhook_server):
    engine = make_source(sqlite_url)
    ev = _event()
    states = [True, True, True, False, False, True, False]
    actions = [alerts.alert_on_state_change(engine, "failed_rows", s, ev)["action"] for s in states]
    assert actions == ["alerted", "unchanged", "unchanged", "recovered", "unchanged", "alerted", "recovered"]
    assert len(smtp_server.messages) == 4 and len(webhook_server.received) == 4
    subjects = [str(_parse(m)["Subject"]) for m in smtp_server.messages]
    assert subjects[1] == "[zoho-pipeline OK] Recovered: failed_rows"
    recovery = json.loads(webhook_server.received[1]["body"])
    assert recovery["event"]["kind"] == "check_recovered" and recovery["event"]["severity"] == "info"
    assert alerts.alert_state(engine, "failed_rows") == "ok"
    # healthy from the start: nothing sent
    assert alerts.alert_on_state_change(engine, "other", False, ev)["action"] == "unchanged"
    assert len(smtp_server.messages) == 4


def test_state_change_dry_run_keeps_state(env, sqlite_url, smtp_server, webhook_server):
    engine = make_source(sqlite_url)
    out = io.StringIO()
    r = alerts.alert_on_state_change(engine, "k", True, _event(), dry_run=True, out=out)
    assert r["action"] == "alerted" and "DRY RUN" in out.getvalue()
    assert smtp_server.messages == [] and alerts.alert_state(engine, "k") is None
    assert alerts.alert_on_state_change(engine, "k", True, _event())["action"] == "alerted"
    assert len(smtp_server.messages) == 1


def test_send_failure_keeps_state_for_retry(env, monkeypatch, sqlite_url, smtp_server, webhook_server):
    engine = make_source(sqlite_url)
    monkeypatch.setenv("ALERT_SMTP_PORT", "1")
    monkeypatch.delenv("ALERT_WEBHOOK_URL")
    r = alerts.alert_on_state_change(engine, "k", True, _event())
    assert r["action"] == "send_failed" and alerts.alert_state(engine, "k") is None
    monkeypatch.setenv("ALERT_SMTP_PORT", str(smtp_server.server_address[1]))
    assert alerts.alert_on_state_change(engine, "k", True, _event())["action"] == "alerted"


def test_reminder_after(env, monkeypatch, sqlite_url, smtp_server, webhook_server):
    engine = make_source(sqlite_url)
    monkeypatch.setenv("ALERT_REMIND_AFTER_S", "0.000001")
    assert alerts.alert_on_state_change(engine, "k", True, _event())["action"] == "alerted"
    assert alerts.alert_on_state_change(engine, "k", True, _event())["action"] == "reminded"


def test_send_alert_accepts_a_dict(env, smtp_server, webhook_server):
    # the Dagster run-failure sensor passes the event's fields as a dict
    result = alerts.send_alert(
        {
            "kind": "run_failed",
            "severity": "error",
            "title": "ZOHO sync run failed: job",
            "summary": "boom",
            "details": {"run_id": "abc"},
        }
    )
    assert result["sent"] == ["email", "webhook"]


# --- the `alert` command ----------------------------------------------------------------------------------------


def test_alert_command_once_per_change(env, monkeypatch, sqlite_url, smtp_server, webhook_server, capsys):
    engine = make_source(sqlite_url)
    scenario(engine)
    monkeypatch.setenv("SOURCE_DATABASE_URL", sqlite_url)
    assert alert_cmd.main(["--dry-run"]) == 1
    assert smtp_server.messages == [] and webhook_server.received == []
    assert "DRY RUN" in capsys.readouterr().out
    assert alert_cmd.main([]) == 1
    assert len(smtp_server.messages) == 2  # failed rows + stuck rows
    text = "\n".join(p.get_content() for m in smtp_server.messages for p in _parse(m).iter_parts())
    assert "Pieter van Wyk <pieter@example.co.za>" in text and "INV-2025-000123" in text
    assert "Aisha Patel <aisha@example.co.za>" in text  # the stuck row
    assert alert_cmd.main([]) == 1
    assert len(smtp_server.messages) == 2  # unchanged: no new alert
    # everything fixed → one recovery each, exit 0
    from zoho_pipeline.source import tables as T

    with engine.begin() as conn:
        for t in (T.customers, T.customer_invoices):
            conn.execute(t.update().values(zoho_sync_status="synced", zoho_dead_lettered=False))
    capsys.readouterr()
    assert alert_cmd.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["action"] for c in out["checks"]] == ["recovered", "recovered"]
    assert len(smtp_server.messages) == 4
    assert alert_cmd.main([]) == 0 and len(smtp_server.messages) == 4


def test_alert_command_test_and_no_targets(env, monkeypatch, smtp_server, webhook_server, capsys):
    assert alert_cmd.main(["--test"]) == 0
    assert len(smtp_server.messages) == 1 and len(webhook_server.received) == 1
    for k in ("ALERT_SMTP_HOST", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(k)
    assert alert_cmd.main(["--test"]) == 2
