"""What an alert is (AlertEvent) and where it goes (AlertSettings, read from the environment, with the secret values
every message masks). monitor.alerts sends and de-duplicates alerts, monitor.messages renders them; both take these
types from here, so neither imports the other for its types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zoho_pipeline.env import boolean, choice, collect, environ, number
from zoho_pipeline.source.database import utcnow

KINDS = ("run_failed", "check_failed", "check_recovered", "failed_rows", "stuck_rows", "test")
SEVERITIES = ("info", "warning", "error", "critical")
WEBHOOK_FORMATS = ("auto", "slack", "discord", "generic")  # ALERT_WEBHOOK_FORMAT (monitor.messages)
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s/]+)@")


@dataclass
class AlertEvent:
    kind: str  # run_failed, check_failed, check_recovered, failed_rows, stuck_rows, test
    title: str
    severity: str = "error"  # info, warning, error, critical
    details: dict[str, Any] = field(default_factory=dict)  # short facts: "customers failed": 2, "run": "..."
    rows: list[dict[str, Any]] = field(default_factory=list)  # the rows concerned (label, error, ...)
    summary: str = ""  # one paragraph for people; defaults to the title
    link: str | None = None  # e.g. the Dagster UI page to open
    created_at: str = field(default_factory=lambda: utcnow().isoformat(timespec="seconds"))

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
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSettings:
        env = environ(env)
        strict = collect(  # every malformed variable named at once, none read as "off"
            smtp_port=lambda: number("ALERT_SMTP_PORT", 587, int, env, minimum=1),
            smtp_starttls=lambda: boolean("ALERT_SMTP_STARTTLS", None, env),  # unset: decided from port and user
            smtp_ssl=lambda: boolean("ALERT_SMTP_SSL", False, env),
            webhook_format=lambda: choice("ALERT_WEBHOOK_FORMAT", "auto", WEBHOOK_FORMATS, env),
            remind_after_s=lambda: number("ALERT_REMIND_AFTER_S", 0.0, float, env),
        )
        return cls(
            smtp_host=env.get("ALERT_SMTP_HOST") or None,
            smtp_user=env.get("ALERT_SMTP_USER") or None,
            smtp_password=env.get("ALERT_SMTP_PASSWORD") or None,
            email_from=env.get("ALERT_EMAIL_FROM") or None,
            email_to=[a.strip() for a in (env.get("ALERT_EMAIL_TO") or "").split(",") if a.strip()],
            webhook_url=env.get("ALERT_WEBHOOK_URL") or None,
            dagster_ui_url=env.get("DAGSTER_UI_URL") or None,
            extra_secrets=tuple(secret_values(env)),
            **strict,
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


# --- secrets ----------------------------------------------------------------------------------------------------


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values that must never appear in an alert: env vars named like secrets, ZOHO credentials, URL passwords."""
    env = environ(env)
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
