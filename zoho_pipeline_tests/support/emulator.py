"""The emulator for tests and benchmarks: in this process (a thread) or as its own process, with the test
credentials, and the ZOHO client wired as production wires it (token cache and usage in the source database)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import requests

TEST_CREDENTIALS = dict(
    client_id="1000.TESTCLIENT",
    client_secret="emulator-client-secret-5f1c",
    refresh_token="1000.emulator-refresh-token-9a7e",
    organization_id="10234695",
)
UNLIMITED = dict(rate_limit_per_minute=10_000_000, daily_limit=100_000_000, max_concurrency=64, lockout_seconds=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(**overrides):
    """An emulator thread on a free port: the test credentials, no limits or faults unless `overrides` say so."""
    from zoho_pipeline.emulator.server import EmulatorConfig
    from zoho_pipeline.emulator.server import start_emulator as start

    config = dict(
        host="127.0.0.1",
        port=0,
        rate_limit_per_minute=100_000,
        daily_limit=10_000_000,
        max_concurrency=64,
        seed=7,
        **TEST_CREDENTIALS,
    )
    config.update(overrides)
    return start(EmulatorConfig(**config))


class EmulatorProc:
    """`python -m zoho_pipeline.emulator` on a free port; stats/reset/faults over its admin API."""

    def __init__(self, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "zoho_pipeline.emulator", "--port", str(self.port)]
        for key, value in {**TEST_CREDENTIALS, **settings}.items():
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/__emulator__/health", timeout=1).ok:
                    return
            except requests.RequestException:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"emulator exited: {self.proc.stderr.read()[-2000:]}") from None
                time.sleep(0.05)
        raise RuntimeError("emulator did not start within 20 s")

    def stats(self) -> dict:
        return requests.get(self.url + "/__emulator__/stats", timeout=30).json()

    def reset(self) -> None:
        requests.post(self.url + "/__emulator__/reset", timeout=60).raise_for_status()

    def set_faults(self, **changes) -> dict:
        r = requests.put(self.url + "/__emulator__/faults", json=changes, timeout=10)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def zoho_config(emulator_url: str, **overrides):
    """A ZohoConfig pointing at the emulator with the test credentials; no pacing unless `overrides` say so."""
    from zoho_pipeline.zoho.config import ZohoConfig

    options = dict(
        api_base_url=f"{emulator_url}/billing/v1",
        accounts_url=emulator_url,
        requests_per_minute=100_000,
        daily_budget=10_000_000,
        read_timeout_s=5.0,
        **TEST_CREDENTIALS,
    )
    options.update(overrides)
    return ZohoConfig(**options)


def pipeline_env(source_url: str, emulator_url: str, **more: str) -> dict[str, str]:
    """The environment a zoho-pipeline process needs to sync `source_url` to the emulator, unpaced; `more` adds or
    overrides variables (DAGSTER_HOME, ZOHO_DAILY_BUDGET, ...)."""
    return {
        "SOURCE_DATABASE_URL": source_url,
        "ZOHO_API_BASE_URL": f"{emulator_url}/billing/v1",
        "ZOHO_ACCOUNTS_URL": emulator_url,
        "ZOHO_CLIENT_ID": TEST_CREDENTIALS["client_id"],
        "ZOHO_CLIENT_SECRET": TEST_CREDENTIALS["client_secret"],
        "ZOHO_REFRESH_TOKEN": TEST_CREDENTIALS["refresh_token"],
        "ZOHO_ORGANIZATION_ID": TEST_CREDENTIALS["organization_id"],
        "ZOHO_RATE_LIMIT_PER_MINUTE": "100000",
        **more,
    }


def make_client(engine, emulator_url: str, *, session=None, own_limiter: bool = False, **overrides):
    """The production wiring (token cache and usage in the source database). `own_limiter`: a limiter of this
    client's own, as a separate process would have; else the process-wide one, reset first."""
    from zoho_pipeline.sync.stores import DbUsageStore, zoho_client
    from zoho_pipeline.zoho.limiter import RateLimiter

    config = zoho_config(emulator_url, **overrides)
    limiter = None
    if own_limiter:
        limiter = RateLimiter(
            config.requests_per_minute, config.daily_budget, DbUsageStore(engine), config.organization_id
        )
    else:
        RateLimiter.reset_registry()
    return zoho_client(config, engine, limiter=limiter, session=session)


@contextlib.contextmanager
def clocked_world(db_url: str, start_time: str = "2025-01-10T08:00:00Z", **emulator_options):
    """(engine, client, emulator): a source with the pipeline installed, an emulator whose clock starts at
    `start_time`, and a client with its token and usage in the source — the tests that drive ZOHO's clock."""
    from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
    from zoho_pipeline.zoho.client import ZohoClient
    from zoho_pipeline_tests.support import rows

    handle = start_emulator(start_time=start_time, **emulator_options)
    engine = rows.make_source(db_url)
    client = ZohoClient(zoho_config(handle.url), token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine))
    try:
        yield engine, client, handle
    finally:
        client.close()
        engine.dispose()
        handle.stop()
