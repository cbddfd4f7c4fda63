"""The small key/value state in `zoho_pipeline_state`: ZOHO ids of the catalog objects, the alert states.

One write, `set_state`, an upsert that is safe when two processes write the same new key at once; and a claim on a
key (`claim`/`release`), so only one process at a time sets up what the key names (a catalog object in ZOHO).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from zoho_pipeline.source.database import db_time, utcnow
from zoho_pipeline.source.tables import zoho_pipeline_state as s


def get_state(engine: sa.Engine, key: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(s.c.value).where(s.c.key == key)).scalar()


def set_state(engine: sa.Engine, key: str, value: str | None) -> None:
    """Insert or update `key`. An UPDATE first; when no row matched, an INSERT in a savepoint, and when another
    process inserted the key meanwhile, the UPDATE again."""
    now = db_time(engine, utcnow())
    update = s.update().where(s.c.key == key).values(value=value, updated_at=now)
    with engine.begin() as conn:
        if conn.execute(update).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(s.insert().values(key=key, value=value, updated_at=now))
        except sa.exc.IntegrityError:
            conn.execute(update)


def claim(engine: sa.Engine, key: str, owner: str, ttl_s: float) -> bool:
    """Take the claim `key` for `owner`: True when it was free, ours already, or its holder's claim is older than
    `ttl_s` (that holder died: what it may have done is looked up by whoever takes over). One conditional UPDATE,
    so two processes never both hold it."""
    now = utcnow()
    with engine.begin() as conn:
        if conn.execute(sa.select(s.c.key).where(s.c.key == key)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(s.insert().values(key=key, value=None, updated_at=db_time(engine, now)))
            except sa.exc.IntegrityError:
                pass  # another process made the row first: the UPDATE below decides
        taken = conn.execute(
            s.update()
            .where(s.c.key == key)
            .where(
                sa.or_(
                    s.c.value.is_(None),
                    s.c.value == owner,
                    s.c.updated_at < db_time(engine, now - timedelta(seconds=ttl_s)),
                )
            )
            .values(value=owner, updated_at=db_time(engine, now))
        )
        return taken.rowcount == 1


def release(engine: sa.Engine, key: str, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(s.update().where(s.c.key == key, s.c.value == owner).values(value=None))
