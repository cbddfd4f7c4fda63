"""Alerts: email (SMTP, multipart HTML + plain text) and a webhook (Slack, Discord or generic JSON).

    event = AlertEvent(kind="failed_rows", title="3 rows failed to sync to ZOHO", severity="error",
                       details={"customers": 2, "invoices": 1}, rows=[{...}, ...])
    send_alert(event)                      # to every configured target
    send_alert(event, dry_run=True)        # print what would be sent; send nothing
    alert_on_state_change(engine, "failed_rows", is_failing=True, event=event)   # once per change of state

Configuration (environment, a `.env` is read by the CLI):
- email: ALERT_SMTP_HOST, ALERT_SMTP_PORT (587), ALERT_SMTP_USER, ALERT_SMTP_PASSWORD, ALERT_SMTP_STARTTLS
  (true|false; default true when a user is set and the port is not 25), ALERT_SMTP_SSL (implicit TLS, port 465),
  ALERT_EMAIL_FROM, ALERT_EMAIL_TO (comma-separated).
- webhook: ALERT_WEBHOOK_URL, ALERT_WEBHOOK_FORMAT = slack | discord | generic | auto (default auto: Slack for
  hooks.slack.com, Discord for discord.com/api/webhooks, otherwise generic, which carries Slack's `text` +
  `blocks`, Discord's `content` + `embeds` and the structured `event`, so most receivers understand it).
- ALERT_REMIND_AFTER_S: re-send a still-failing alert after this long (default 0: only on changes of state).

Secrets never leave: before anything is sent or printed, every value of an environment variable whose name contains
SECRET, TOKEN, PASSWORD or PASSWD (and the ZOHO client secret and refresh token, and the password of any database
URL in the environment) is replaced by ***.
"""

from __future__ import annotations

import html
import json
import os
import re
import smtplib
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Mapping

import requests

from zoho_pipeline.env import flag
from zoho_pipeline.zoho.redact import MASK

KINDS = ("run_failed", "check_failed", "check_recovered", "failed_rows", "stuck_rows", "test")
SEVERITIES = ("info", "warning", "error", "critical")
_COLOURS = {"info": 0x2E7D32, "warning": 0xF9A825, "error": 0xC62828, "critical": 0x6A1B9A}
_EMOJI = {"info": ":white_check_mark:", "warning": ":warning:", "error": ":rotating_light:",
          "critical": ":fire:"}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s/]+)@")
MAX_ROWS = 25  # rows listed in one alert; the rest are counted


@dataclass
class AlertEvent:
    kind: str  # run_failed, check_failed, check_recovered, failed_rows, stuck_rows, test
    title: str
    severity: str = "error"  # info, warning, error, critical
    details: dict[str, Any] = field(default_factory=dict)  # short facts: "customers failed": 2, "run": "..."
    rows: list[dict[str, Any]] = field(default_factory=list)  # the rows concerned (label, error, ...)
    summary: str = ""  # one paragraph for people; defaults to the title
    link: str | None = None  # e.g. the Dagster UI page to open
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AlertSettings:
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool | None = None  # None: decide from port and user
    smtp_ssl: bool = False
    smtp_timeout_s: float = 20.0
    email_from: str | None = None
    email_to: list[str] = field(default_factory=list)
    webhook_url: str | None = field(default=None, repr=False)  # a Slack/Discord URL is itself a secret
    webhook_format: str = "auto"
    webhook_timeout_s: float = 10.0
    remind_after_s: float = 0.0
    dagster_ui_url: str | None = None
    extra_secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AlertSettings":
        env = os.environ if env is None else env
        port = env.get("ALERT_SMTP_PORT") or ""
        return cls(
            smtp_host=env.get("ALERT_SMTP_HOST") or None,
            smtp_port=int(port) if port.strip() else 587,
            smtp_user=env.get("ALERT_SMTP_USER") or None,
            smtp_password=env.get("ALERT_SMTP_PASSWORD") or None,
            smtp_starttls=None if not env.get("ALERT_SMTP_STARTTLS") else flag(env.get("ALERT_SMTP_STARTTLS"), True),
            smtp_ssl=flag(env.get("ALERT_SMTP_SSL"), False),
            email_from=env.get("ALERT_EMAIL_FROM") or None,
            email_to=[a.strip() for a in (env.get("ALERT_EMAIL_TO") or "").split(",") if a.strip()],
            webhook_url=env.get("ALERT_WEBHOOK_URL") or None,
            webhook_format=(env.get("ALERT_WEBHOOK_FORMAT") or "auto").strip().lower(),
            remind_after_s=float(env.get("ALERT_REMIND_AFTER_S") or 0),
            dagster_ui_url=env.get("DAGSTER_UI_URL") or None,
            extra_secrets=tuple(secret_values(env)),
        )

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host and self.email_to)

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)

    @property
    def channels(self) -> list[str]:
        return [name for name, on in (("email", self.email_enabled), ("webhook", self.webhook_enabled)) if on]

    def secrets(self) -> list[str]:
        return [s for s in (self.smtp_password, *self.extra_secrets) if s]


