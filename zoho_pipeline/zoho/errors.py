"""What can go wrong talking to ZOHO, classified for the engine.

- retryable: nothing happened in ZOHO (429, connection refused before send, 5xx on a read); try again later.
- ambiguous: the request was sent and ZOHO may have acted (timeout or reset after send, 5xx on a write);
  the engine must look the entity up before any second create.
- permanent: ZOHO refused the request (4xx with its code and message); retrying the same payload is pointless.
- rate_limited / budget_exhausted: the organization's limits; the run pauses or ends, rows keep their retries.
- auth: credentials or organization are wrong (bad refresh token, invalid client, 401 after a refresh, 403).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

RETRYABLE = "retryable"
AMBIGUOUS = "ambiguous"
PERMANENT = "permanent"
RATE_LIMITED = "rate_limited"
BUDGET_EXHAUSTED = "budget_exhausted"
AUTH = "auth"


@dataclass
class ZohoError(Exception):
    kind: str
    message: str
    http_status: int | None = None
    code: int | None = None  # ZOHO's envelope code, e.g. 1002, 101002
    method: str | None = None
    path: str | None = None  # path only: never a query string that could carry a token
    retry_after_s: float | None = None
    unreachable: bool = False  # no connection could be made at all (ZOHO down, DNS, network): nothing was sent

    def __post_init__(self):
        super().__init__(str(self))

    @property
    def may_have_acted(self) -> bool:
        return self.kind == AMBIGUOUS

    @property
    def error_code(self) -> str:
        """Short code stored on the row: ZOHO's own code when it gave one, else the kind and HTTP status."""
        if self.code not in (None, 0):
            return str(self.code)
        return f"{self.kind}:{self.http_status}" if self.http_status else self.kind

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"HTTP {self.http_status}" if self.http_status else "no response"
        code = f", code {self.code}" if self.code not in (None, 0) else ""
        return f"{where}{self.message} ({status}{code})"


def never_sent(exc: BaseException) -> bool:
    """True when the connection could not be established, so nothing reached ZOHO."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (NewConnectionError, ConnectTimeoutError)):
            return True
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return False
