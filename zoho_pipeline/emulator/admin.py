"""The emulator's own admin API under /__emulator__ (not ZOHO's): health, stats, reset, faults, clock.

GET  /__emulator__/clock                          {"now": "2025-01-01T08:00:00Z"}
PUT  /__emulator__/clock  {"now": "<ISO-8601>"}   forward only (400 for a move back); runs the scheduled work
PUT  /__emulator__/clock  {"advance_days": N}     the same, N whole days later
GET  /__emulator__/requests                       {"requests": [...]}: the last API requests as received (method,
                                                  path, query, body) and answered (status, response), oldest first
"""

from __future__ import annotations

import datetime as dt
import json

from .clock import parse_time

INVALID_URL = (404, {"code": 5, "message": "Invalid URL Passed"})


def handle(emu, method: str, path: str, raw: bytes) -> tuple[int, dict]:
    """Answer one admin call for the running `emu` (server.Emulator)."""
    route = (method, path)
    try:
        if route == ("GET", "/health"):
            return 200, {"status": "ok"}
        if route == ("GET", "/stats"):
            return 200, emu.stats_dict()
        if route == ("POST", "/reset"):
            emu.reset()
            return 200, {"code": 0, "message": "reset"}
        if route == ("GET", "/clock"):
            return 200, emu.clock()
        if route == ("PUT", "/clock"):
            return 200, emu.move_clock(clock_target(emu.store, _object(raw)))
        if route == ("GET", "/requests"):
            return 200, {"requests": emu.requests()}
        if route == ("GET", "/faults"):
            return 200, emu.faults.current()
        if route == ("PUT", "/faults"):
            return 200, emu.faults.update(**_object(raw))
    except ValueError as exc:
        return 400, {"code": 4, "message": str(exc)}
    return INVALID_URL


def _object(raw: bytes) -> dict:
    body = json.loads(raw or b"{}")
    if not isinstance(body, dict):
        raise ValueError("a JSON object is expected")
    return body


def clock_target(store, body: dict) -> dt.datetime:
    """Where a clock move goes: {"now": "<ISO-8601>"} or {"advance_days": N} (exactly one of them)."""
    if set(body) not in ({"now"}, {"advance_days"}):
        raise ValueError('send {"now": "<ISO-8601 time>"} or {"advance_days": <whole days>}')
    if "now" in body:
        return parse_time(body["now"])
    days = body["advance_days"]
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError(f"advance_days must be a whole number of days, 0 or more (got {days!r})")
    with store.lock:
        return store.clock.now() + dt.timedelta(days=days)
