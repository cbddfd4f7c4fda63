"""The resources: the provider's database, ZOHO Billing, and the engine's knobs.

The fields of `ZohoBillingResource` and `SyncEngineResource` are the fields of `ZohoConfig` and `SyncSettings`,
generated from those dataclasses, so each default is written once (in the dataclass) and every knob shows in the
Launchpad (Deployment → resources, or `resources:` in a run's config). Secrets are bound with `dg.EnvVar` (their
names show in the UI, their values never do); the other values are read from the environment when the definitions
load (`resources_from_env`), through the same `from_env` readers the CLI uses.
"""

from __future__ import annotations

import dataclasses
import functools

import dagster as dg
import pydantic
from pydantic import Field

from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync import settings as engine_settings
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import zoho_client
from zoho_pipeline.zoho import config as zoho_config
from zoho_pipeline.zoho.config import ZohoConfig

SECRETS = ("client_id", "client_secret", "refresh_token", "organization_id")
_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "str | None": str | None}


@functools.lru_cache(maxsize=8)
def _engine_for(url: str):
    return make_engine(url)


class SourceDatabaseResource(dg.ConfigurableResource):
    """The provider's billing database (source of truth): a SQLAlchemy URL, Postgres or SQLite."""

    url: str = Field(description="SQLAlchemy URL of the source database (SOURCE_DATABASE_URL)")

    def engine(self):
        """One engine per URL and process, shared by assets, checks and sensor ticks."""
        return _engine_for(self.url)


def _fields_of(dataclass_type, env_vars: dict[str, str]) -> dict:
    """pydantic fields for a resource: the dataclass's fields, types and defaults; the variable as description."""
    out = {}
    for f in dataclasses.fields(dataclass_type):
        default = ... if f.default is dataclasses.MISSING else f.default
        name = env_vars.get(f.name)
        out[f.name] = (_TYPES[f.type], Field(default=default, repr=f.repr, description=name and f"${name}"))
    return out


class _Zoho(dg.ConfigurableResource):
    def config(self) -> ZohoConfig:
        return ZohoConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ZohoConfig)})

    def client(self, source_engine):
        """A ZohoClient sharing the access token and the daily API budget through the source database.
        The caller closes it (it is a context manager)."""
        return zoho_client(self.config(), source_engine)


class _Engine(dg.ConfigurableResource):
    def settings(self) -> SyncSettings:
        return SyncSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SyncSettings)})


ZohoBillingResource = pydantic.create_model(
    "ZohoBillingResource",
    __base__=_Zoho,
    __module__=__name__,
    __doc__="ZOHO Billing (or the emulator): where it "
    "is, the credentials, and how hard we may call it (zoho.config.ZohoConfig).",
    **_fields_of(ZohoConfig, zoho_config.ENV_VARS),
)
SyncEngineResource = pydantic.create_model(
    "SyncEngineResource",
    __base__=_Engine,
    __module__=__name__,
    __doc__="The engine's knobs: workers, chunks, retries, the kill switch (sync.settings.SyncSettings).",
    **_fields_of(SyncSettings, engine_settings.ENV_VARS),
)


def zoho_resource_from_env(env=None) -> ZohoBillingResource:
    """The resource as deployed: secrets as EnvVar, the rest from the environment at load."""
    values = dataclasses.asdict(ZohoConfig.from_env(env))  # a malformed variable fails here, naming it
    values.update({name: dg.EnvVar(zoho_config.ENV_VARS[name]) for name in SECRETS})
    return ZohoBillingResource(**values)


def engine_resource_from_env(env=None) -> SyncEngineResource:
    return SyncEngineResource(**dataclasses.asdict(SyncSettings.from_env(env)))


def resources_from_env(env=None) -> dict:
    return {
        "source": SourceDatabaseResource(url=dg.EnvVar("SOURCE_DATABASE_URL")),
        "zoho": zoho_resource_from_env(env),
        "engine": engine_resource_from_env(env),
    }
