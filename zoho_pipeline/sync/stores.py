"""The ZOHO client as every process builds it: its database-backed stores, the shared access-token cache and the
daily API usage (SQLAlchemy Core on `zoho_oauth_tokens` / `zoho_api_usage`, portable between SQLite and Postgres),
and `zoho_client`, the one factory.
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from zoho_pipeline.source.database import aware, db_time, utcnow
from zoho_pipeline.source.tables import zoho_api_usage, zoho_oauth_tokens
from zoho_pipeline.zoho.auth import CachedToken
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.config import ZohoConfig


def zoho_client(config: ZohoConfig, engine: sa.engine.Engine, **kwargs) -> ZohoClient:
    """A ZohoClient sharing the access token and the daily API usage with every process, through the source
    database. `kwargs` (limiter, session) go to the client. The caller closes it (it is a context manager)."""
    return ZohoClient(config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine), **kwargs)


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
                conn.execute(t.insert().values(token_key=key, updated_at=db_time(self.engine, utcnow())))
        except IntegrityError:
            pass  # another process inserted it first

    def load(self, key: str) -> CachedToken | None:
        t = zoho_oauth_tokens
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.access_token, t.c.expires_at, t.c.api_domain).where(t.c.token_key == key)
            ).first()
        if row is None or not row.access_token or row.expires_at is None:
            return None
        return CachedToken(access_token=row.access_token, expires_at=aware(row.expires_at), api_domain=row.api_domain)

    def save(self, key: str, token: CachedToken) -> None:
        t = zoho_oauth_tokens
        values = dict(
            access_token=token.access_token,
            expires_at=db_time(self.engine, token.expires_at),
            api_domain=token.api_domain,
            updated_at=db_time(self.engine, utcnow()),
        )
        with self.engine.begin() as conn:
            self._ensure_row(conn, key)
            conn.execute(t.update().where(t.c.token_key == key).values(**values))

    def acquire_refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        t = zoho_oauth_tokens
        now = utcnow()
        with self.engine.begin() as conn:
            self._ensure_row(conn, key)
            result = conn.execute(
                t.update()
                .where(t.c.token_key == key)
                .where(
                    sa.or_(
                        t.c.lock_owner.is_(None),
                        t.c.lock_owner == owner,
                        t.c.lock_until.is_(None),
                        t.c.lock_until < db_time(self.engine, now),
                    )
                )
                .values(lock_owner=owner, lock_until=db_time(self.engine, now + timedelta(seconds=ttl_s)))
            )
            return result.rowcount == 1

    def release_refresh_lock(self, key: str, owner: str) -> None:
        t = zoho_oauth_tokens
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.token_key == key)
                .where(t.c.lock_owner == owner)
                .values(lock_owner=None, lock_until=None)
            )


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
            value = conn.execute(
                sa.select(u.c.calls).where((u.c.organization_id == organization_id) & (u.c.day == day))
            ).scalar()
        return int(value or 0)
