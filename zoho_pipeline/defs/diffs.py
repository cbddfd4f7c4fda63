"""A dry run's field-level diff as Dagster metadata: a summary, a table of the first changes, the diff as
Markdown and JSON (capped, so the event log stays small), and the full diff as files in the instance's storage
(`<storage>/zoho_diffs/<run id>/<entity>.md|.json`) that the metadata names."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from zoho_pipeline.sync import diff
from zoho_pipeline.sync.report import RunReport

TABLE_CHANGES = 50  # field changes in the `diff` table
KEPT_ROWS = 500  # rows in the `diff_markdown` / `diff_json` metadata; the files hold them all

DIFF_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("entity_id", "string"),
        dg.TableColumn("label", "string"),
        dg.TableColumn("action", "string"),
        dg.TableColumn("field", "string"),
        dg.TableColumn("old", "string"),
        dg.TableColumn("new", "string"),
    ]
)


def diff_files(instance, run_id: str, entity: str) -> tuple[Path, Path]:
    """Where the full diff of `entity` in run `run_id` is written: (Markdown, JSON)."""
    folder = Path(instance.storage_directory()) / "zoho_diffs" / run_id
    return folder / f"{entity}.md", folder / f"{entity}.json"


def _records(diffs: list[diff.RowDiff]) -> list[dg.TableRecord]:
    records = []
    for d in diffs:
        for c in d.changes:
            if len(records) == TABLE_CHANGES:
                return records
            whole = d.action == "create" or not d.previous_known
            records.append(
                dg.TableRecord(
                    {
                        "entity_id": d.entity_id,
                        "label": d.label,
                        "action": d.action,
                        "field": c.path,
                        "old": "—" if whole else diff.show(c.path, c.old)[:200],
                        "new": diff.show(c.path, c.new)[:200],
                    }
                )
            )
    return records


def diff_metadata(context, report: RunReport, entity: str) -> dict:
    """The dry run's diff of `entity` (its own rows; parents pulled in are their own assets' business)."""
    diffs = [d for d in report.diffs if d.entity == entity]
    md_path, json_path = diff_files(context.instance, context.run_id, entity)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(diff.to_markdown(diffs) + "\n")
    json_path.write_text(json.dumps([d.as_dict() for d in diffs], default=str))
    kept = diffs[:KEPT_ROWS]
    note = f"\n\n(first {KEPT_ROWS} of {len(diffs)} rows; all of them in {md_path})" if len(diffs) > KEPT_ROWS else ""
    if report.diffs_omitted:
        note += f"\n\n({report.diffs_omitted} more rows would change: a dry run keeps the first diffs only)"
    return {
        "diff_rows": len(diffs),
        "diff_rows_omitted": report.diffs_omitted,
        "diff_summary": dg.MetadataValue.text("; ".join(diff.summary_lines(diffs)) or "no row would change"),
        "diff": dg.MetadataValue.table(records=_records(diffs), schema=DIFF_SCHEMA),
        "diff_markdown": dg.MetadataValue.md(diff.to_markdown(kept) + note),
        "diff_json": dg.MetadataValue.json([d.as_dict() for d in kept]),
        "diff_file": dg.MetadataValue.path(str(json_path)),
    }
