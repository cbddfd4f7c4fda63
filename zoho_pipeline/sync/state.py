"""The small key/value state in `zoho_pipeline_state`: ZOHO ids of the catalog objects, the alert states.

One write, `set_state`, an upsert that is safe when two processes write the same new key at once.
"""

from __future__ import annotations

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
