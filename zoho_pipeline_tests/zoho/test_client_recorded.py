"""Every response recorded from the real ZOHO API goes through the client's envelope parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zoho_pipeline.zoho.envelope import parse_envelope
from zoho_pipeline.zoho.errors import ZohoError

RECORDED = Path("/work/shared/zoho-billing-recorded")
NAME = re.compile(r"-(get|post|put|delete)-(\d{3})(?:-[\w-]+)?\.json$")
FILES = sorted(p for p in RECORDED.rglob("*.json") if NAME.search(p.name)) if RECORDED.is_dir() else []


@pytest.mark.skipif(not FILES, reason="recorded responses not present")
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(RECORDED)))
def test_recorded_response(path):
    method, status = NAME.search(path.name).groups()
    status = int(status)
    raw = path.read_bytes()
    recorded = json.loads(raw)
    if status < 300:
        body = parse_envelope(status, raw, method=method.upper(), path="/x")
        assert body == recorded and body["code"] == 0
    else:
        with pytest.raises(ZohoError) as ei:
            parse_envelope(status, raw, method=method.upper(), path="/x")
        assert ei.value.kind == "permanent"
        assert ei.value.code == recorded["code"] and ei.value.message == recorded["message"]
        assert ei.value.http_status == status


def test_recorded_files_found():
    if RECORDED.is_dir():
        assert len(FILES) >= 35


@pytest.mark.parametrize(
    "status,body,method,kind",
    [
        (200, b"<html>proxy</html>", "GET", "retryable"),
        (201, b"", "POST", "ambiguous"),
        (502, b"Bad gateway", "POST", "ambiguous"),
        (502, b"Bad gateway", "GET", "retryable"),
        (429, b'{"code": 44, "message": "blocked"}', "GET", "rate_limited"),
        (401, b'{"code": 57, "message": "invalid OAuthToken"}', "GET", "auth"),
        (403, b'{"code": 57, "message": "not authorized"}', "PUT", "auth"),
        (405, b'{"code": 37, "message": "not allowed"}', "DELETE", "permanent"),
        (200, b'{"code": 1001, "message": "dup"}', "POST", "permanent"),
        (200, b"[1, 2]", "GET", "retryable"),
    ],
)
def test_envelope_shapes(status, body, method, kind):
    with pytest.raises(ZohoError) as ei:
        parse_envelope(status, body, method=method, path="/customers?token=abc")
    assert ei.value.kind == kind and ei.value.path == "/customers"
