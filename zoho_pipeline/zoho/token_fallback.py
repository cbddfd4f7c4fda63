"""The access token while the shared cache (the source database) is down: kept on this host, and minted sparingly.

ZOHO mints at most 10 access tokens per refresh token per 10 minutes. With the database down, every process (a
`health` from cron each minute, a sync's retries) would otherwise mint its own, burn the ten, and leave the next
sync locked out once the database is back. So, only while the shared store fails: the token goes to a file of
this host (a directory only this user can read, the file mode 0600) that every process of the host reuses, and a
ledger in the same file lets at most MAX_MINTS tokens be minted per 10 minutes without the shared cache — half of
ZOHO's allowance, the rest left for other hosts and for the recovery.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

MAX_MINTS = 5
WINDOW_S = 600.0


def default_directory() -> Path:
    return Path(tempfile.gettempdir()) / f"zoho-pipeline-tokens-{os.getuid()}"


class LocalTokenFallback:
    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory else default_directory()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    @contextlib.contextmanager
    def _locked(self, key: str):
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as f:
                text = f.read()
                data = json.loads(text) if text.strip() else {}
                yield data
                f.seek(0)
                f.truncate()
                f.write(json.dumps(data))
        finally:
            os.close(fd)  # releases the lock

    def load(self, key: str):
        """(access token, expiry as ISO text, api domain) of the host's token, or None."""
        try:
            with self._locked(key) as data:
                token = data.get("token")
        except (OSError, ValueError):
            return None
        return token

    def reserve_mint(self, key: str, now: float | None = None) -> float:
        """0.0 when one more mint is allowed (and counted), else the seconds until one is."""
        now = time.time() if now is None else now
        with self._locked(key) as data:
            mints = [t for t in data.get("mints", []) if t > now - WINDOW_S]
            if len(mints) >= MAX_MINTS:
                data["mints"] = mints
                return max(1.0, mints[0] + WINDOW_S - now)
            data["mints"] = [*mints, now]
            return 0.0

    def save(self, key: str, access_token: str, expires_at: datetime, api_domain: str | None) -> None:
        with self._locked(key) as data:
            data["token"] = [access_token, expires_at.isoformat(), api_domain]
