"""The summary `zoho-pipeline sync` prints of a merged run report (cli/sync.py merges it): a dry run's estimate
(rows that would be sent, the recurring invoices' linking, the API calls and the time they take at the pace) or a
run's outcome (counts per entity, what is left retrying or in doubt, 429s, an early stop, the failed rows)."""

from __future__ import annotations

from zoho_pipeline.cli.common import format_table
from zoho_pipeline.sync.report import EntityReport, RunReport
from zoho_pipeline.zoho.limiter import paced_seconds

FAILURES_LISTED = 50


def format_summary(report: RunReport, rate_per_minute: int | None = None) -> str:
    if report.dry_run:
        return dry_run_summary(report, rate_per_minute)
    return run_summary(report)


# --- a dry run: what would be sent ---------------------------------------------------------------------------------


def dry_run_summary(report: RunReport, rate_per_minute: int | None = None) -> str:
    rows = [
        [e.entity, e.due, e.would_create, e.would_update, e.unchanged, e.invalid, e.would_create + e.would_update]
        for e in report.entities.values()
    ]
    calls = report.estimated_calls  # rows, look-ups of rows in doubt, and one-off catalog calls
    rows.append(["total", *[sum(r[i] for r in rows) for i in range(1, 7)]])
    out = [
        "DRY RUN: nothing was sent to ZOHO.",
        format_table(
            ["entity", "due", "would_create", "would_update", "unchanged", "invalid", "est_api_calls"],
            rows,
            numbers_right=True,
        ),
    ]
    invoices = report.entities.get("invoices")
    links = (invoices.before_sync if invoices else None) or {}
    if links.get("estimate"):
        out.append(link_estimate_line(links))
    if rate_per_minute:
        minutes = paced_seconds(calls, rate_per_minute) / 60
        out.append(
            f"Estimated {calls} API calls (incl. {report.setup_calls} one-off set-up): about "
            f"{minutes:.1f} min at {rate_per_minute}/min (retries of failing calls come on top)."
        )
    return "\n".join(out)


def link_estimate_line(links: dict) -> str:
    """A dry run's estimate of the recurring invoices' linking (sync/entities/recurring_estimate.py)."""
    line = (
        f"Recurring invoices (estimate, ZOHO not read): {links['would_link']} would be linked to ZOHO's invoices, "
        f"{links['waiting']} would still wait for ZOHO to raise theirs"
    )
    if links.get("history"):
        line += f", {links['history']} pushed as plain invoices (terms before ZOHO billed them)"
    if links.get("awaiting_subscription"):
        line += (
            f", {links['awaiting_subscription']} of services whose subscription this run creates first "
            "(then linked, or pushed as plain invoices for terms before it)"
        )
    if links.get("unmatched"):
        line += f", {links['unmatched']} cannot be linked (no service, or a service never pushed)"
    if links.get("not_looked_at"):
        line += f"; {links['not_looked_at']} looked at recently, not looked at again yet"
    return line + f"; {links['list_pages']} list pages."


# --- a run: what was done and what is left -------------------------------------------------------------------------

RUN_COLUMNS = [
    "entity",
    "due",
    "created",
    "updated",
    "unchanged",
    "adopted",
    "failed",
    "retried",
    "backlog",
    "api_calls",
]


def run_summary(report: RunReport) -> str:
    ents = list(report.entities.values())
    rows = [
        [e.entity, e.due, e.created, e.updated, e.unchanged, e.adopted, e.failed, e.retried, e.backlog, e.api_calls]
        for e in ents
    ]
    total = ["total", *[sum(r[i] for r in rows) for i in range(1, 10)]]
    total[-1] = report.api_calls or total[-1]
    rows.append(total)
    out = [format_table(RUN_COLUMNS, rows, numbers_right=True)]
    out.append(f"{report.api_calls} API calls in {report.duration_s:.1f}s")
    out += _left_over(ents)
    if report.stopped_reason:
        out.append(
            f"Run stopped early: {report.stopped_reason}"
            + (f" ({report.stopped_detail})" if report.stopped_detail else "")
        )
    out += _failed_rows(report)
    return "\n".join(out)


def _left_over(ents: list[EntityReport]) -> list[str]:
    """Lines on the rows still retrying or in doubt, and on 429s met."""
    out = []
    retrying = [e for e in ents if e.still_retrying]
    if retrying:
        firsts = [e.next_attempt_at for e in retrying if e.next_attempt_at]
        first = min(firsts) if firsts else "(not scheduled)"
        out.append(
            f"{sum(e.still_retrying for e in retrying)} row(s) still retrying ("
            + ", ".join(f"{e.still_retrying} {e.entity}" for e in retrying)
            + f"); next attempt at {first}"
        )
    doubt = sum(e.in_doubt for e in ents)
    if doubt:
        out.append(
            f"{doubt} row(s) in doubt, claimed by a run that stopped beating: they are looked up in ZOHO once that "
            "run is stale, then synced"
        )
    limited = sum(e.rate_limited for e in ents)
    if limited:  # the pace is shared by every process: a 429 means something outside it spent the window
        out.append(
            f"ZOHO answered 429 (rate limited) {limited} time(s); the run paused and went on. Another client of the "
            "organization (outside this pipeline's shared pace) or a pace above the plan's limit "
            "(ZOHO_RATE_LIMIT_PER_MINUTE, docs/runbook.md) spends the same window."
        )
    return out


def _failed_rows(report: RunReport) -> list[str]:
    failures = report.failures
    if not failures:
        return []
    shown = f" shown: first {FAILURES_LISTED}" if len(failures) > FAILURES_LISTED else ""
    out = ["", f"Failed rows ({len(failures)}{shown}):"]
    for f in failures[:FAILURES_LISTED]:
        kind = "dead-lettered" if f.dead_lettered else (f.error_code or "error")
        call = f"  (zoho-pipeline calls --id {f.call_id})" if f.call_id else ""
        out.append(f"  {f.entity:<13} {f.label}  [{kind}] {f.error}{call}")
    out.append("See `zoho-pipeline status` and `zoho-pipeline logs`; `zoho-pipeline retry` requeues them.")
    return out
