"""ZOHO's response envelope: `{"code": 0, "message": ..., <entity>: ...}`, classified into ZohoError.

HTTP 200/201 with a non-zero `code` is an error too. Bodies that are not JSON are handled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .errors import AMBIGUOUS, AUTH, PERMANENT, RATE_LIMITED, RETRYABLE, ZohoError
from .redact import redact, short

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def decode_body(body: bytes | str | None):
    """The JSON value of a body, or None when it is empty or not JSON."""
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    body = body.strip()
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _code_and_message(data, status: int) -> tuple[int | None, str]:
    if isinstance(data, dict):
        code = data.get("code")
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        message = data.get("message") or data.get("error_description") or data.get("error")
        if message:
            return code, short(message)
        return code, f"HTTP {status}"
    return None, f"HTTP {status} with a non-JSON body"


def kind_for_status(status: int, method: str) -> str:
    if status in (401, 403):
        return AUTH
    if status == 429:
        return RATE_LIMITED
    if status >= 500:
        return RETRYABLE if method.upper() not in WRITE_METHODS else AMBIGUOUS
    return PERMANENT


def parse_envelope(
    status: int,
    body: bytes | str | None,
    *,
    method: str = "GET",
    path: str | None = None,
    secrets: Iterable[str | None] = (),
    retry_after_s: float | None = None,
) -> dict:
    """The envelope dict of a successful response (HTTP 2xx and `code` 0), else raise the classified ZohoError."""
    method = method.upper()
    path = path.split("?", 1)[0] if path else path
    data = decode_body(body)
    secrets = tuple(secrets)

    def fail(kind, message, code=None):
        raise ZohoError(
            kind=kind,
            message=redact(message, secrets),
            http_status=status,
            code=code,
            method=method,
            path=path,
            retry_after_s=retry_after_s,
        )

    if 200 <= status < 300:
        if not isinstance(data, dict):
            # ZOHO (or a proxy) answered 2xx with something unreadable: a write may have acted
            fail(AMBIGUOUS if method in WRITE_METHODS else RETRYABLE, "unreadable success response (not a JSON object)")
        code, message = _code_and_message(data, status)
        if code not in (None, 0):
            fail(PERMANENT, message, code)
        return data
    code, message = _code_and_message(data, status)
    fail(kind_for_status(status, method), message, code)
    raise AssertionError("unreachable")
