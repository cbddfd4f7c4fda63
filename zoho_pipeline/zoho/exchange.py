"""One HTTP exchange with ZOHO's API as the client saw it, handed to an observer (the engine's API call
inspector) without the client knowing who listens or where it is kept.

An exchange never carries the Authorization header, the access token or the OAuth calls (those go through
`auth`, not the request loop): the observer gets the method, the path, the query, the bytes sent and the bytes
answered (the very bytes on the wire: no second serialization), the client's own secrets masked in them.

Cheap to make, because the client makes one per call and most are never looked at again (the inspector keeps
only failed calls' bodies by default): the client hands over the raw bytes and its secrets, and `request` /
`response` mask them when read (once each: read them once). The envelope's code is read from the raw bytes
(a number, never a secret).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable

_ID_SEGMENT = re.compile(
    r"(?<![^/])[^/]*\d[^/]*"
)  # a segment with a digit: ZOHO ids are digits; our plan codes (isp-1a2b…) carry digits too
_CODE = re.compile(rb'^\s*\{\s*"code"\s*:\s*(-?\d+)')
_SUCCESS = (b'{"code":0,', b'{"code": 0,')  # how ZOHO and the emulator begin a success


class Exchange:
    __slots__ = (
        "at",
        "method",
        "path",
        "params",
        "_request",
        "status",
        "_response",
        "duration_ms",
        "error",
        "_secrets",
    )

    def __init__(self, at, method, path, params, request, status, response, duration_ms, error=None, secrets=()):
        self.at = at  # when the request was sent: seconds since the epoch (time.time())
        self.method = method
        self.path = path  # as sent, e.g. /customers/460000000026049
        self.params = params  # the query, or None
        self._request = request  # the body as sent (JSON bytes or text), None for none
        self.status = status  # None: no response (timeout, reset)
        self._response = response  # the raw body answered
        self.duration_ms = duration_ms
        self.error = error  # what happened when there was no response ("ReadTimeout")
        self._secrets = secrets  # the client's secrets as bytes (≥ 4 long), masked in what the bodies give

    @property
    def request(self) -> bytes | None:
        body = self._request
        return _masked(body.encode() if isinstance(body, str) else body, self._secrets)

    @property
    def response(self) -> bytes | None:
        return _masked(self._response, self._secrets)

    @property
    def zoho_code(self) -> int | None:
        """ZOHO's envelope code: read from the first key (where ZOHO and the emulator put it), else parsed."""
        content = self._response
        if not content:
            return None
        if content.startswith(_SUCCESS):  # most answers: no regex
            return 0
        found = _CODE.match(content)
        if found:
            return int(found.group(1))
        try:
            code = json.loads(content).get("code")
        except (ValueError, AttributeError):
            return None
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def path_template(self) -> str:
        return path_template(self.path)


Observer = Callable[[Exchange], None]


def _masked(data: bytes | None, secrets) -> bytes | None:
    for secret in secrets:
        if data and secret in data:
            data = data.replace(secret, b"***")
    return data


@functools.lru_cache(maxsize=512)  # a create's path repeats: /customers
def path_template(path: str) -> str:
    """The route without its ids: /customers/460000000026049/markasinactive → /customers/{id}/markasinactive."""
    return _ID_SEGMENT.sub("{id}", path)
