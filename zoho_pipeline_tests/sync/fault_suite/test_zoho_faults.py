"""The fault suite (issue 6), ZOHO misbehaving: 5xx, write responses lost after ZOHO acted, a 429 storm, access
tokens dying and the token endpoint's mint limit, ZOHO down and back; and a soak of them all mixed.

The whole pipeline, end to end: real Postgres for the source (a seeded demo cloned per scenario), real HTTP to the
emulator with its fault injection, every entity synced by `run_sync`, runs repeated until nothing needs work
(scheduled time between runs is simulated by `support.faults.fast_forward`). Every scenario ends with the
harness's verdict (conftest.py): 0 duplicates, 0 lost rows, 0 rows stuck in `syncing`. A summary table is printed
at the end of the module and written to bench-results/zoho_faults.txt. The pipeline's own faults (killed runs,
two runs at once, the source database gone) are test_pipeline_faults.py's.

Engine findings, fixed, are kept as regressions (each names the file and the mechanism): an outage burned
attempts (no run-level stop; parents re-attempted by every child batch), and adopting after an ambiguous create
neither sent a change made meanwhile nor found a customer whose email had changed meanwhile.

The soak test (ZOHO_SOAK=1) uses ZOHO_SOAK_CUSTOMERS (default 3000).
"""

from __future__ import annotations

import os
import time

import pytest
import sqlalchemy as sa

from zoho_pipeline_tests.support import faults as fk

SOAK_CUSTOMERS = fk.env_int("ZOHO_SOAK_CUSTOMERS", 3000)

soak = pytest.mark.skipif(os.environ.get("ZOHO_SOAK") != "1", reason="soak run: set ZOHO_SOAK=1")


# --- 1. 5xx ---------------------------------------------------------------------------------------------------


def test_ten_percent_5xx(world):
    h = world.emulator(fail_rate=0.10, seed=101)
    reports = world.settle(h, max_runs=6)
    injected = h.stats()["failed_injected"]
    assert injected > 0.05 * h.stats()["requests"]
    world.finish("1 5xx 10%", h.store, reports, notes=f"{injected} injected 500s")


# --- 2. ambiguous writes --------------------------------------------------------------------------------------


def test_dropped_write_responses_are_adopted_not_duplicated(world):
    h = world.emulator(drop_rate=0.05, seed=202)
    reports = world.settle(h, max_runs=6)
    dropped = h.stats()["dropped"]
    assert dropped > 0
    assert fk.total(reports, "adopted") > 0, "dropped creates must be found again by reference and adopted"
    world.finish("2 drop 5% writes", h.store, reports, notes=f"{dropped} responses dropped")


# --- 3. 429 storm ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no-retry-after"])
def test_429_storm_burns_no_attempts(world, retry_after):
    attempts_between_runs: list[int] = []

    def between(n, report):
        attempts_between_runs.append(fk.max_attempts_seen(world.engine))
        remaining = h.faults()["storm_remaining_s"]
        time.sleep(min(remaining + 0.1, 6.0))  # the next scheduled run comes after the storm (or during it)

    h = world.emulator(
        rate_limit_per_minute=2000,
        lockout_seconds=1,
        storm_rate_limit_per_minute=200,
        storm_seconds=4,
        retry_after=retry_after,
        seed=303,
    )
    reports = world.settle(
        h,
        max_runs=6,
        between=between,
        client=dict(requests_per_minute=1500, max_rate_limit_wait_s=2.0, rate_limit_backoff_s=0.3),
    )
    limited = h.stats()["rate_limited"]
    assert limited > 0, "the storm must really answer 429"
    stops = [r.stopped_reason for r in reports if r.stopped_reason]
    assert set(stops) <= {"rate_limited"}
    # a 429 is never a row's failure: no retry counted, no retrying/dead-letter outcome, every success on attempt 1
    assert attempts_between_runs == [0] * len(attempts_between_runs)
    logs = fk.log_rows(world.engine)
    assert not [r for r in logs if r["outcome"] in ("retrying", "dead_lettered")]
    assert {r["attempt"] for r in logs if r["outcome"] == "synced" and r["action"] != "skip"} == {1}
    assert not [r for r in logs if (r["error_code"] or "").startswith(("44", "rate_limited"))]
    name = "3 429 storm " + ("Retry-After" if retry_after else "no Retry-After")
    world.finish(name, h.store, reports, notes=f"{limited} x 429; stops: {len(stops)}")


# --- 4. tokens ------------------------------------------------------------------------------------------------


TOKEN_USES = 40  # calls one access token serves before it dies (the emulator's token_max_uses)


