"""Per-organization pacing: a strict sliding window of `per_minute` sends, a shared pause after a 429, and a
daily budget counted per UTC day (shared across processes through a `UsageStore`).

One limiter per organization per process (`RateLimiter.for_organization`), shared by every client and thread.
With a `PaceStore` the window and the 429 pause are shared by every process too: a process leases a few slots at a
time from the organization's window (adaptive: one at first, more while it uses them all), so a `health` beside a
sync, or two syncs, together stay under ZOHO's limit. A lease counts in the shared window from its grant until a
window after its last possible send, so every 60 s window holds at most `per_minute` sends of all processes. When
the store cannot be reached the process falls back to its own window (and says so once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol, runtime_checkable

from .errors import BUDGET_EXHAUSTED, RATE_LIMITED, ZohoError

log = logging.getLogger("zoho_pipeline.zoho")


@runtime_checkable
class UsageStore(Protocol):
    def add(self, organization_id: str, day: date, n: int) -> int: ...  # returns the day's total after adding

    def get(self, organization_id: str, day: date) -> int: ...


class MemoryUsageStore:
    def __init__(self):
        self._counts: dict[tuple[str, date], int] = {}
        self._lock = threading.Lock()

    def add(self, organization_id, day, n):
        with self._lock:
            total = self._counts.get((organization_id, day), 0) + n
            self._counts[(organization_id, day)] = total
            return total

    def get(self, organization_id, day):
        with self._lock:
            return self._counts.get((organization_id, day), 0)


@dataclass(frozen=True)
class Grant:
    """A PaceStore's answer: `calls` slots to use within the hold (lease `lease_id`), or none and how long to wait
    (`paused`: a 429 pause, not a full window)."""

    calls: int
    lease_id: int | None
    wait_s: float
    paused: bool = False


@runtime_checkable
class PaceStore(Protocol):
    def lease(
        self,
        organization_id: str,
        want: int,
        per_minute: int,
        window_s: float,
        hold_s: float,
        previous: tuple[int, int] | None = None,
    ) -> Grant: ...

    def release(self, organization_id: str, lease_id: int, used: int) -> None: ...

    def pause(self, organization_id: str, seconds: float) -> None: ...

    def paused_for(self, organization_id: str) -> float: ...


LEASE_HOLD_S = 10.0  # a lease's slots are used within this; an unused rest goes back at the next lease

# ZOHO counts a request when it arrives; we count it before it leaves. A second more than ZOHO's minute keeps
# a request that arrives late from landing in the previous window's count (and a lockout), for 1.6 % of pace.
WINDOW_S = 61.0


def paced_seconds(calls: int, per_minute: int, window_s: float = WINDOW_S) -> float:
    """How long the limiter takes to let `calls` through from an empty window: each window's allowance goes at
    once, then the window must slide. The bound is ZOHO's limit, not our speed (latency only adds to the last)."""
    if calls <= 0:
        return 0.0
    return ((calls - 1) // max(1, int(per_minute))) * window_s


def _utc_day(wall: float) -> date:
    return datetime.fromtimestamp(wall, UTC).date()


class RateLimiter:
    _registry: dict[str, RateLimiter] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        per_minute: int,
        daily_budget: int | None = None,
        usage_store: UsageStore | None = None,
        organization_id: str = "",
        *,
        window_s: float = WINDOW_S,
        flush_every: int = 50,
        flush_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        waiter: Callable | None = None,
        pace_store: PaceStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = int(per_minute)
        self.daily_budget = daily_budget
        self.usage_store = usage_store
        self.organization_id = organization_id
        self.window_s = window_s
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._wall = wall
        self._cond = threading.Condition()
        self._wait = waiter or (lambda cond, timeout: cond.wait(timeout))
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        # daily budget: `_known` = the day's total as last seen in the store (incl. our flushed calls),
        # `_pending` = our calls not yet written to the store
        self._day: date | None = None
        self._known = 0
        self._pending = 0
        self._last_flush = clock()
        self._flush_lock = threading.Lock()
        # shared pace: the current lease (id, slots left, slots used, local expiry) and the next lease's size
        self.pace_store = pace_store
        self._sleep = sleep
        self._lease_lock = threading.Lock()
        self._lease_id: int | None = None
        self._lease_left = self._lease_used = 0
        self._lease_expires = 0.0
        self._lease_size = 1
        self._shared_down = False

    def __repr__(self):
        return (
            f"RateLimiter(org={self.organization_id!r}, per_minute={self.per_minute}, daily_budget={self.daily_budget})"
        )

    @classmethod
    def for_organization(
        cls,
        organization_id: str,
        per_minute: int,
        daily_budget: int | None = None,
        usage_store: UsageStore | None = None,
        pace_store: PaceStore | None = None,
    ) -> RateLimiter:
        """The process's limiter for this organization (made on first use; limits updated to the latest)."""
        with cls._registry_lock:
            limiter = cls._registry.get(organization_id)
            if limiter is None:
                limiter = cls(per_minute, daily_budget, usage_store, organization_id, pace_store=pace_store)
                cls._registry[organization_id] = limiter
            else:
                with limiter._cond:
                    limiter.per_minute = int(per_minute)
                    limiter.daily_budget = daily_budget
                    if usage_store is not None and limiter.usage_store is None:
                        limiter.usage_store = usage_store
                    if pace_store is not None and limiter.pace_store is None:
                        limiter.pace_store = pace_store
            return limiter

    @classmethod
    def reset_registry(cls):
        with cls._registry_lock:
            cls._registry.clear()

    # --- pacing -------------------------------------------------------------------------------------------
    def acquire(self, max_wait_s: float | None = None) -> float:
        """Block until one request may be sent; returns the seconds waited.

        Raises ZohoError(budget_exhausted) when the day's budget is spent, ZohoError(rate_limited) when a 429
        pause would outlast `max_wait_s`."""
        start = self._clock()
        flush_due = False
        shared = self.pace_store is not None and self._take_shared_slot(max_wait_s, start)
        with self._cond:
            while True:
                now = self._clock()
                self._roll_day()
                if self.daily_budget is not None and self._known + self._pending >= self.daily_budget:
                    raise ZohoError(
                        kind=BUDGET_EXHAUSTED,
                        message=(
                            f"daily API budget of {self.daily_budget} calls for organization "
                            f"{self.organization_id} is spent"
                        ),
                    )
                if self._paused_until > now:
                    remaining = self._paused_until - now
                    if max_wait_s is not None and (now - start) + remaining > max_wait_s:
                        raise ZohoError(
                            kind=RATE_LIMITED,
                            message=(
                                f"ZOHO rate limit: paused for {remaining:.0f}s more, beyond the "
                                f"{max_wait_s:.0f}s we may wait"
                            ),
                            http_status=429,
                            retry_after_s=remaining,
                        )
                    self._wait(self._cond, remaining)
                    continue
                horizon = now - self.window_s
                sent = self._sent
                while sent and sent[0] <= horizon:
                    sent.popleft()
                if shared or len(sent) < self.per_minute:  # a shared slot: the organization's window admitted it
                    sent.append(now)
                    if self.daily_budget is not None or self.usage_store is not None:
                        self._pending += 1
                        flush_due = self.usage_store is not None and (
                            self._pending >= self._flush_every() or now - self._last_flush >= self.flush_interval_s
                        )
                    if len(sent) < self.per_minute:
                        self._cond.notify()  # a slot is still free: let the next waiter take it at once
                    break
                self._wait(self._cond, sent[0] + self.window_s - now)
        if flush_due:
            self.flush(wait=False)  # a flush already under way carries our count: no thread queues on the store
        return self._clock() - start

    def _flush_every(self) -> int:
        """Calls counted between writes to the shared store: `flush_every` while the budget is far, closer to
        one as it nears, so processes sharing the budget overshoot it by little without a write per call."""
        if self.daily_budget is None:
            return self.flush_every
        remaining = self.daily_budget - self._known - self._pending
        return max(1, min(self.flush_every, remaining // 10))

    def pause_for(self, seconds: float) -> None:
        self.pause_until(self._clock() + seconds)
        if self.pace_store is not None and not self._shared_down:
            try:  # every process holds back, not only ours
                self.pace_store.pause(self.organization_id, seconds)
            except Exception as exc:  # noqa: BLE001
                log.warning("zoho limiter: could not share the 429 pause (%s)", type(exc).__name__)

    # --- shared pace ----------------------------------------------------------------------------------------
    def _take_shared_slot(self, max_wait_s: float | None, start: float) -> bool:
        """Block until the organization's shared window gives this process a slot: True. False when the store
        cannot be reached (the local window then paces alone). Raises ZohoError(rate_limited) when the wait would
        outlast `max_wait_s`."""
        while True:
            with self._lease_lock:
                now = self._clock()
                if self._lease_left > 0 and now < self._lease_expires:
                    self._lease_left -= 1
                    self._lease_used += 1
                    return True
                if self._shared_down and now < self._lease_expires:
                    return False
                grant = self._lease(now)
                if grant is None:
                    return False
                if grant.calls:
                    continue
                if grant.paused:
                    self.pause_until(self._clock() + grant.wait_s)  # what `paused_for` and callers see
            waited = self._clock() - start
            if max_wait_s is not None and waited + grant.wait_s > max_wait_s:
                why = "paused after a 429" if grant.paused else "the organization's shared window is full"
                raise ZohoError(
                    kind=RATE_LIMITED,
                    message=(
                        f"ZOHO rate limit: {why} for {grant.wait_s:.0f}s more, beyond the {max_wait_s:.0f}s we may wait"
                    ),
                    http_status=429 if grant.paused else None,
                    retry_after_s=grant.wait_s,
                )
            self._sleep(min(grant.wait_s, 5.0))

    def _lease(self, now: float) -> Grant | None:
        """A new lease (the current one settled); None when the store is down (retried after a hold)."""
        previous = (self._lease_id, self._lease_used) if self._lease_id is not None else None
        if previous is not None:  # all used in time: lease more next; slots left over: fewer
            full = self._lease_left == 0
            cap = max(1, self.per_minute // 10)
            self._lease_size = min(cap, self._lease_size * 2) if full else max(1, self._lease_size // 2)
        try:
            grant = self.pace_store.lease(
                self.organization_id, self._lease_size, self.per_minute, self.window_s, LEASE_HOLD_S, previous=previous
            )
        except Exception as exc:  # noqa: BLE001 - the source is down: pace locally, try the store again later
            if not self._shared_down:
                log.warning("zoho limiter: shared pace unavailable (%s); pacing this process alone", type(exc).__name__)
            self._shared_down, self._lease_expires = True, now + LEASE_HOLD_S
            return None
        if self._shared_down:
            log.info("zoho limiter: shared pace available again")
        self._shared_down = False
        self._lease_id, self._lease_left, self._lease_used = grant.lease_id, grant.calls, 0
        self._lease_expires = self._clock() + LEASE_HOLD_S - 0.5  # before the store's own expiry
        return grant

    def release_lease(self) -> None:
        """Give back the current lease's unused slots (a client closing)."""
        with self._lease_lock:
            lease_id, used = self._lease_id, self._lease_used
            self._lease_id, self._lease_left, self._lease_used = None, 0, 0
        if lease_id is None or self.pace_store is None:
            return
        try:
            self.pace_store.release(self.organization_id, lease_id, used)
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("zoho limiter: could not release a pace lease (%s)", type(exc).__name__)

    def shared_pause_s(self) -> float:
        """How long the organization is paused after a 429, as every process sees it (local when no store)."""
        if self.pace_store is not None:
            try:
                return max(self.paused_for, self.pace_store.paused_for(self.organization_id))
            except Exception:  # noqa: BLE001
                pass
        return self.paused_for

    def pause_until(self, t: float) -> None:
        """Nobody sends before monotonic time `t` (a 429 arrived): every thread of the process waits."""
        with self._cond:
            if t > self._paused_until:
                self._paused_until = t
            self._cond.notify_all()

    @property
    def paused_for(self) -> float:
        with self._cond:
            return max(0.0, self._paused_until - self._clock())

    def in_window(self) -> int:
        with self._cond:
            horizon = self._clock() - self.window_s
            return sum(1 for t in self._sent if t > horizon)

    # --- daily budget -------------------------------------------------------------------------------------
    def _roll_day(self) -> None:
        day = _utc_day(self._wall())
        if day != self._day:
            self._day = day
            self._pending = 0
            self._known = 0
            if self.usage_store is not None:
                try:
                    self._known = int(self.usage_store.get(self.organization_id, day) or 0)
                except Exception as exc:  # noqa: BLE001 - count locally until the store answers
                    log.warning("zoho limiter: usage store unavailable (%s); counting locally", type(exc).__name__)

    def used_today(self) -> int:
        with self._cond:
            self._roll_day()
            return self._known + self._pending

    def flush(self, wait: bool = True) -> None:
        """Write our not-yet-recorded calls to the usage store and learn the day's shared total."""
        if self.usage_store is None or not self._flush_lock.acquire(blocking=wait):
            return
        try:
            with self._cond:
                n, day = self._pending, self._day
                # counted as known while the write is in flight, so other threads never see the calls vanish
                self._known += n
                self._pending = 0
                self._last_flush = self._clock()
            if not n or day is None:
                return
            try:
                total = int(self.usage_store.add(self.organization_id, day, n))
            except Exception as exc:  # noqa: BLE001
                log.warning("zoho limiter: could not record %d calls (%s); will retry", n, type(exc).__name__)
                with self._cond:
                    if self._day == day:
                        self._known -= n
                        self._pending += n
                return
            with self._cond:
                if self._day == day:
                    self._known = max(self._known, total)
        finally:
            self._flush_lock.release()
