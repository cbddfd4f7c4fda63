"""What the health check found, and how it is shown: one line (`Check`) per check, in four categories, each
`ok`, `warn`, `skip` or `fail`; healthy when nothing fails. Shown as text (`zoho-pipeline health`), as a dict
(`--json`, the Dagster check's metadata) and as an alert event (`health --email`). The checks are health.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from zoho_pipeline.monitor.alert_types import AlertEvent
from zoho_pipeline.monitor.verdicts import FAIL, OK, SKIP, WARN
from zoho_pipeline.source.database import utcnow

CATEGORIES = ("database", "activity", "api", "integrity")
CATEGORY_TITLES = {
    "database": "Database",
    "activity": "Recent activity",
    "api": "API connectivity",
    "integrity": "Data integrity",
}
_MARK = {OK: "✓", WARN: "!", SKIP: "-", FAIL: "✗"}


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@dataclass
class Check:
    category: str
    name: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    checks: list[Check] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: utcnow().isoformat(timespec="seconds"))

    def add(self, category, name, status, message, **details) -> Check:
        c = Check(category, name, status, message, details)
        self.checks.append(c)
        return c

    @property
    def healthy(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1

    def category_status(self, category: str) -> str:
        statuses = [c.status for c in self.checks if c.category == category]
        for s in (FAIL, WARN, OK):
            if s in statuses:
                return s
        return SKIP

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def as_dict(self) -> dict:
        return {
            "healthy": self.healthy,
            "exit_code": self.exit_code,
            "generated_at": self.generated_at,
            "categories": {cat: self.category_status(cat) for cat in CATEGORIES},
            "checks": [asdict(c) for c in self.checks],
        }


def render_text(report: HealthReport, detailed: bool = False) -> str:
    lines = [f"zoho-pipeline health: {'HEALTHY' if report.healthy else 'UNHEALTHY'}  ({report.generated_at})", ""]
    for cat in CATEGORIES:
        checks = [c for c in report.checks if c.category == cat]
        status = report.category_status(cat)
        lines.append(f"{_MARK[status]} {CATEGORY_TITLES[cat]}: {status}")
        for c in checks:
            if detailed or c.status in (FAIL, WARN):
                lines.append(f"    {_MARK[c.status]} {c.name}: {c.message}")
                if detailed and c.details:
                    for k, v in c.details.items():
                        if v not in (None, {}, []):
                            lines.append(f"        {k}: {v}")
    lines += ["", "exit 0 healthy, 1 unhealthy · runbook: docs/runbook.md"]
    return "\n".join(lines)


def health_event(report: HealthReport):
    """The report as an alert event (also the body of `health --email`)."""
    bad = [c for c in report.checks if c.status in (FAIL, WARN)]
    return AlertEvent(
        kind="check_failed" if not report.healthy else "check_recovered",
        severity="error" if not report.healthy else ("warning" if bad else "info"),
        title=f"ZOHO sync health: {'UNHEALTHY' if not report.healthy else 'healthy'}"
        + (f" ({len(report.failures())} failing check(s))" if not report.healthy else ""),
        summary="; ".join(f"{CATEGORY_TITLES[c]}: {report.category_status(c)}" for c in CATEGORIES),
        details={f"{c.category}/{c.name}": f"{c.status.upper()} — {c.message}" for c in report.checks},
        rows=[{"entity": c.category, "label": c.name, "status": c.status, "error": c.message} for c in bad],
    )
