"""The two sides of the sync as Dagster resources: the provider's database and ZOHO Billing.

Secrets are bound with `dg.EnvVar` (their names show in the UI, their values never do); every other default comes
from the same `from_env` readers the CLI uses (`ZohoConfig.from_env`, `SyncSettings.from_env`), so a knob is read in
one place only.
"""

from __future__ import annotations

import dataclasses
import functools

import dagster as dg
from pydantic import Field

from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline.zoho.config import ZohoConfig


@functools.lru_cache(maxsize=8)
def _engine_for(url: str):
    return make_engine(url)


class SourceDatabaseResource(dg.ConfigurableResource):
    """The provider's billing database (source of truth): a SQLAlchemy URL, Postgres or SQLite."""

    url: str = Field(description="SQLAlchemy URL of the source database (SOURCE_DATABASE_URL)")

    def engine(self):
        """One engine per URL and process, shared by assets, checks and sensor ticks."""
        return _engine_for(self.url)


class ZohoBillingResource(dg.ConfigurableResource):
    """ZOHO Billing (or the emulator): where it is, the credentials, how hard we may call it, and the engine's knobs."""

    client_id: str
    client_secret: str = Field(repr=False, description="ZOHO_CLIENT_SECRET (bind with dg.EnvVar)")
    refresh_token: str = Field(repr=False, description="ZOHO_REFRESH_TOKEN (bind with dg.EnvVar)")
    organization_id: str
    region: str = "com"
    api_base_url: str | None = None
    accounts_url: str | None = None
    requests_per_minute: int = 100
    daily_budget: int = 10_000
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    # engine knobs (SyncSettings)
    enabled: bool = Field(default=True, description="ENABLE_ZOHO_SYNC: false stops every call (kill switch)")
    max_workers: int = 4
    max_attempts: int = 5
    backoff_base_s: float = 30.0
    backoff_max_s: float = 3600.0

    def config(self) -> ZohoConfig:
        base = ZohoConfig.from_env()  # the knobs this resource does not carry keep their env/default values
        return dataclasses.replace(
            base,
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
            organization_id=self.organization_id,
            region=self.region,
            api_base_url=self.api_base_url or None,
            accounts_url=self.accounts_url or None,
            requests_per_minute=self.requests_per_minute,
            daily_budget=self.daily_budget,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )

    def settings(self) -> SyncSettings:
        return dataclasses.replace(
            SyncSettings.from_env(),
            enabled=self.enabled,
            max_workers=self.max_workers,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )

    def client(self, source_engine):
        """A ZohoClient sharing the access token and the daily API budget through the source database.
        The caller closes it (it is a context manager)."""
        return zoho_client(self.config(), source_engine)


def zoho_resource_from_env(env=None) -> ZohoBillingResource:
    """The resource as deployed: secrets as EnvVar, the rest defaulted from the environment at load."""
    cfg_fields = {f.name for f in dataclasses.fields(ZohoConfig)}
    try:
        cfg = ZohoConfig.from_env(env)
        cfg_values = {k: getattr(cfg, k) for k in ZohoBillingResource.model_fields if k in cfg_fields}
    except ValueError:  # an unknown ZOHO_REGION: let the run fail with the config's own message, not the load
        cfg_values = {}
    settings = SyncSettings.from_env(env)
    for secret in ("client_id", "client_secret", "refresh_token", "organization_id"):
        cfg_values.pop(secret, None)
    return ZohoBillingResource(
        client_id=dg.EnvVar("ZOHO_CLIENT_ID"),
        client_secret=dg.EnvVar("ZOHO_CLIENT_SECRET"),
        refresh_token=dg.EnvVar("ZOHO_REFRESH_TOKEN"),
        organization_id=dg.EnvVar("ZOHO_ORGANIZATION_ID"),
        **cfg_values,
        enabled=settings.enabled,
        max_workers=settings.max_workers,
        max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s,
        backoff_max_s=settings.backoff_max_s,
    )


def resources_from_env(env=None) -> dict:
    return {
        "source": SourceDatabaseResource(url=dg.EnvVar("SOURCE_DATABASE_URL")),
        "zoho": zoho_resource_from_env(env),
    }
