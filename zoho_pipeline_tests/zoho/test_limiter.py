"""RateLimiter: sliding window, shared pause, daily budget (memory and database), with an injectable clock."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
import sqlalchemy as sa

from zoho_pipeline.source.tables import metadata
from zoho_pipeline.sync.stores import DbUsageStore
from zoho_pipeline.zoho.errors import ZohoError
from zoho_pipeline.zoho.limiter import WINDOW_S, MemoryUsageStore, RateLimiter

DAY0 = 1_700_000_000.0  # a wall-clock instant (UTC 2023-11-14)


class FakeClock:
    """Monotonic + wall clock; waiting advances time instead of sleeping."""

    def __init__(self):
        self.t = 1000.0
        self.wall_t = DAY0
        self.waits: list[float] = []

    def clock(self):
        return self.t

    def wall(self):
        return self.wall_t

    def wait(self, cond, timeout):
        self.waits.append(timeout)
        self.advance(max(timeout, 0.0))

    def advance(self, s):
        self.t += s
        self.wall_t += s


def make(per_minute=5, budget=None, store=None, **kw):
    c = FakeClock()
    lim = RateLimiter(per_minute, budget, store, "org1", clock=c.clock, wall=c.wall, waiter=c.wait, **kw)
    return lim, c


def test_window_is_strict_and_fully_used():
    lim, c = make(per_minute=5)
    sends = []
    for _ in range(23):
        lim.acquire()
        sends.append(c.t)
    # never more than 5 in any 60 s window
    for i, t in enumerate(sends):
        assert sum(1 for u in sends if t - 60 < u <= t) <= 5, i
    # and the allowance is used: sends 0-4 at once, 5-9 exactly one window (60 s + the arrival margin) later
    assert WINDOW_S == 61.0
    assert sends[:5] == [1000.0] * 5
    assert sends[5:10] == [1000.0 + WINDOW_S] * 5
    assert sends[20] == 1000.0 + 4 * WINDOW_S


def test_acquire_returns_waited_seconds():
    lim, c = make(per_minute=1)
    assert lim.acquire() == 0
    c.advance(20)
    assert lim.acquire() == pytest.approx(WINDOW_S - 20)


def test_pause_until_blocks_everyone_and_max_wait():
    lim, c = make(per_minute=100)
    lim.pause_for(30)
    assert lim.paused_for == pytest.approx(30)
    with pytest.raises(ZohoError) as ei:
        lim.acquire(max_wait_s=10)
    assert ei.value.kind == "rate_limited" and ei.value.retry_after_s == pytest.approx(30)
    waited = lim.acquire(max_wait_s=60)
    assert waited == pytest.approx(30)
    assert lim.paused_for == 0


def test_daily_budget_memory_raises_before_send_and_rolls_over():
    lim, c = make(per_minute=1000, budget=3)
    for _ in range(3):
        lim.acquire()
    with pytest.raises(ZohoError) as ei:
        lim.acquire()
    assert ei.value.kind == "budget_exhausted"
    assert lim.used_today() == 3
    c.advance(86_400)  # next UTC day
    lim.acquire()
    assert lim.used_today() == 1


def test_daily_budget_shared_through_usage_store():
    store = MemoryUsageStore()
    a, ca = make(per_minute=1000, budget=25, store=store, flush_every=5)
    b, cb = make(per_minute=1000, budget=25, store=store, flush_every=5)
    sent = 0
    for _ in range(40):
        for lim in (a, b):
            try:
                lim.acquire()
                sent += 1
            except ZohoError as e:
                assert e.kind == "budget_exhausted"
    a.flush()
    b.flush()
    # each process may overshoot by at most one unflushed batch
    assert 25 <= sent <= 25 + 2 * 5
    assert store.get("org1", date.fromtimestamp(DAY0)) == sent


class CountingStore(MemoryUsageStore):
    def __init__(self):
        super().__init__()
        self.writes: list[int] = []

    def add(self, organization_id, day, n):
        self.writes.append(n)
        return super().add(organization_id, day, n)


def test_store_writes_are_batched_far_from_the_budget_and_tighten_near_it():
    store = CountingStore()
    lim, _ = make(per_minute=100_000, budget=10_000, store=store, flush_every=50, flush_interval_s=1e9)
    for _ in range(500):
        lim.acquire()
    assert store.writes == [50] * 10  # far from the budget: one write per 50 calls, not per call
    store.add("org1", date.fromtimestamp(DAY0), 9_300)  # other processes spent most of the day's budget
    sent = 0
    with pytest.raises(ZohoError):
        while True:
            lim.acquire()
            sent += 1
    # the next write reveals the others' calls; from then on writes come closer together, so every process
    # learns the shared total often enough to stop within a call or two of the budget
    assert store.writes[10:12] == [9_300, 50] and max(store.writes[12:]) <= 15
    assert store.writes[12:] == sorted(store.writes[12:], reverse=True)
    lim.flush()
    assert 10_000 <= store.get("org1", date.fromtimestamp(DAY0)) <= 10_002
    assert 200 <= sent <= 202


def test_a_flush_in_progress_is_not_waited_for():
    gate, entered = threading.Event(), threading.Event()

    class SlowStore(MemoryUsageStore):
        def add(self, organization_id, day, n):
            entered.set()
            gate.wait(5)
            return super().add(organization_id, day, n)

    lim = RateLimiter(100_000, None, SlowStore(), "org1", flush_every=1)
    writer = threading.Thread(target=lim.acquire)
    writer.start()
    assert entered.wait(5)
    started = time.monotonic()
    lim.acquire()  # its own flush finds the store busy: it goes on instead of queueing behind the slow write
    assert time.monotonic() - started < 1.0
    gate.set()
    writer.join(5)
    lim.flush()
    assert lim.usage_store.get("org1", lim._day) == 2


def test_usage_store_sees_other_processes_at_start():
    store = MemoryUsageStore()
    store.add("org1", date(2023, 11, 14), 10)
    lim, _ = make(per_minute=1000, budget=10, store=store)
    with pytest.raises(ZohoError) as ei:
        lim.acquire()
    assert ei.value.kind == "budget_exhausted"


def test_db_usage_store_shared_budget(db_url):
    engine = sa.create_engine(db_url)
    metadata.create_all(engine)
    store = DbUsageStore(engine)
    day = date(2023, 11, 14)
    assert store.get("org1", day) == 0
    assert store.add("org1", day, 4) == 4
    assert store.add("org1", day, 6) == 10
    # concurrent increments are atomic
    threads = [threading.Thread(target=lambda: [store.add("org1", day, 1) for _ in range(10)]) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert store.get("org1", day) == 50
    lim, _ = make(per_minute=1000, budget=52, store=store, flush_every=1)
    lim.acquire()
    lim.acquire()
    with pytest.raises(ZohoError) as ei:
        lim.acquire()
    assert ei.value.kind == "budget_exhausted"
    assert store.get("org1", day) == 52
    engine.dispose()


def test_registry_shares_one_limiter_per_org():
    RateLimiter.reset_registry()
    a = RateLimiter.for_organization("o-a", 10, 100)
    assert RateLimiter.for_organization("o-a", 20, 100) is a and a.per_minute == 20
    assert RateLimiter.for_organization("o-b", 10, 100) is not a
    RateLimiter.reset_registry()


def test_real_threads_full_utilisation_never_over():
    """16 threads against a 1-second window of 40: >= 97 % of the allowance, never above it."""
    lim = RateLimiter(40, None, None, "bench", window_s=1.0)
    stamps: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 2.5

    def worker():
        while True:
            lim.acquire()
            now = time.monotonic()
            if now >= stop:
                return
            with lock:
                stamps.append(now)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    stamps.sort()
    for i, t in enumerate(stamps):  # strict window (tiny tolerance for clock reads after acquire)
        assert sum(1 for u in stamps[i:] if u < t + 0.995) <= 40
    assert len(stamps) >= 0.97 * 120  # three windows (0, 1, 2 s) each fully used
