"""zoho_retry_job, the data team's retry from the UI: rows that failed (an email ZOHO refuses) are fixed in the
source, then the job (config: entity + all_failed, or entity + ids) requeues and syncs them; ZOHO has them after.
On SQLite and on Postgres (source and Dagster's own storage)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import dagster as dg
import pytest
import sqlalchemy as sa

from zoho_pipeline.defs.assets import ALL_ASSETS
from zoho_pipeline.source import tables as T
from zoho_pipeline_tests.support.dagster import BACKENDS, dagster_instance, source_url
from zoho_pipeline_tests.support.dagster import demo_db, make_resources, materialize

C = T.customers.c


def _add_customers(url: str, n: int, email) -> list[str]:
    engine = sa.create_engine(url)
    now = datetime.now(timezone.utc)
    ids = []
    with engine.begin() as conn:
        for i in range(n):
            cid = str(uuid.uuid4())
            conn.execute(T.customers.insert().values(
                id=cid, email=email(cid), first_name="Retry", last_name=f"Case{i}", account_type="residential",
                country="ZA", status="active", created_at=now, updated_at=now))
            ids.append(cid)
    engine.dispose()
    return ids


def _rows(url: str, ids) -> dict[str, sa.Row]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(C.id, C.email, C.zoho_sync_status, C.zoho_billing_customer_id)
                            .where(C.id.in_(ids))).all()
    engine.dispose()
    return {str(r.id): r for r in rows}


def _fix_emails(url: str, ids) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for cid in ids:
            conn.execute(T.customers.update().where(C.id == cid).values(
                email=f"fixed-{cid[:8]}@example.co.za", updated_at=datetime.now(timezone.utc)))
    engine.dispose()


def _retry(instance, resources, **config):
    from zoho_pipeline.definitions import defs

    job = defs.resolve_job_def("zoho_retry_job")
    return job.execute_in_process(run_config={"ops": {"zoho_retry_op": {"config": config}}}, instance=instance,
                                  resources=resources, raise_on_error=False)


def _in_zoho(zoho_config, zoho_id: str) -> dict:
    from zoho_pipeline.zoho.client import ZohoClient

    with ZohoClient(zoho_config) as client:
        return client.get(f"/customers/{zoho_id}")["customer"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_job_all_failed_and_by_ids(request, backend, emulator, zoho_config):
    url = demo_db(source_url(backend, request), customers=4)
    resources = make_resources(url, zoho_config)
    bad = _add_customers(url, 3, lambda cid: f"broken-{cid[:8]}-at-example")  # ZOHO refuses these
    with dagster_instance(backend, request) as instance:
        assert materialize([ALL_ASSETS[1]], resources, instance=instance).success
        before = _rows(url, bad)
        assert all(r.zoho_sync_status in ("failed", "retrying") or r.zoho_billing_customer_id is None
                   for r in before.values())
        assert all(r.zoho_billing_customer_id is None for r in before.values())

        _fix_emails(url, bad)
        # one row by id: only that one syncs
        by_id = _retry(instance, resources, entity="customers", ids=[bad[0]])
        assert by_id.success
        assert by_id.dagster_run.tags.get("zoho_sync") == "1"
        after = _rows(url, bad)
        assert after[bad[0]].zoho_sync_status == "synced" and after[bad[0]].zoho_billing_customer_id
        assert all(after[i].zoho_billing_customer_id is None for i in bad[1:])
        mats = [e.event_specific_data.materialization for e in by_id.get_asset_materialization_events()]
        assert [m.asset_key for m in mats] == [dg.AssetKey("zoho_customers")]

        # the rest: every failed customer
        everything = _retry(instance, resources, entity="customers", all_failed=True)
        assert everything.success
        after = _rows(url, bad)
        for cid in bad:
            assert after[cid].zoho_sync_status == "synced", after[cid]
            customer = _in_zoho(zoho_config, after[cid].zoho_billing_customer_id)
            assert customer["email"] == f"fixed-{cid[:8]}@example.co.za"


def test_retry_job_refuses_bad_config(sqlite_url, emulator, zoho_config):
    resources = make_resources(demo_db(sqlite_url, customers=2), zoho_config)
    with dagster_instance("sqlite", request=None) as instance:
        nothing = _retry(instance, resources, entity="customers")
        assert not nothing.success
        failure = next(e for e in nothing.all_events if e.is_step_failure)
        assert "all_failed" in failure.step_failure_data.error.message
        unknown = _retry(instance, resources, entity="customer", all_failed=True)
        assert not unknown.success
