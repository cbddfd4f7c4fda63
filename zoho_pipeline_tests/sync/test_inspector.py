"""The API call inspector: every call the engine makes, filed under its row, as the emulator received and
answered it, redacted, in a ring of the last N; a refused row names its call. SQLite and Postgres."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from zoho_pipeline.cli import calls as calls_cmd
from zoho_pipeline.monitor.calls import recent_calls
from zoho_pipeline.source import tables as T
from zoho_pipeline.sync import inspector
from zoho_pipeline.sync.engine import run_sync
from zoho_pipeline.sync.settings import SyncSettings
from zoho_pipeline.sync.stores import DbTokenStore, DbUsageStore
from zoho_pipeline.zoho.client import ZohoClient
from zoho_pipeline_tests.conftest import TEST_CREDENTIALS
from zoho_pipeline_tests.support import rows as R

FAST = SyncSettings(max_workers=4, backoff_base_s=0.05, in_run_retry_window_s=0.0, run_stale_after_s=5.0)


@pytest.fixture
def source(db_url):
    engine = R.make_source(db_url)
    yield engine, db_url
    engine.dispose()


@pytest.fixture
def client(source, zoho_config):
    engine, _ = source
    with ZohoClient(zoho_config, token_store=DbTokenStore(engine), usage_store=DbUsageStore(engine)) as c:
        yield c


def _refused_package(engine) -> str:
    """A package whose plan ZOHO refuses: it points at a product that does not exist (code 2006)."""
    with engine.begin() as conn:
        conn.execute(
            T.zoho_pipeline_state.insert().values(
                key=f"zoho:{TEST_CREDENTIALS['organization_id']}:product:services",
                value="999",
                updated_at=datetime.now(UTC),
            )
        )
    return R.add_package(engine, name="Fibre 50/25 Mbps")


def _table_text(engine) -> str:
    with engine.connect() as conn:
        return "\n".join(repr(dict(r)) for r in conn.execute(sa.select(T.zoho_api_calls)).mappings())


def test_a_refused_row_names_its_call_whose_bodies_are_what_the_emulator_received(source, client, emulator):
    engine, url = source
    package = _refused_package(engine)
    customer = R.add_customer(engine, "Thandi", "Nkosi", phone="+27 82 111 2222", address_line1="12 Long St")
    every_body = dataclasses.replace(FAST, inspector_bodies="all")  # successful calls' bodies too
    report = run_sync(engine, client, every_body, entities=["plans", "customers"])

    [failure] = report.entities["plans"].failures
    assert failure.entity_id == package and failure.error_code == "2006" and failure.call_id
    [call] = recent_calls(engine, call_id=failure.call_id)
    assert (call["entity_type"], call["entity_id"], call["method"], call["path_template"]) == (
        "plans",
        package,
        "POST",
        "/plans",
    )
    assert (call["status"], call["zoho_code"]) == (400, 2006)
    received = [r for r in emulator.requests() if r["method"] == "POST" and r["path"] == "/plans"]
    assert len(received) == 1
    assert call["request_body"] == json.loads(received[0]["body"])
    assert call["response_body"] == received[0]["response"]
    assert "2006" in str(call["response_body"]["code"])

    # the customer's create: personal fields redacted, everything else exactly as received and answered
    [create] = recent_calls(engine, entity="customers", entity_id=customer)
    sent = json.loads(
        next(r["body"] for r in emulator.requests() if r["path"] == "/customers" and r["method"] == "POST")
    )
    assert sent["phone"] == "+27 82 111 2222" and sent["billing_address"]["street"] == "12 Long St"
    assert create["request_body"] == inspector.redacted(sent)
    assert create["request_body"]["phone"] == inspector.MASK
    assert create["request_body"]["billing_address"]["street"] == inspector.MASK
    assert create["request_body"]["email"] == sent["email"]  # names the row: kept
    assert create["status"] == 201 and create["response_body"]["customer"]["phone"] == inspector.MASK

    # no secret in any stored body: the credentials and every access token the emulator minted
    text = _table_text(engine)
    assert text.count("'method'") >= 3  # the catalog's reads, the plan's create, the customer's create
    for secret in (TEST_CREDENTIALS["client_secret"], TEST_CREDENTIALS["refresh_token"], *emulator.store.tokens):
        assert secret not in text


def test_calls_cli_lists_failed_calls_and_shows_one_with_its_bodies(source, client, emulator, capsys):
    engine, url = source
    package = _refused_package(engine)
    R.add_customer(engine)
    report = run_sync(engine, client, FAST, entities=["plans", "customers"])  # bodies of failed calls only
    [failure] = report.entities["plans"].failures
    [created] = recent_calls(engine, entity="customers")
    assert created["status"] == 201 and created["request_body"] is None and created["response_body"] is None
    [refused] = recent_calls(engine, call_id=failure.call_id)
    assert refused["request_body"]["plan_code"] and refused["response_body"]["code"] == 2006

    assert calls_cmd.main(["--database-url", url, "--failed"]) == 0
    out = capsys.readouterr().out
    assert str(failure.call_id) in out and "POST /plans" in out and "2006" in out
    assert calls_cmd.main(["--database-url", url, "--id", str(failure.call_id)]) == 0
    out = capsys.readouterr().out
    assert "request:" in out and '"plan_code"' in out and "response:" in out
    assert calls_cmd.main(["--database-url", url, "--entity", "plans", "--row", package, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {c["entity_id"] for c in listed} == {package}
    assert calls_cmd.main(["--database-url", url, "--since", "1h", "--failed", "--json"]) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == [failure.call_id]
    with pytest.raises(SystemExit):
        calls_cmd.main(["--database-url", url, "--row", package])  # --row needs --entity


def test_the_ring_keeps_the_last_n_calls_and_zero_keeps_none(source, client, emulator):
    engine, _ = source
    package = R.add_package(engine)
    for n in range(12):
        R.add_service(engine, R.add_customer(engine, "Row", f"N{n}"), package)
    run_sync(engine, client, dataclasses.replace(FAST, inspector_calls=10))
    kept = recent_calls(engine, limit=100)
    total = emulator.stats()["requests"]
    assert total > 25 and 10 <= len(kept) <= 11, (total, len(kept))
    assert kept == sorted(kept, key=lambda c: c["id"], reverse=True)
    assert kept[0]["entity_type"] == "subscriptions"  # the newest calls are the ones kept

    with engine.begin() as conn:
        conn.execute(T.zoho_api_calls.delete())
        conn.execute(T.customers.update().values(phone="+27 82 000 0000", updated_at=R.ts(engine, R.now())))
    run_sync(engine, client, dataclasses.replace(FAST, inspector_calls=0))
    assert recent_calls(engine) == [] and client.observer is None


def test_the_materialization_failures_table_names_the_inspector_entry(sqlite_url, zoho_config, emulator):
    from zoho_pipeline.defs.assets import zoho_plans
    from zoho_pipeline_tests.support.dagster import make_resources, materialize

    engine = R.make_source(sqlite_url)
    package = _refused_package(engine)
    result = materialize([zoho_plans], make_resources(sqlite_url, zoho_config))
    [mat] = result.asset_materializations_for_node("zoho_plans")
    [failure] = mat.metadata["failures"].records
    assert failure.data["entity_id"] == package and failure.data["error_code"] == "2006"
    call_id = int(failure.data["api_call"].removeprefix("zoho-pipeline calls --id "))
    [call] = recent_calls(engine, call_id=call_id)
    assert (call["entity_id"], call["status"], call["zoho_code"]) == (package, 400, 2006)
    engine.dispose()


# --- the inspector never costs a chunk its outcomes ---------------------------------------------------------------


def _claimed_customers(db_url, n: int):
    from zoho_pipeline.source.database import make_engine, utcnow
    from zoho_pipeline.sync import claims, due_rows
    from zoho_pipeline.sync.entities import SPECS
    from zoho_pipeline_tests.support.rows import customers_database

    customers_database(db_url, n)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        due = due_rows.find_due(
            conn, SPECS["customers"], mode="due", now=utcnow(), run_id="run-n", stale_after_s=120, limit=50
        )
    return engine, claims.claim_rows(engine, SPECS["customers"], due, "run-n")


def _exchange(path="/customers", status=400, response=b'{"code": 1001, "message": "refused"}', method="POST"):
    from zoho_pipeline.zoho.exchange import Exchange

    return Exchange(1_764_680_000.5, method, path, None, b'{"display_name": "A"}', status, response, 12)


def test_a_nul_from_zoho_is_kept_as_u_fffd_and_the_chunks_outcomes_are_written(db_url):
    """Postgres' text cannot hold a NUL: ZOHO's message or a body with one made the chunk's write fail, and with it
    the chunk's outcomes (left `syncing`, in doubt). Now the NUL is stored as U+FFFD, everywhere it can come from."""
    from zoho_pipeline.sync import claims
    from zoho_pipeline.sync.entities import SPECS

    engine, [refused, created] = _claimed_customers(db_url, 2)
    try:
        recorder = inspector.CallRecorder("run-n", 100)
        outcomes = [
            claims.failed(
                refused,
                action="create",
                error_code="10\x0001",
                error="ZOHO: the name 'A\x00B' is not valid",
                retry_at=None,
                count_attempt=True,
                max_attempts=5,
                in_doubt=False,
                zoho_id=None,
                api_calls=1,
                duration_ms=3,
            ),
            claims.succeeded(created, zoho_id="Z1", payload_hash="h" * 16, action="create", payload='{"a": 1}'),
        ]
        for o, x in zip(outcomes, [_exchange(response=b'{"code": 1001, "message": "A\x00B"}'), _exchange()]):
            o.calls = recorder.start("customers", o.row["id"])
            recorder.observe(x)
            recorder.stop()
        outcomes[1].calls[0].path = "/customers/\x00"  # a text the database would refuse anywhere else too

        claims.record(engine, SPECS["customers"], outcomes, run_id="run-n", inspector=recorder)

        c = SPECS["customers"].table.c
        with engine.connect() as conn:
            state = dict(conn.execute(sa.select(c.id, c.zoho_sync_status)).all())
            [error] = conn.execute(sa.select(c.zoho_last_sync_error).where(c.id == refused["id"])).scalars()
            logged = set(conn.execute(sa.select(T.zoho_sync_logs.c.error)).scalars())
        assert state == {refused["id"]: "failed", created["id"]: "synced"}
        assert error == "ZOHO: the name 'A\ufffdB' is not valid" and error in logged
        [body] = recent_calls(engine, call_id=outcomes[0].calls.last_id)
        assert body["response_body"] == {"code": 1001, "message": "A\ufffdB"}
        [odd] = recent_calls(engine, call_id=outcomes[1].calls.last_id)
        assert odd["path"] == "/customers/\ufffd"
    finally:
        engine.dispose()


