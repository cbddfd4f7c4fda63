"""Where ZOHO Billing is and how hard we may call it. Built from the environment or a Dagster resource."""

from __future__ import annotations

from dataclasses import dataclass, field

from zoho_pipeline.env import ConfigError, dataclass_from_env

# Data centre → (API base, accounts host). Sources: ../shared/reference/zoho-billing-api.md §1.1.
REGIONS = {
    "com": ("https://www.zohoapis.com/billing/v1", "https://accounts.zoho.com"),
    "eu": ("https://www.zohoapis.eu/billing/v1", "https://accounts.zoho.eu"),
    "in": ("https://www.zohoapis.in/billing/v1", "https://accounts.zoho.in"),
    "com.au": ("https://www.zohoapis.com.au/billing/v1", "https://accounts.zoho.com.au"),
    "jp": ("https://www.zohoapis.jp/billing/v1", "https://accounts.zoho.jp"),
    "ca": ("https://www.zohoapis.ca/billing/v1", "https://accounts.zohocloud.ca"),
    "sa": ("https://www.zohoapis.sa/billing/v1", "https://accounts.zoho.sa"),
}


@dataclass(frozen=True)
class ZohoConfig:
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    organization_id: str
    region: str = "com"
    api_base_url: str | None = None  # explicit override, e.g. the emulator's http://127.0.0.1:8787/billing/v1
    accounts_url: str | None = None  # explicit override, e.g. http://127.0.0.1:8787
    requests_per_minute: int = 90  # a margin below ZOHO's 100/min per organization, shared by every process
    daily_budget: int = 10_000  # calls per UTC day for the organization
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_rate_limit_wait_s: float = 900.0  # longer than this and the run ends cleanly, rows left due
    refresh_margin_s: float = 120.0  # refresh the access token this long before it expires
    max_retries: int = 3  # transparent retries of a GET on 5xx/read errors, and of any call never sent
    retry_base_delay_s: float = 0.2  # first retry delay; doubles each time, with jitter (tests shrink it)
    rate_limit_backoff_s: float = 60.0  # pause after a 429 without Retry-After; doubles on repeated 429s
    token_lock_wait_s: float = 30.0  # how long to wait for another process's token refresh

    def __post_init__(self):
        if self.region not in REGIONS and not (self.api_base_url and self.accounts_url):
            raise ConfigError(
                [("ZOHO_REGION", f"ZOHO_REGION={self.region!r} is not valid: one of {', '.join(REGIONS)}")]
            )

    def missing_credentials(self) -> list[str]:
        """The environment variables of the credentials that are empty."""
        names = {
            "ZOHO_CLIENT_ID": self.client_id,
            "ZOHO_CLIENT_SECRET": self.client_secret,
            "ZOHO_REFRESH_TOKEN": self.refresh_token,
            "ZOHO_ORGANIZATION_ID": self.organization_id,
        }
        return [name for name, value in names.items() if not value]

    @property
    def base_url(self) -> str:
        return (self.api_base_url or REGIONS[self.region][0]).rstrip("/")

    @property
    def token_url(self) -> str:
        return (self.accounts_url or REGIONS[self.region][1]).rstrip("/") + "/oauth/v2/token"

    @classmethod
    def from_env(cls, env=None) -> ZohoConfig:
        """Every field from its variable (ENV_VARS); an unset one keeps the default written above."""
        return dataclass_from_env(cls, ENV_VARS, env)


# field → environment variable (token_lock_wait_s has none: tests shrink it)
ENV_VARS = {
    "client_id": "ZOHO_CLIENT_ID",
    "client_secret": "ZOHO_CLIENT_SECRET",
    "refresh_token": "ZOHO_REFRESH_TOKEN",
    "organization_id": "ZOHO_ORGANIZATION_ID",
    "region": "ZOHO_REGION",
    "api_base_url": "ZOHO_API_BASE_URL",
    "accounts_url": "ZOHO_ACCOUNTS_URL",
    "requests_per_minute": "ZOHO_RATE_LIMIT_PER_MINUTE",
    "daily_budget": "ZOHO_DAILY_BUDGET",
    "connect_timeout_s": "ZOHO_CONNECT_TIMEOUT_S",
    "read_timeout_s": "ZOHO_READ_TIMEOUT_S",
    "max_rate_limit_wait_s": "ZOHO_MAX_RATE_LIMIT_WAIT_S",
    "refresh_margin_s": "ZOHO_REFRESH_MARGIN_S",
    "max_retries": "ZOHO_MAX_RETRIES",
    "retry_base_delay_s": "ZOHO_RETRY_BASE_DELAY_S",
    "rate_limit_backoff_s": "ZOHO_RATE_LIMIT_BACKOFF_S",
}