# --- scrubbing --------------------------------------------------------------------------------------------------


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values that must never appear in an alert: env vars named like secrets, ZOHO credentials, URL passwords."""
    env = os.environ if env is None else env
    out = []
    for name, value in env.items():
        if not value:
            continue
        if SECRET_NAME.search(name) or name in ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN"):
            out.append(value)
        for match in _URL_PASSWORD.finditer(value):
            out.append(match.group(1))
    # longest first, so a secret containing another is masked whole
    return sorted({v for v in out if len(v) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
        # also the forms a secret takes once escaped into HTML or JSON
        for form in (html.escape(secret or ""), json.dumps(secret or "")[1:-1]):
            if form and len(form) >= 4 and form != secret and form in text:
                text = text.replace(form, MASK)
    return text


def _scrub_obj(value, secrets):
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {_scrub_obj(k, secrets): _scrub_obj(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_obj(v, secrets) for v in value]
    return value


# --- rendering --------------------------------------------------------------------------------------------------

ROW_COLUMNS = (("entity", "Entity"), ("label", "Row"), ("status", "Status"), ("error_code", "Code"),
               ("error", "Error"), ("attempts", "Attempts"), ("dead_lettered", "Dead letter"),
               ("reason", "Reason"), ("last_attempt_at", "Last attempt"))


def _columns(rows) -> list[tuple[str, str]]:
    present = {k for r in rows for k, v in r.items() if v not in (None, "", False)}
    return [(k, title) for k, title in ROW_COLUMNS if k in present]


def _cell(value) -> str:
    if value is True:
        return "yes"
    if value in (None, False):
        return ""
    s = " ".join(str(value).split())
    return s if len(s) <= 160 else s[:159] + "…"


def subject(event: AlertEvent) -> str:
    tag = {"info": "OK", "warning": "WARN", "error": "ALERT", "critical": "CRITICAL"}.get(event.severity, "ALERT")
    return f"[zoho-pipeline {tag}] {event.title}"


def render_text(event: AlertEvent) -> str:
    lines = [subject(event), "", event.summary or event.title, ""]
    for key, value in event.details.items():
        lines.append(f"  {key}: {_cell(value)}")
    if event.rows:
        cols = _columns(event.rows)
        lines += ["", f"Rows ({len(event.rows)}):"]
        for r in event.rows[:MAX_ROWS]:
            lines.append("  - " + " | ".join(f"{title}: {_cell(r.get(k))}" for k, title in cols if _cell(r.get(k))))
        if len(event.rows) > MAX_ROWS:
            lines.append(f"  … and {len(event.rows) - MAX_ROWS} more (zoho-pipeline status / logs)")
    if event.link:
        lines += ["", f"Open: {event.link}"]
    lines += ["", f"Kind: {event.kind} · severity: {event.severity} · at {event.created_at}",
              "Runbook: docs/runbook.md · retry with: zoho-pipeline retry --failed"]
    return "\n".join(lines) + "\n"


def render_html(event: AlertEvent) -> str:
    e = html.escape
    colour = f"#{_COLOURS.get(event.severity, 0xC62828):06x}"
    parts = [
        "<!doctype html><html><body style=\"font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222\">",
        f"<h2 style=\"margin:0 0 8px;color:{colour}\">{e(event.title)}</h2>",
        f"<p>{e(event.summary or event.title)}</p>",
    ]
    if event.details:
        parts.append("<table style=\"border-collapse:collapse\">")
        for key, value in event.details.items():
            parts.append(f"<tr><td style=\"padding:2px 12px 2px 0;color:#555\">{e(str(key))}</td>"
                         f"<td style=\"padding:2px 0\"><b>{e(_cell(value))}</b></td></tr>")
        parts.append("</table>")
    if event.rows:
        cols = _columns(event.rows)
        th = "".join(f"<th style=\"text-align:left;border-bottom:1px solid #ccc;padding:4px 8px\">{e(t)}</th>"
                     for _, t in cols)
        parts.append(f"<h3 style=\"margin:16px 0 4px\">Rows ({len(event.rows)})</h3>")
        parts.append(f"<table style=\"border-collapse:collapse\"><tr>{th}</tr>")
        for r in event.rows[:MAX_ROWS]:
            tds = "".join(f"<td style=\"border-bottom:1px solid #eee;padding:4px 8px;vertical-align:top\">"
                          f"{e(_cell(r.get(k)))}</td>" for k, _ in cols)
            parts.append(f"<tr>{tds}</tr>")
        parts.append("</table>")
        if len(event.rows) > MAX_ROWS:
            parts.append(f"<p>… and {len(event.rows) - MAX_ROWS} more (<code>zoho-pipeline status</code>).</p>")
    if event.link:
        parts.append(f"<p><a href=\"{e(event.link)}\">Open in the Dagster UI</a></p>")
    parts.append(f"<p style=\"color:#777;font-size:12px\">{e(event.kind)} · {e(event.severity)} · "
                 f"{e(event.created_at)} · runbook: docs/runbook.md · "
                 "<code>zoho-pipeline retry --failed</code></p></body></html>")
    return "\n".join(parts)


def build_email(event: AlertEvent, settings: AlertSettings) -> EmailMessage:
    secrets = settings.secrets()
    msg = EmailMessage()
    msg["Subject"] = scrub(subject(event), secrets)
    msg["From"] = settings.email_from or (settings.smtp_user if settings.smtp_user and "@" in settings.smtp_user
                                          else "zoho-pipeline@localhost")
    if settings.email_to:
        msg["To"] = ", ".join(settings.email_to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="zoho-pipeline")
    msg["X-Zoho-Pipeline-Alert"] = event.kind
    msg.set_content(scrub(render_text(event), secrets))
    msg.add_alternative(scrub(render_html(event), secrets), subtype="html")
    return msg


def webhook_format(settings: AlertSettings) -> str:
    fmt = settings.webhook_format
    if fmt in ("slack", "discord", "generic"):
        return fmt
    url = settings.webhook_url or ""
    if "hooks.slack.com" in url:
        return "slack"
    if re.search(r"discord(app)?\.com/api/webhooks", url):
        return "discord"
    return "generic"


def _slack(event: AlertEvent) -> dict:
    text = f"{_EMOJI.get(event.severity, '')} *{event.title}*".strip()
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": event.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (event.summary or event.title)[:2900]}},
    ]
    if event.details:
        fields = [{"type": "mrkdwn", "text": f"*{k}*\n{_cell(v)}"} for k, v in list(event.details.items())[:10]]
        blocks.append({"type": "section", "fields": fields})
    if event.rows:
        cols = [c for c in _columns(event.rows) if c[0] in ("entity", "label", "error_code", "error", "reason")]
        lines = [" · ".join(_cell(r.get(k)) for k, _ in cols if _cell(r.get(k))) for r in event.rows[:10]]
        more = f"\n… and {len(event.rows) - 10} more" if len(event.rows) > 10 else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": ("```" + "\n".join(lines) + "```" + more)[:2900]}})
    ctx = f"{event.kind} · {event.severity} · {event.created_at}"
    if event.link:
        ctx += f" · <{event.link}|Dagster UI>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ctx}]})
    return {"text": text, "blocks": blocks}


def _discord(event: AlertEvent) -> dict:
    embed: dict[str, Any] = {
        "title": event.title[:256],
        "description": (event.summary or event.title)[:4000],
        "color": _COLOURS.get(event.severity, 0xC62828),
        "timestamp": event.created_at,
        "footer": {"text": f"zoho-pipeline · {event.kind} · {event.severity}"},
        "fields": [{"name": str(k)[:256], "value": (_cell(v) or "-")[:1024], "inline": True}
                   for k, v in list(event.details.items())[:20]],
    }
    if event.rows:
        cols = [c for c in _columns(event.rows) if c[0] in ("entity", "label", "error_code", "error", "reason")]
        lines = [" · ".join(_cell(r.get(k)) for k, _ in cols if _cell(r.get(k))) for r in event.rows[:10]]
        more = f"\n… and {len(event.rows) - 10} more" if len(event.rows) > 10 else ""
        embed["fields"].append({"name": f"Rows ({len(event.rows)})", "value": ("\n".join(lines) + more)[:1024],
                                "inline": False})
    if event.link:
        embed["url"] = event.link
    return {"content": f"**{event.title}**"[:2000], "embeds": [embed]}


def webhook_payload(event: AlertEvent, settings: AlertSettings) -> dict:
    fmt = webhook_format(settings)
    if fmt == "slack":
        payload = _slack(event)
    elif fmt == "discord":
        payload = _discord(event)
    else:
        payload = {**_slack(event), **_discord(event), "event": event.as_dict()}
    return _scrub_obj(payload, settings.secrets())


# --- sending ----------------------------------------------------------------------------------------------------


def _send_email(event: AlertEvent, settings: AlertSettings) -> None:
    msg = build_email(event, settings)
    cls = smtplib.SMTP_SSL if settings.smtp_ssl else smtplib.SMTP
    with cls(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
        smtp.ehlo()
        starttls = settings.smtp_starttls
        if starttls is None:
            starttls = bool(settings.smtp_user) and settings.smtp_port != 25 and not settings.smtp_ssl
        if starttls and not settings.smtp_ssl:
            smtp.starttls()
            smtp.ehlo()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(msg)


def _send_webhook(event: AlertEvent, settings: AlertSettings) -> None:
    body = json.dumps(webhook_payload(event, settings))
    resp = requests.post(settings.webhook_url, data=body.encode(), timeout=settings.webhook_timeout_s,
                         headers={"Content-Type": "application/json", "User-Agent": "zoho-pipeline-alerts"})
    if resp.status_code >= 300:
        raise RuntimeError(f"webhook answered HTTP {resp.status_code}: {resp.text[:200]}")


def send_alert(event: AlertEvent | Mapping, settings: AlertSettings | None = None, dry_run: bool = False,
               out=None) -> dict:
    """Send `event` to every configured target. Returns {"sent": [...], "errors": {channel: message},
    "dry_run": bool, "channels": [...]}. With dry_run=True nothing is sent: the scrubbed email and webhook body are
    printed to `out` (stdout). A failing target never hides the others."""
    if not isinstance(event, AlertEvent):
        event = AlertEvent(**dict(event))
    settings = settings or AlertSettings.from_env()
    secrets = settings.secrets()
    result = {"sent": [], "errors": {}, "dry_run": dry_run, "channels": settings.channels}
    if dry_run:
        out = out or sys.stdout
        print(f"--- DRY RUN: nothing sent. Targets: {', '.join(settings.channels) or 'none configured'} ---",
              file=out)
        if settings.email_enabled or not settings.channels:
            msg = build_email(event, settings)
            server = f"{settings.smtp_host}:{settings.smtp_port}" if settings.smtp_host else "(no SMTP host)"
            print(f"--- email via {server} to {msg['To'] or '(no ALERT_EMAIL_TO)'} from {msg['From']} ---", file=out)
            print(f"Subject: {msg['Subject']}", file=out)
            for part in msg.iter_parts():
                print(f"--- {part.get_content_type()} ---", file=out)
                print(scrub(part.get_content(), secrets), file=out)
        if settings.webhook_enabled:
            host = requests.utils.urlparse(settings.webhook_url).netloc
            print(f"--- webhook POST to {host} (format {webhook_format(settings)}) ---", file=out)
            print(json.dumps(webhook_payload(event, settings), indent=2, ensure_ascii=False), file=out)
        return result
    for channel, fn in (("email", _send_email), ("webhook", _send_webhook)):
        if channel not in settings.channels:
            continue
        try:
            fn(event, settings)
            result["sent"].append(channel)
        except Exception as exc:  # noqa: BLE001 - report per channel, keep going
            result["errors"][channel] = scrub(f"{type(exc).__name__}: {exc}", secrets)
    return result


# --- one alert per change of state ------------------------------------------------------------------------------

STATE_PREFIX = "alert:"


def _load_state(engine, key: str) -> dict:
    from zoho_pipeline.sync import queries

    raw = queries.get_state(engine, STATE_PREFIX + key)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"state": str(value)}
    except ValueError:
        return {"state": raw}


def alert_state(engine, key: str) -> str | None:
    """The last state recorded for `key`: "failing", "ok" or None (never evaluated)."""
    return _load_state(engine, key).get("state")


def recovery_event(event: AlertEvent, key: str, failing_since: str | None = None) -> AlertEvent:
    title = event.title if event.kind == "check_recovered" else f"Recovered: {key}"
    details = {"check": key}
    if failing_since:
        details["failing since"] = failing_since
    return AlertEvent(kind="check_recovered", title=title, severity="info", details=details,
                      summary=event.summary if event.kind == "check_recovered"
                      else f"{key} is healthy again.", link=event.link)


def alert_on_state_change(engine, key: str, is_failing: bool, event: AlertEvent, settings: AlertSettings | None = None,
                          dry_run: bool = False, recovery: AlertEvent | None = None, out=None) -> dict:
    """Send `event` when `key` turns failing, and a recovery when it turns healthy again; nothing otherwise.

    The last state per key is kept in zoho_pipeline_state (`alert:<key>`), so every process and every cron run
    shares it. A dry run prints what would be sent and leaves the state alone. When sending fails, the state is not
    advanced: the next evaluation tries again. With ALERT_REMIND_AFTER_S, a state failing that long is re-sent.
    Returns {"key", "previous", "state", "action": alerted|recovered|reminded|unchanged, "result"}."""
    from zoho_pipeline.sync import queries

    settings = settings or AlertSettings.from_env()
    prev = _load_state(engine, key)
    prev_state = prev.get("state")
    now = datetime.now(timezone.utc)
    state = "failing" if is_failing else "ok"
    action, to_send = "unchanged", None
    if is_failing and prev_state != "failing":
        action, to_send = "alerted", event
    elif not is_failing and prev_state == "failing":
        action, to_send = "recovered", recovery or recovery_event(event, key, prev.get("since"))
    elif is_failing and settings.remind_after_s > 0 and prev.get("alerted_at"):
        last = datetime.fromisoformat(prev["alerted_at"])
        if (now - last).total_seconds() >= settings.remind_after_s:
            action, to_send = "reminded", event
    result = None
    if to_send is not None:
        result = send_alert(to_send, settings, dry_run=dry_run, out=out)
    outcome = {"key": key, "previous": prev_state, "state": state, "action": action, "result": result}
    if dry_run:
        return outcome
    if result is not None and settings.channels and not result["sent"]:
        outcome["action"] = "send_failed"
        return outcome  # keep the old state: retry next time
    new = {"state": state,
           "since": prev.get("since") if prev_state == state and prev.get("since") else now.isoformat(),
           "alerted_at": now.isoformat() if to_send is not None else prev.get("alerted_at")}
    if new != prev:
        queries.set_state(engine, STATE_PREFIX + key, json.dumps(new))
    return outcome
