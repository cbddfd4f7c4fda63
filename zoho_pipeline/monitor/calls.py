"""The API call inspector's read side: the last calls to ZOHO, newest first, filtered by row, failure and time.

`zoho_api_calls` is a ring of at most ZOHO_INSPECTOR_CALLS rows (see sync.inspector), so every filter here is a
primary-key range (`since`, a call id) or a scan of at most that many rows.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from zoho_pipeline.source.database import aware
from zoho_pipeline.source.tables import zoho_api_calls as t
from zoho_pipeline.sync.inspector import first_id_at


def failed_clause():
    """A call that did not succeed: no response, an HTTP error, or an envelope code other than 0."""
    return sa.or_(t.c.status.is_(None), t.c.status >= 400, sa.and_(t.c.zoho_code.is_not(None), t.c.zoho_code != 0))


def recent_calls(
    engine: sa.Engine,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    failed: bool = False,
    since: datetime | None = None,
    call_id: int | None = None,
    run_id: str | None = None,
    limit: int = 20,
) -> list[dict]:
    """Calls newest first, each a dict with `time` and the bodies parsed back from JSON where they are JSON."""
    query = sa.select(t)
    if call_id is not None:
        query = query.where(t.c.id == call_id)
    if entity:
        query = query.where(t.c.entity_type == entity)
    if entity_id:
        query = query.where(t.c.entity_id == str(entity_id))
    if failed:
        query = query.where(failed_clause())
    if since is not None:
        query = query.where(t.c.id >= first_id_at(since))
    if run_id:
        query = query.where(t.c.run_id.like(f"{run_id}%"))  # a Dagster run id matches each of its assets' runs
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.order_by(t.c.id.desc()).limit(limit)).mappings()]
    for row in rows:
        row["time"] = aware(row.pop("at")).isoformat(timespec="milliseconds")
        for key in ("query", "request_body", "response_body"):
            row[key] = _parsed(row[key])
    return rows


def _parsed(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