def test_an_inspector_row_the_database_refuses_loses_only_the_calls(db_url, caplog):
    """Whatever the database refuses in the inspector's insert (here a NOT NULL column left empty) is rolled back
    alone (Postgres: a savepoint) and logged; the chunk's outcomes, in the same transaction, are written."""
    from zoho_pipeline.sync import claims
    from zoho_pipeline.sync.entities import SPECS

    engine, [row] = _claimed_customers(db_url, 1)
    try:
        recorder = inspector.CallRecorder("run-n", 100)
        outcome = claims.succeeded(row, zoho_id="Z1", payload_hash="h" * 16, action="create", payload='{"a": 1}')
        outcome.calls = recorder.start("customers", row["id"])
        recorder.observe(_exchange(method=None))
        recorder.stop()

        claims.record(engine, SPECS["customers"], [outcome], run_id="run-n", inspector=recorder)

        c = SPECS["customers"].table.c
        with engine.connect() as conn:
            assert conn.execute(sa.select(c.zoho_sync_status, c.zoho_billing_customer_id)).one() == ("synced", "Z1")
            assert conn.execute(sa.select(sa.func.count()).select_from(T.zoho_sync_logs)).scalar_one() == 1
        assert recent_calls(engine) == []
        assert "could not keep 1 call(s); the outcomes are kept" in caplog.text
    finally:
        engine.dispose()


