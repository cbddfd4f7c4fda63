"""Alerts: email (SMTP, multipart HTML + plain text) and a webhook (Slack, Discord or generic JSON).

    event = AlertEvent(kind="failed_rows", title="3 rows failed to sync to ZOHO", severity="error",
                       details={"customers": 2, "invoices": 1}, rows=[{...}, ...])
    send_alert(event)                      # to every configured target
    send_alert(event, dry_run=True)        # print what would be sent; send nothing
    alert_on_state_change(engine, "failed_rows", is_failing=True, event=event)   # once per change of state

AlertEvent and AlertSettings (read from the configuration below) are defined in monitor.alert_types, which
monitor.messages renders from too.

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

import dataclasses
import io
import json
import smtplib
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import datetime

import requests

from zoho_pipeline.monitor.alert_types import AlertEvent, AlertSettings
from zoho_pipeline.monitor.messages import build_email, scrub, webhook_format, webhook_payload
from zoho_pipeline.source.database import utcnow
from zoho_pipeline.sync import state as state_claims
from zoho_pipeline.sync.state import get_state, set_state

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
    resp = requests.post(
        settings.webhook_url,
        data=body.encode(),
        timeout=settings.webhook_timeout_s,
        headers={"Content-Type": "application/json", "User-Agent": "zoho-pipeline-alerts"},
    )
    if resp.status_code >= 300:
        raise RuntimeError(f"webhook answered HTTP {resp.status_code}: {resp.text[:200]}")


def send_alert(
    event: AlertEvent | Mapping, settings: AlertSettings | None = None, dry_run: bool = False, out=None
) -> dict:
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
        print(f"--- DRY RUN: nothing sent. Targets: {', '.join(settings.channels) or 'none configured'} ---", file=out)
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
ALERT_CLAIM_TTL_S = 120.0  # an evaluation holding a key's claim longer has died: the claim is taken over
ALERT_CLAIM_WAIT_S = 60.0  # how long an evaluation waits for another's on the same key (then: "busy", no send)


def _load_state(engine, key: str) -> dict:
    raw = get_state(engine, STATE_PREFIX + key)
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
    return AlertEvent(
        kind="check_recovered",
        title=title,
        severity="info",
        details=details,
        summary=event.summary if event.kind == "check_recovered" else f"{key} is healthy again.",
        link=event.link,
    )


def alert_on_state_change(
    engine,
    key: str,
    is_failing: bool,
    event: AlertEvent,
    settings: AlertSettings | None = None,
    dry_run: bool = False,
    recovery: AlertEvent | None = None,
    out=None,
) -> dict:
    """Send `event` when `key` turns failing, and a recovery when it turns healthy again; nothing otherwise.

    The last state per key is kept in zoho_pipeline_state (`alert:<key>`), so every process and every cron run
    shares it. A dry run prints what would be sent and leaves the state alone. When sending fails, the state is not
    advanced: the next evaluation tries again. With ALERT_REMIND_AFTER_S, a state failing that long is re-sent.
    Returns {"key", "previous", "state", "action": alerted|recovered|reminded|unchanged, "result"}.

    Two evaluations at once (two `alert` crons, the sensor beside one) take turns on the key's claim, so the
    second sees the state the first recorded and sends nothing again."""
    settings = settings or AlertSettings.from_env()
    if dry_run:
        return _evaluate(engine, key, is_failing, event, settings, dry_run, recovery, out)
    owner, claim_key = uuid.uuid4().hex, f"claim:{STATE_PREFIX}{key}"
    deadline = time.monotonic() + ALERT_CLAIM_WAIT_S
    while not state_claims.claim(engine, claim_key, owner, ALERT_CLAIM_TTL_S):
        if time.monotonic() > deadline:
            return {
                "key": key,
                "previous": None,
                "state": "failing" if is_failing else "ok",
                "action": "busy",
                "result": None,
            }
        time.sleep(0.1)
    try:
        return _evaluate(engine, key, is_failing, event, settings, dry_run, recovery, out)
    finally:
        state_claims.release(engine, claim_key, owner)


def _evaluate(engine, key, is_failing, event, settings, dry_run, recovery, out) -> dict:
    prev = _load_state(engine, key)
    prev_state = prev.get("state")
    now = utcnow()
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
    new = {
        "state": state,
        "since": prev.get("since") if prev_state == state and prev.get("since") else now.isoformat(),
        "alerted_at": now.isoformat() if to_send is not None else prev.get("alerted_at"),
    }
    if new != prev:
        set_state(engine, STATE_PREFIX + key, json.dumps(new))
    return outcome


def alert_unattended(
    engine,
    key: str,
    is_failing: bool,
    event: AlertEvent,
    settings: AlertSettings,
    dry_run: bool = False,
    recovery: AlertEvent | None = None,
    log=None,
) -> dict:
    """alert_on_state_change for a watcher nobody reads live (a Dagster sensor). Under a dry run the state moves
    under its own key (`dry-run:<key>`) with no target, and the would-be alert is printed (and logged): a dry run
    then also reports once per change of state, and leaves the real state alone."""
    if not dry_run:
        return alert_on_state_change(engine, key, is_failing, event, settings, recovery=recovery)
    quiet = dataclasses.replace(settings, smtp_host=None, webhook_url=None)
    outcome = alert_on_state_change(engine, f"dry-run:{key}", is_failing, event, quiet, recovery=recovery)
    if outcome["action"] != "unchanged":
        buf = io.StringIO()
        sent = recovery or recovery_event(event, key) if outcome["action"] == "recovered" else event
        outcome["result"] = send_alert(sent, settings, dry_run=True, out=buf)
        print(buf.getvalue(), flush=True)
        if log is not None:
            log.info(buf.getvalue())
    return outcome


# --- the verdicts as alerts ---------------------------------------------------------------------------------------


def _ui_link(settings: AlertSettings, path: str) -> str | None:
    return settings.dagster_ui_url.rstrip("/") + path if settings.dagster_ui_url else None


def verdict_alerts(verdicts: dict, settings: AlertSettings) -> list[tuple[str, bool, AlertEvent]]:
    """(state key, is_failing, event) for the two row verdicts people are paged for, over every entity: failed or
    dead-lettered rows, and rows stuck in `syncing`. `zoho-pipeline alert` and the Dagster check-alert sensor both
    send these, under the same state keys: one verdict, one alert."""
    failed = verdicts["failed_rows"] + verdicts["dead_lettered"]
    per_entity, rows = {}, []
    for f, d in zip(verdicts["failed_rows"], verdicts["dead_lettered"]):
        if f.count or d.count:
            per_entity[f.entity] = f"{f.count} failed, {d.count} dead-lettered"
            rows += f.rows + d.rows
    n_failed = sum(v.count for v in verdicts["failed_rows"])
    n_dead = sum(v.count for v in verdicts["dead_lettered"])
    failed_event = AlertEvent(
        kind="failed_rows",
        severity="critical" if n_dead else "error",
        title=f"{n_failed + n_dead} row(s) failed to sync to ZOHO" + (f" ({n_dead} dead-lettered)" if n_dead else ""),
        summary="These rows are not in ZOHO Billing (or ZOHO is out of date for them). Dead-lettered rows are not "
        "retried automatically: fix the cause, then `zoho-pipeline retry --failed` or set `all_failed` on the asset in the Launchpad.",
        details=per_entity,
        rows=rows,
        link=_ui_link(settings, "/assets/zoho_customers"),
    )
    stuck = [r for v in verdicts["stuck_rows"] for r in v.rows]
    stuck_after = verdicts["stuck_rows"][0].figures["older_than_s"] if verdicts["stuck_rows"] else None
    stuck_event = AlertEvent(
        kind="stuck_rows",
        severity="error",
        title=f"{sum(v.count for v in verdicts['stuck_rows'])} row(s) stuck in 'syncing'",
        summary="A run claimed these rows and did not finish them (it died or hangs). The next run re-checks them "
        "in ZOHO before any new create; if none is running, start one (Dagster UI → Jobs → zoho_sync_job).",
        details={"stuck after (s)": stuck_after, "runs": ", ".join(sorted({s["claimed_by"] or "?" for s in stuck}))},
        rows=stuck,
        link=_ui_link(settings, "/runs"),
    )
    return [
        ("failed_rows", any(v.status == "fail" for v in failed), failed_event),
        ("stuck_rows", any(v.status == "fail" for v in verdicts["stuck_rows"]), stuck_event),
    ]