def test_token_expiry_and_mint_limit(world):
    """Deterministic: a token dies after TOKEN_USES calls and the mint window never passes by itself (an hour), so
    when a token dies and whether a mint is refused follow from the calls made, not from the machine's speed."""
    h = world.emulator(token_max_uses=TOKEN_USES, token_mint_limit=100, token_mint_window_s=3600, latency_ms=40)
    # a: access tokens really die mid-run (though expires_in says an hour): refresh on 401, carry on
    first = world.settle(h, entities=("plans", "customers", "subscriptions"), max_runs=1)
    assert first[0].stopped_reason is None, first[0].stopped_detail
    stats = h.stats()
    minted_a, expired = stats["tokens_minted"], stats["by_status"].get("401", 0)
    accepted = sum(n for route, n in stats["by_route"].items() if not route.endswith("/oauth/v2/token")) - expired
    assert accepted > TOKEN_USES and expired > 0, "the run must outlive its first access token"
    # one mint per death, not one per worker that met the 401 (ZOHO allows 10 per 10 minutes)
    assert minted_a == -(-accepted // TOKEN_USES), (minted_a, accepted)
    # b: the token endpoint's mint limit is reached (every mint of the window spent by part a): when the token
    # dies, the run stops cleanly and hands its rows back untouched (no attempt counted, nothing failed or syncing)
    h.set_faults(token_mint_limit=minted_a)
    stopped = fk.run_once(world.engine, world.clients(h), fk.fast_settings())
    assert stopped.stopped_reason == "rate_limited", stopped.as_dict()
    assert h.stats()["tokens_minted"] == minted_a
    assert fk.max_attempts_seen(world.engine) == 0
    assert fk.unsettled(world.engine) > 0
    assert not [r for r in fk.log_rows(world.engine) if r["outcome"] in ("retrying", "dead_lettered")]
    counts = fk.status_counts(world.engine)
    assert not any(c.get("syncing") for c in counts.values()), counts
    # c: the mint window has passed (the emulator forgets its mints: a window of 0 s; tokens still die after
    # TOKEN_USES calls, so the dead token cached in part b stays dead): the next run mints one and the runs complete
    h.set_faults(token_mint_window_s=0)
    rest = world.settle(h, max_runs=6)
    assert rest[0].stopped_reason is None, rest[0].stopped_detail
    assert h.stats()["tokens_minted"] > minted_a
    world.finish(
        "4 token expiry + mint limit",
        h.store,
        first + [stopped] + rest,
        notes=f"{h.stats()['tokens_minted']} tokens minted; mint refused -> stop {stopped.stopped_reason}",
    )


# --- 7. ZOHO down ---------------------------------------------------------------------------------------------


def test_zoho_down_then_back(world, tmp_path):
    port, state = fk.free_port(), str(tmp_path / "zoho-state.json")
    settings = fk.fast_settings()
    first = world.emulator(port=port, state_file=state, seed=707)
    before = world.settle(first, settings, entities=("plans", "customers"), max_runs=1)
    first.stop()
    # no transparent connect retries while down: they would only sleep
    down = fk.run_once(world.engine, world.clients(f"http://127.0.0.1:{port}", max_retries=0), settings)
    assert down.stopped_reason == "unreachable", down.stopped_reason
    assert fk.max_attempts_seen(world.engine) == 0, "an outage charges no row an attempt"
    assert not [r for r in fk.log_rows(world.engine) if r["outcome"] == "dead_lettered"]
    counts = fk.status_counts(world.engine)
    assert sum(c.get("syncing", 0) for c in counts.values()) == 0, counts
    second = world.emulator(port=port, state_file=state, seed=708)  # the same ZOHO, back on the same port
    reports = world.settle(second, settings, max_runs=6)
    world.finish(
        "7 ZOHO down, then back",
        second.store,
        before + [down] + reports,
        notes="outage run stopped: unreachable, 0 attempts charged",
    )


def test_a_failing_parent_is_attempted_once_per_round_not_once_per_child_batch(world):
    """engine.prepare_parents: a parent this run already tried waits for its own retry round."""
    h = world.emulator()
    fk.run_once(world.engine, world.clients(h), fk.fast_settings(), entities=("plans", "customers"))
    h.set_faults(fail_rate=1.0)  # every call now answers 500: invoices fail retryably, again and again
    settings = fk.fast_settings(max_attempts=50, batch_size=20)  # many payment batches, each needing invoices
    fk.run_once(world.engine, world.clients(h, max_retries=0), settings, entities=("invoices", "payments"))
    from zoho_pipeline.source.tables import customer_invoices as invoices

    with world.engine.connect() as conn:
        worst = conn.execute(sa.select(sa.func.max(invoices.c.zoho_attempts))).scalar()
    assert 1 <= worst <= settings.in_run_retry_rounds + 1, (
        f"an invoice was attempted {worst} times in one run (its own sweep and retry rounds allow "
        f"{settings.in_run_retry_rounds + 1})"
    )


def test_outage_of_two_runs_dead_letters_nothing(world):
    port = fk.free_port()  # nothing listens: connection refused on every call
    settings = fk.fast_settings(max_attempts=5)  # the default
    for _ in range(2):
        fk.run_once(
            world.engine, world.clients(f"http://127.0.0.1:{port}", max_retries=0), settings, entities=("customers",)
        )
        fk.fast_forward(world.engine)
    with world.engine.connect() as conn:
        from zoho_pipeline.source.tables import customers

        dead = conn.execute(
            sa.select(sa.func.count()).select_from(customers).where(customers.c.zoho_dead_lettered.is_(True))
        ).scalar()
    assert dead == 0, f"{dead} customers dead-lettered by a ZOHO outage that lasted two runs"


# --- soak -----------------------------------------------------------------------------------------------------


@pytest.mark.soak
@soak
def test_soak_mixed_faults(make_world):
    world = make_world(SOAK_CUSTOMERS)
    # tokens die after 65 s: often, yet within ZOHO's 10 mints per 10 minutes (scenario 4 covers the mint limit;
    # here it would only stop every run for ten minutes)
    h = world.emulator(
        fail_rate=0.05,
        drop_rate=0.03,
        latency_ms=2,
        jitter_ms=2,
        early_token_expiry_s=65,
        rate_limit_per_minute=20_000,
        storm_rate_limit_per_minute=2_000,
        storm_seconds=5,
        lockout_seconds=1,
        seed=909,
    )
    reports = world.settle(
        h,
        max_runs=12,
        client=dict(requests_per_minute=15_000, max_rate_limit_wait_s=2.0, rate_limit_backoff_s=0.3),
        between=lambda n, r: time.sleep(min(h.faults()["storm_remaining_s"], 6)),
    )
    world.finish(f"soak mixed ({SOAK_CUSTOMERS} customers)", h.store, reports)


# --- adopting after an ambiguous create, when the row changed meanwhile ------------------------------------------


def _in_doubt_customer(world, h) -> str:
    """One valid customer whose create reached ZOHO but whose response was lost: `retrying`, in doubt."""
    from zoho_pipeline.source.tables import customers

    with world.engine.connect() as conn:
        cid = str(
            conn.execute(
                sa.select(customers.c.id).where(customers.c.email.like("%@%.%")).order_by(customers.c.id).limit(1)
            ).scalar()
        )
    h.set_faults(drop_rate=1.0)
    settings = fk.fast_settings(in_run_retry_rounds=0)
    fk.run_once(world.engine, world.clients(h), settings, entities=("customers",), ids={"customers": [cid]})
    h.set_faults(drop_rate=0.0)
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(customers).where(customers.c.id == cid)).mappings().one()
    assert row["zoho_sync_status"] == "retrying" and row["zoho_create_in_doubt"], dict(row)
    assert len(h.store.customers) == 1  # the create acted
    return cid


