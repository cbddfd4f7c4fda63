"""The ZOHO client as every process builds it: its database-backed stores, the shared access-token cache and the
daily API usage (SQLAlchemy Core on `zoho_oauth_tokens` / `zoho_api_usage`, portable between SQLite and Postgres),
and `zoho_client`, the one factory.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from zoho_pipeline.source.database import aware, db_time, utcnow
from zoho_pipeline.source.tables import zoho_api_leases, zoho_api_pace, zoho_api_usage, zoho_oauth_tokens
from zoho_pipeline.zoho.auth import CachedToken
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline.zoho.config import ZohoConfig
from zoho_pipeline.zoho.limiter import Grant


def zoho_client(config: ZohoConfig, engine: sa.engine.Engine, **kwargs) -> ZohoClient:
    """A ZohoClient sharing the access token, the daily API usage and the per-minute pace (window and 429 pause)
    with every process, through the source database. `kwargs` (limiter, session) go to the client. The caller closes it (it is a context manager)."""
    return ZohoClient(
        config,
        token_store=DbTokenStore(engine),
        usage_store=DbUsageStore(engine),
        pace_store=DbPaceStore(engine),
        **kwargs,
    )


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


_upsert_dialects = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class DbUsageStore:
    """UsageStore on `zoho_api_usage`: calls per organization and UTC day, incremented atomically."""

    def __init__(self, engine: sa.engine.Engine):
        self.engine = engine

    def __repr__(self):
        return f"DbUsageStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def add(self, organization_id: str, day: date, n: int) -> int:
        """One statement (an upsert returning the day's total): a flush is one round trip, not three."""
        u = zoho_api_usage
        insert = _upsert_dialects[self.engine.dialect.name](u).values(organization_id=organization_id, day=day, calls=n)
        statement = insert.on_conflict_do_update(
            index_elements=[u.c.organization_id, u.c.day], set_={"calls": u.c.calls + insert.excluded.calls}
        ).returning(u.c.calls)
        with self.engine.begin() as conn:
            return int(conn.execute(statement).scalar_one())

    def get(self, organization_id: str, day: date) -> int:
        u = zoho_api_usage
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(u.c.calls).where((u.c.organization_id == organization_id) & (u.c.day == day))
            ).scalar()
        return int(value or 0)


class DbPaceStore:
    """PaceStore on `zoho_api_pace` / `zoho_api_leases`: the organization's per-minute window and 429 pause, shared
    by every process. A process leases a few slots at a time (one short transaction per lease, not per call); the
    organization's pace row is locked (an UPDATE) for the lease's read-and-insert, so two processes never both
    take the last slots. Time is the database's clock on Postgres (hosts' clocks may differ), the host's on SQLite
    (a file on this host)."""

    def __init__(self, engine: sa.engine.Engine):
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    def __repr__(self):
        return f"DbPaceStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def _now(self, conn) -> float:
        if self._pg:
            return float(conn.execute(sa.select(sa.func.extract("epoch", sa.func.clock_timestamp()))).scalar_one())
        return time.time()

    def _lock(self, conn, organization_id: str) -> tuple[float, float]:
        """Lock the organization's pace row (made on first use): (its paused_until, now), in one round trip."""
        p = zoho_api_pace
        now = sa.func.extract("epoch", sa.func.clock_timestamp()) if self._pg else sa.literal(time.time())
        touch = (
            p.update()
            .where(p.c.organization_id == organization_id)
            .values(paused_until=p.c.paused_until)
            .returning(p.c.paused_until, now)
        )
        row = conn.execute(touch).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(p.insert().values(organization_id=organization_id, paused_until=0.0))
            except IntegrityError:
                pass  # another process made it first
            row = conn.execute(touch).first()
        return float(row[0]), float(row[1])

    def lease(
        self,
        organization_id: str,
        want: int,
        per_minute: int,
        window_s: float,
        hold_s: float,
        previous: tuple[int, int] | None = None,
    ) -> Grant:
        """Up to `want` slots to use within `hold_s`; `previous` (lease id, calls used) is settled first: its
        unused slots go back, and it stops counting a window after now."""
        lt = zoho_api_leases
        with self.engine.begin() as conn:
            paused_until, now = self._lock(conn, organization_id)
            if previous is not None:
                lease_id, used = previous
                if used:
                    conn.execute(
                        lt.update()
                        .where(lt.c.id == lease_id)
                        .values(
                            calls=used,
                            expires_at=sa.func.min(lt.c.expires_at, now)
                            if not self._pg
                            else sa.func.least(lt.c.expires_at, now),
                        )
                    )
                else:
                    conn.execute(lt.delete().where(lt.c.id == lease_id))
            if paused_until > now:
                return Grant(0, None, paused_until - now, paused=True)
            horizon = now - window_s
            conn.execute(
                lt.delete().where(lt.c.organization_id == organization_id, lt.c.expires_at < horizon - window_s)
            )
            used_in_window, oldest = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(lt.c.calls), 0), sa.func.min(lt.c.expires_at)).where(
                    lt.c.organization_id == organization_id, lt.c.expires_at > horizon
                )
            ).one()
            free = per_minute - int(used_in_window)
            if free <= 0:
                return Grant(0, None, max(0.05, float(oldest) + window_s - now))
            n = min(want, free)
            lease_id = conn.execute(
                lt.insert()
                .values(organization_id=organization_id, granted_at=now, expires_at=now + hold_s, calls=n)
                .returning(lt.c.id)
            ).scalar_one()
            return Grant(n, int(lease_id), 0.0)

    def release(self, organization_id: str, lease_id: int, used: int) -> None:
        lt = zoho_api_leases
        with self.engine.begin() as conn:
            now = self._now(conn)
            if used:
                conn.execute(
                    lt.update().where(lt.c.id == lease_id, lt.c.expires_at > now).values(calls=used, expires_at=now)
                )
            else:
                conn.execute(lt.delete().where(lt.c.id == lease_id))

    def pause(self, organization_id: str, seconds: float) -> None:
        """Nobody leases before now + `seconds` (a 429 arrived)."""
        p = zoho_api_pace
        with self.engine.begin() as conn:
            current, now = self._lock(conn, organization_id)
            until = now + seconds
            if until > current:
                conn.execute(p.update().where(p.c.organization_id == organization_id).values(paused_until=until))

    def paused_for(self, organization_id: str) -> float:
        p = zoho_api_pace
        with self.engine.connect() as conn:
            until = conn.execute(sa.select(p.c.paused_until).where(p.c.organization_id == organization_id)).scalar()
            return max(0.0, float(until or 0.0) - self._now(conn))
