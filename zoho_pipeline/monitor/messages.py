"""What an alert looks like on each channel: the email (plain text + HTML), Slack, Discord or generic JSON, with
every secret masked before anything leaves (monitor.alerts sends them)."""

from __future__ import annotations

import html
import json
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from zoho_pipeline.monitor.alert_types import AlertEvent, AlertSettings
from zoho_pipeline.zoho.redact import MASK

_COLOURS = {"info": 0x2E7D32, "warning": 0xF9A825, "error": 0xC62828, "critical": 0x6A1B9A}
_EMOJI = {"info": ":white_check_mark:", "warning": ":warning:", "error": ":rotating_light:", "critical": ":fire:"}
MAX_ROWS = 25  # rows listed in one alert; the rest are counted


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

ROW_COLUMNS = (
    ("entity", "Entity"),
    ("label", "Row"),
    ("status", "Status"),
    ("error_code", "Code"),
    ("error", "Error"),
    ("attempts", "Attempts"),
    ("dead_lettered", "Dead letter"),
    ("reason", "Reason"),
    ("last_attempt_at", "Last attempt"),
)


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
    lines += [
        "",
        f"Kind: {event.kind} · severity: {event.severity} · at {event.created_at}",
        "Runbook: docs/runbook.md · retry with: zoho-pipeline retry --failed",
    ]
    return "\n".join(lines) + "\n"


def render_html(event: AlertEvent) -> str:
    e = html.escape
    colour = f"#{_COLOURS.get(event.severity, 0xC62828):06x}"
    parts = [
        '<!doctype html><html><body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">',
        f'<h2 style="margin:0 0 8px;color:{colour}">{e(event.title)}</h2>',
        f"<p>{e(event.summary or event.title)}</p>",
    ]
    if event.details:
        parts.append('<table style="border-collapse:collapse">')
        for key, value in event.details.items():
            parts.append(
                f'<tr><td style="padding:2px 12px 2px 0;color:#555">{e(str(key))}</td>'
                f'<td style="padding:2px 0"><b>{e(_cell(value))}</b></td></tr>'
            )
        parts.append("</table>")
    if event.rows:
        cols = _columns(event.rows)
        th = "".join(
            f'<th style="text-align:left;border-bottom:1px solid #ccc;padding:4px 8px">{e(t)}</th>' for _, t in cols
        )
        parts.append(f'<h3 style="margin:16px 0 4px">Rows ({len(event.rows)})</h3>')
        parts.append(f'<table style="border-collapse:collapse"><tr>{th}</tr>')
        for r in event.rows[:MAX_ROWS]:
            tds = "".join(
                f'<td style="border-bottom:1px solid #eee;padding:4px 8px;vertical-align:top">{e(_cell(r.get(k)))}</td>'
                for k, _ in cols
            )
            parts.append(f"<tr>{tds}</tr>")
        parts.append("</table>")
        if len(event.rows) > MAX_ROWS:
            parts.append(f"<p>… and {len(event.rows) - MAX_ROWS} more (<code>zoho-pipeline status</code>).</p>")
    if event.link:
        parts.append(f'<p><a href="{e(event.link)}">Open in the Dagster UI</a></p>')
    parts.append(
        f'<p style="color:#777;font-size:12px">{e(event.kind)} · {e(event.severity)} · '
        f"{e(event.created_at)} · runbook: docs/runbook.md · "
        "<code>zoho-pipeline retry --failed</code></p></body></html>"
    )
    return "\n".join(parts)


def build_email(event: AlertEvent, settings: AlertSettings) -> EmailMessage:
    secrets = settings.secrets()
    msg = EmailMessage()
    msg["Subject"] = scrub(subject(event), secrets)
    msg["From"] = settings.email_from or (
        settings.smtp_user if settings.smtp_user and "@" in settings.smtp_user else "zoho-pipeline@localhost"
    )
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


def _mrkdwn(text) -> str:
    """Text from data (a customer's name, ZOHO's message) as Slack shows it, never as markup: `<!channel>` would
    ping the channel and `<url|text>` disguise a link (Slack's escaping: &, <, >)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(event: AlertEvent) -> dict:
    text = f"{_EMOJI.get(event.severity, '')} *{_mrkdwn(event.title)}*".strip()
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _mrkdwn(event.title)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(event.summary or event.title)[:2900]}},
    ]
    if event.details:
        fields = [
            {"type": "mrkdwn", "text": f"*{_mrkdwn(k)}*\n{_mrkdwn(_cell(v))}"}
            for k, v in list(event.details.items())[:10]
        ]
        blocks.append({"type": "section", "fields": fields})
    if event.rows:
        cols = [c for c in _columns(event.rows) if c[0] in ("entity", "label", "error_code", "error", "reason")]
        lines = [_mrkdwn(" · ".join(_cell(r.get(k)) for k, _ in cols if _cell(r.get(k)))) for r in event.rows[:10]]
        more = f"\n… and {len(event.rows) - 10} more" if len(event.rows) > 10 else ""
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": ("```" + "\n".join(lines) + "```" + more)[:2900]}}
        )
    ctx = _mrkdwn(f"{event.kind} · {event.severity} · {event.created_at}")
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
        "fields": [
            {"name": str(k)[:256], "value": (_cell(v) or "-")[:1024], "inline": True}
            for k, v in list(event.details.items())[:20]
        ],
    }
    if event.rows:
        cols = [c for c in _columns(event.rows) if c[0] in ("entity", "label", "error_code", "error", "reason")]
        lines = [" · ".join(_cell(r.get(k)) for k, _ in cols if _cell(r.get(k))) for r in event.rows[:10]]
        more = f"\n… and {len(event.rows) - 10} more" if len(event.rows) > 10 else ""
        embed["fields"].append(
            {"name": f"Rows ({len(event.rows)})", "value": ("\n".join(lines) + more)[:1024], "inline": False}
        )
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