def test_many_small_runs_keep_the_ring_at_n(source, client, emulator):
    """A run prunes the ring every N/10 calls it writes; one that made fewer (a sensor's run of one new customer)
    never pruned, so the table grew by every small run. Now each run that wrote calls prunes at its end."""
    engine, _ = source
    keep = dataclasses.replace(FAST, inspector_calls=20)  # a prune every 2 calls in a run: one call never reached it
    for n in range(26):
        R.add_customer(engine, "Small", f"Run{n}")
        report = run_sync(engine, client, keep, entities=["customers"])
        assert report.api_calls == 1 and report.entities["customers"].created == 1
    with engine.connect() as conn:
        kept = conn.execute(sa.select(T.zoho_api_calls.c.entity_id).order_by(T.zoho_api_calls.c.id)).scalars().all()
    assert len(kept) == 20, len(kept)
    with engine.connect() as conn:
        newest = conn.execute(sa.select(T.customers.c.id).order_by(T.customers.c.created_at, T.customers.c.id)).all()
    assert kept == [str(r.id) for r in newest][-20:]  # the newest calls are the ones kept


def test_a_zoho_code_under_http_200_is_a_failed_call_whose_bodies_are_kept(source):
    """Failed as `calls --failed` says (no answer, HTTP >= 400, or a ZOHO code other than 0): its bodies are kept."""
    engine, _ = source
    recorder = inspector.CallRecorder("run-n", 100)
    for body in (b'{"code": 4, "message": "Invalid value"}', b'{"code": 0, "message": "success"}'):
        recorder.observe(_exchange(status=200, response=body))
    with engine.begin() as conn:
        recorder.write(conn, [])  # calls outside a row go with the next write
    kept = {c["zoho_code"]: c["response_body"] for c in recent_calls(engine)}
    assert kept == {4: {"code": 4, "message": "Invalid value"}, 0: None}
