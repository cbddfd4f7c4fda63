"""Database-backed stores for the ZOHO client: the shared access-token cache and the daily API usage.

SQLAlchemy Core on `zoho_oauth_tokens` / `zoho_api_usage`, portable between SQLite and Postgres.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from zoho_pipeline.source.tables import zoho_api_usage, zoho_oauth_tokens
from zoho_pipeline.zoho.auth import CachedToken


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _db_time(engine: sa.engine.Engine, value: datetime) -> datetime:
    """UTC; naive on SQLite so stored strings compare in one format."""
    value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


class DbTokenStore:
    """TokenStore on `zoho_oauth_tokens`: one row per cache key; the refresh lock is a conditional UPDATE."""

    def __init__(self, engine: sa.engine.Engine):
        self.engine = engine

    def __repr__(self):
        return f"DbTokenStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def _ensure_row(self, conn, key: str) -> None:
        t = zoho_oauth_tokens
        if conn.execute(sa.select(t.c.token_key).where(t.c.token_key == key)).first():
            return
        try:
            with conn.begin_nested():
                conn.execute(t.insert().values(token_key=key, updated_at=_db_time(self.engine, _now())))
        except IntegrityError:
            pass  # another process inserted it first

    def load(self, key: str) -> CachedToken | None:
        t = zoho_oauth_tokens
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.access_token, t.c.expires_at, t.c.api_domain)
                               .where(t.c.token_key == key)).first()
        if row is None or not row.access_token or row.expires_at is None:
            return None
        return CachedToken(access_token=row.access_token, expires_at=_aware(row.expires_at),
                           api_domain=row.api_domain)

    def save(self, key: str, token: CachedToken) -> None:
        t = zoho_oauth_tokens
        values = dict(access_token=token.access_token, expires_at=_db_time(self.engine, token.expires_at),
                      api_domain=token.api_domain, updated_at=_db_time(self.engine, _now()))
        with self.engine.begin() as conn:
            self._ensure_row(conn, key)
            conn.execute(t.update().where(t.c.token_key == key).values(**values))

    def acquire_refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        t = zoho_oauth_tokens
        now = _now()
        with self.engine.begin() as conn:
            self._ensure_row(conn, key)
            result = conn.execute(
                t.update()
                .where(t.c.token_key == key)
                .where(sa.or_(t.c.lock_owner.is_(None), t.c.lock_owner == owner,
                              t.c.lock_until.is_(None), t.c.lock_until < _db_time(self.engine, now)))
                .values(lock_owner=owner, lock_until=_db_time(self.engine, now + timedelta(seconds=ttl_s)))
            )
            return result.rowcount == 1

    def release_refresh_lock(self, key: str, owner: str) -> None:
        t = zoho_oauth_tokens
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.token_key == key).where(t.c.lock_owner == owner)
                         .values(lock_owner=None, lock_until=None))


class DbUsageStore:
    """UsageStore on `zoho_api_usage`: calls per organization and UTC day, incremented atomically."""

    def __init__(self, engine: sa.engine.Engine):
        self.engine = engine

    def __repr__(self):
        return f"DbUsageStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def add(self, organization_id: str, day: date, n: int) -> int:
        u = zoho_api_usage
        where = (u.c.organization_id == organization_id) & (u.c.day == day)
        increment = u.update().where(where).values(calls=u.c.calls + n)
        with self.engine.begin() as conn:
            if conn.execute(increment).rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(u.insert().values(organization_id=organization_id, day=day, calls=n))
                except IntegrityError:
                    conn.execute(increment)
            return int(conn.execute(sa.select(u.c.calls).where(where)).scalar_one())

    def get(self, organization_id: str, day: date) -> int:
        u = zoho_api_usage
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(u.c.calls).where((u.c.organization_id == organization_id)
                                                            & (u.c.day == day))).scalar()
        return int(value or 0)
