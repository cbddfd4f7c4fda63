"""The payload ZOHO last accepted per row (`zoho_accepted_payloads`): written with the outcome, read by key.

The hash on the row stays the fast path (an unchanged row costs no read here); this store is what the dry run's
field-level diff and the drift check compare with. One upsert per chunk (an executemany in the outcome's own
transaction), and reads by primary key a batch at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from zoho_pipeline.source.tables import zoho_accepted_payloads as t

READ_BATCH = 500  # ids per IN (...) read

_upserts: dict[str, object] = {}


def _upsert(dialect_name: str):
    """INSERT … ON CONFLICT (entity_type, entity_id) DO UPDATE: both SQLite (≥ 3.24) and Postgres have it."""
    if dialect_name not in _upserts:
        insert = (postgresql if dialect_name == "postgresql" else sqlite).insert
        stmt = insert(t).values(
            entity_type=bindparam("p_entity"),
            entity_id=bindparam("p_id"),
            payload=bindparam("p_payload"),
            accepted_at=bindparam("p_at", type_=t.c.accepted_at.type),
        )
        _upserts[dialect_name] = stmt.on_conflict_do_update(
            index_elements=[t.c.entity_type, t.c.entity_id],
            set_={"payload": stmt.excluded.payload, "accepted_at": stmt.excluded.accepted_at},
        )
    return _upserts[dialect_name]


def write(conn, entity: str, accepted: Sequence[tuple[str, str]], now) -> None:
    """Record `accepted` [(source id, canonical JSON)] as the payloads ZOHO now holds, inside `conn`'s
    transaction (the caller's: the outcome and its payload commit together or not at all)."""
    if not accepted:
        return
    params = [dict(p_entity=entity, p_id=str(row_id), p_payload=text, p_at=now) for row_id, text in accepted]
    conn.execute(_upsert(conn.dialect.name), params)


def load(conn, entity: str, ids: Iterable) -> dict[str, dict]:
    """{source id: last accepted payload} for those of `ids` that have one."""
    ids = [str(i) for i in ids]
    out: dict[str, dict] = {}
    for start in range(0, len(ids), READ_BATCH):
        query = select(t.c.entity_id, t.c.payload).where(
            t.c.entity_type == entity, t.c.entity_id.in_(ids[start : start + READ_BATCH])
        )
        out.update({row_id: json.loads(text) for row_id, text in conn.execute(query)})
    return out


def forget(conn, entity: str, ids: Iterable) -> None:
    """Drop the stored payloads of `ids` inside `conn`'s transaction: a forced resend must not be judged against
    them (an entity that sends only what changed would send nothing), and the resend stores what ZOHO accepts."""
    ids = [str(i) for i in ids]
    for start in range(0, len(ids), READ_BATCH):
        conn.execute(t.delete().where(t.c.entity_type == entity, t.c.entity_id.in_(ids[start : start + READ_BATCH])))