def _change_customer(world, cid, **values) -> None:
    from zoho_pipeline.source.tables import customers

    with world.engine.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.id == cid)
            .values(updated_at=sa.func.now() + sa.text("interval '1 second'"), **values)
        )


def _sync_customer(world, h, cid) -> None:
    for _ in range(2):
        fk.fast_forward(world.engine)
        fk.run_once(
            world.engine,
            world.clients(h),
            fk.fast_settings(in_run_retry_rounds=0),
            entities=("customers",),
            ids={"customers": [cid]},
        )


def _zoho_customers(h, cid) -> list[dict]:
    with h.store.lock:
        return [
            dict(c)
            for c in h.store.customers.values()
            if any(str(f.get("value")) == cid for f in c.get("custom_fields") or [])
        ]


def test_change_while_in_doubt_reaches_zoho_after_adopt(world):
    h = world.emulator()
    cid = _in_doubt_customer(world, h)
    _change_customer(world, cid, first_name="Renamed")
    _sync_customer(world, h, cid)
    found = _zoho_customers(h, cid)
    assert len(found) == 1
    assert found[0]["first_name"] == "Renamed", "ZOHO keeps the name sent by the lost attempt"


def test_email_change_while_in_doubt_creates_no_duplicate(world):
    h = world.emulator()
    cid = _in_doubt_customer(world, h)
    _change_customer(world, cid, email=f"changed-{cid[:8]}@example.co.za")
    _sync_customer(world, h, cid)
    assert len(_zoho_customers(h, cid)) == 1, "two ZOHO customers carry the same provider customer id"
