"""The test suite's isolation of the process-wide limiter (conftest's autouse fixture): what one test leaves in
`RateLimiter.for_organization`'s registry never paces the next. These two run in this order."""

from __future__ import annotations

from zoho_pipeline.zoho.limiter import RateLimiter

ORG = "org-isolation"


class _AnotherTestsPaceStore:  # stands for a DbPaceStore on an earlier test's database
    pass


def test_a_test_leaves_a_full_window_and_its_pace_store_behind():
    limiter = RateLimiter.for_organization(ORG, 100_000, pace_store=None)
    limiter.pace_store = _AnotherTestsPaceStore()
    for _ in range(120):
        limiter.acquire()
    RateLimiter.for_organization(ORG, 90)  # a CLI test: the env's default pace
    assert limiter.in_window() == 120


def test_the_next_test_meets_a_fresh_limiter():
    limiter = RateLimiter.for_organization(ORG, 90)
    assert limiter.in_window() == 0, "the previous test's calls fill this test's window"
    assert limiter.pace_store is None, "the previous test's pace store (another database) is used"
    assert limiter.paused_for == 0.0
