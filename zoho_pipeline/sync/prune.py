"""`zoho-pipeline db prune`: keep the pipeline's own tables bounded. Only our tables; business rows are never touched.

- `zoho_accepted_payloads`: a payload whose source row is gone (deleted in the billing system) is dropped; one per
  remaining row is all the store ever holds (about 0.4 kB a customer, see docs/benchmarks.md).
- `zoho_api_calls`: the newest `keep_calls` are kept (the engine prunes as it goes; this catches up after the
  limit was lowered, or empties it with 0).
- `zoho_sync_logs`: attempts older than `logs_before` are deleted when asked (no default: the log is the audit).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from zoho_pipeline.source.tables import zoho_accepted_payloads, zoho_api_calls, zoho_sync_logs
from zoho_pipeline.sync import inspector
from zoho_pipeline.sync.entities import SPECS


def prune(engine, *, keep_calls: int, logs_before: datetime | None = None) -> dict[str, int]:
    """Rows deleted per table (payloads per entity)."""
    out: dict[str, int] = {}
    t = zoho_accepted_payloads
    with engine.begin() as conn:
        for name, spec in SPECS.items():
            ids = sa.select(sa.cast(spec.table.c.id, sa.String))
            gone = t.delete().where(t.c.entity_type == name, t.c.entity_id.not_in(ids))
            out[f"payloads:{name}"] = conn.execute(gone).rowcount or 0
    with engine.begin() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(zoho_api_calls)).scalar_one()
        if keep_calls <= 0:
            conn.execute(zoho_api_calls.delete())
        else:
            inspector.prune(conn, keep_calls)
        after = conn.execute(sa.select(sa.func.count()).select_from(zoho_api_calls)).scalar_one()
        out["api_calls"] = before - after
    if logs_before is not None:
        with engine.begin() as conn:
            old = zoho_sync_logs.delete().where(zoho_sync_logs.c.created_at < logs_before)
            out["sync_logs"] = conn.execute(old).rowcount or 0
    return out
