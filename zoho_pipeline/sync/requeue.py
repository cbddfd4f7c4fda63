"""The operator's write: put rows back in the queue (`zoho-pipeline retry`, the retry job)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from zoho_pipeline.source.database import id_params
from zoho_pipeline.sync import payloads
from zoho_pipeline.sync.entities import spec


def _dead(c):
    return c.zoho_dead_lettered.is_(True)


def requeue(
    engine: sa.Engine, entity: str, ids: Iterable[str] | None = None, all_failed: bool = False, *, force: bool = False
) -> int:
    """Put rows back in the queue: status pending, attempts 0, not dead-lettered, no scheduled next attempt.

    `ids`: these rows (whatever their status, except `syncing`: a live run owns them; the engine frees a dead
    run's claims itself). `all_failed`: every failed, retrying or dead-lettered eligible row. `force`: also forget
    the last payload hash and the payload ZOHO last accepted, so an unchanged row is sent again, in full (after
    a reconcile or the drift check found ZOHO edited by hand).
    Returns the number of rows requeued."""
    info = spec(entity)
    t = info.table
    c = t.c
    if ids is None and not all_failed:
        raise ValueError("requeue needs ids or all_failed=True")
    values = dict(zoho_sync_status="pending", zoho_attempts=0, zoho_dead_lettered=False, zoho_next_attempt_at=None)
    if force:
        values["zoho_payload_hash"] = None
    not_syncing = sa.or_(c.zoho_sync_status.is_(None), c.zoho_sync_status != "syncing")
    total = 0
    with engine.begin() as conn:
        if ids is not None:
            id_list = id_params(engine, [str(i) for i in ids])
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                cond = sa.and_(c.id.in_(chunk), not_syncing)
                if all_failed:
                    cond = sa.and_(cond, sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), _dead(c)))
                if force:
                    payloads.forget(conn, info.name, conn.execute(sa.select(c.id).where(cond)).scalars())
                total += conn.execute(t.update().where(cond).values(**values)).rowcount
        else:
            cond = sa.and_(sa.or_(c.zoho_sync_status.in_(("failed", "retrying")), _dead(c)), info.where_eligible())
            if force:
                payloads.forget(conn, info.name, conn.execute(sa.select(c.id).where(cond)).scalars())
            total += conn.execute(t.update().where(cond).values(**values)).rowcount
    return total
