"""One HTTP exchange with ZOHO's API as the client saw it, handed to an observer (the engine's API call
inspector) without the client knowing who listens or where it is kept.

An exchange never carries the Authorization header, the access token or the OAuth calls (those go through
`auth`, not the request loop): the observer gets the method, the path, the query, the bytes sent and the bytes
answered (the very bytes on the wire: no second serialization), the client's own secrets masked in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

_ID_SEGMENT = re.compile(r"\d")  # ZOHO ids are digits; our plan codes (isp-1a2b…) carry digits too


@dataclass(frozen=True)
class Exchange:
    at: datetime  # when the request was sent (UTC)
    method: str
    path: str  # as sent, e.g. /customers/460000000026049
    params: dict | None
    request: bytes | None  # the body as sent (JSON), None for none
    status: int | None  # None: no response (timeout, reset)
    response: bytes | None  # the raw body answered
    duration_ms: int
    error: str | None = None  # what happened when there was no response ("ReadTimeout")

    @property
    def path_template(self) -> str:
        return path_template(self.path)


Observer = Callable[[Exchange], None]


def path_template(path: str) -> str:
    """The route without its ids: /customers/460000000026049/markasinactive → /customers/{id}/markasinactive."""
    return "/".join("{id}" if _ID_SEGMENT.search(part) else part for part in path.split("/"))
