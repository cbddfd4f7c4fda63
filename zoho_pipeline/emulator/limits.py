"""Per-organization request limits: a sliding one-minute window with lockout, a daily budget, in-flight cap."""

from __future__ import annotations

import collections
import math
import threading
import time

from .errors import ApiError

PER_MINUTE_MESSAGE = (
    "For security reasons you have been blocked for some time as you have exceeded the maximum "
    "number of requests per minute"
)
DAILY_MESSAGE = "You have exceeded the maximum number of API requests per day. Please try again tomorrow."
CONCURRENCY_MESSAGE = "You have exceeded the maximum number of concurrent API requests. Please try again later."


def _too_many(message: str, retry_after: float, send_header: bool) -> ApiError:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if send_header else {}
    return ApiError(429, 44, message, headers)


class Limiter:
    def __init__(self, faults):
        self.faults = faults  # live settings: rate_limit_per_minute, daily_limit, ... (see faults.Faults)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.window: collections.deque[float] = collections.deque()
            self.lockout_until = 0.0
            self.day = time.strftime("%Y-%m-%d", time.gmtime())
            self.day_count = 0
            self.in_flight = 0

    # concurrency ---------------------------------------------------------------------------------------------
    def enter(self) -> None:
        s = self.faults.settings
        with self.lock:
            if self.in_flight >= s["max_concurrency"]:
                raise _too_many(CONCURRENCY_MESSAGE, 1, s["retry_after"])
            self.in_flight += 1

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    # rate and budget -------------------------------------------------------------------------------------------
    def admit(self) -> None:
        s = self.faults.settings
        now = time.monotonic()
        with self.lock:
            if now < self.lockout_until:
                raise _too_many(PER_MINUTE_MESSAGE, self.lockout_until - now, s["retry_after"])
            day = time.strftime("%Y-%m-%d", time.gmtime())
            if day != self.day:
                self.day, self.day_count = day, 0
            if self.day_count >= s["daily_limit"]:
                wall = time.time()
                raise _too_many(DAILY_MESSAGE, 86400 - (wall % 86400), s["retry_after"])
            while self.window and now - self.window[0] >= 60:
                self.window.popleft()
            limit = s["rate_limit_per_minute"]
            storm = self.faults.storm_limit()
            if storm is not None and storm < limit and len(self.window) >= storm:
                # a 429 storm: answered like the real limit, but without the lockout
                raise _too_many(PER_MINUTE_MESSAGE, 60 - (now - self.window[0]) if self.window else 1, s["retry_after"])
            if len(self.window) >= limit:
                if s["lockout_seconds"] > 0:
                    self.lockout_until = now + s["lockout_seconds"]
                    raise _too_many(PER_MINUTE_MESSAGE, s["lockout_seconds"], s["retry_after"])
                raise _too_many(PER_MINUTE_MESSAGE, 60 - (now - self.window[0]), s["retry_after"])
            self.window.append(now)
            self.day_count += 1

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self.lock:
            return {
                "in_flight": self.in_flight,
                "last_minute": sum(1 for t in self.window if now - t < 60),
                "today": self.day_count,
                "lockout_remaining_s": round(max(0.0, self.lockout_until - now), 3),
            }
