"""The demo's job (only with DAGSTER_DEPLOYMENT=demo, which `make dev` sets): zoho_demo_month_job plays one month of
the provider's business on the demo database in a provider's order (zoho_pipeline.source.demo_clock): the month's
account changes are synced by the op itself (the sync engine, as an asset calls it) while ZOHO's clock stands on
the eve of the billing day, then the clock moves to the billing day; the billing run and the payments are left to
the source sensor's sync runs."""

import dagster as dg
from pydantic import Field

from zoho_pipeline.defs.resources import SourceDatabaseResource, SyncEngineResource, ZohoBillingResource
from zoho_pipeline.defs.switches import is_demo


class DemoMonthConfig(dg.Config):
    seed: int = Field(default=42, description="same database and seed, same month")


@dg.op(description="One month of business in the source, its account changes synced, ZOHO's clock to the billing day.")
def play_demo_month(
    context: dg.OpExecutionContext,
    config: DemoMonthConfig,
    source: SourceDatabaseResource,
    zoho: ZohoBillingResource,
    engine: SyncEngineResource,
) -> dg.Output[dict]:
    from zoho_pipeline.source.demo_clock import play_demo_month as play
    from zoho_pipeline.sync.engine import run_sync

    db = source.engine()

    def sync_changes() -> None:
        with zoho.client(db) as client:
            report = run_sync(db, client, engine.settings(), run_id=f"{context.run_id}:demo_month_changes")
        context.log.info(f"synced the month's account changes before ZOHO's renewal: {report.api_calls} calls")

    played, zoho_now = play(db, zoho.accounts_url, seed=config.seed, sync_changes=sync_changes)
    summary = played.as_dict()
    context.log.info(f"played {played.month:%B %Y}; ZOHO's clock now {zoho_now.isoformat()}: {summary}")
    metadata = {k: v for k, v in summary.items() if isinstance(v, int)}
    metadata.update(month=played.month.isoformat(), zoho_clock=zoho_now.isoformat())
    return dg.Output(summary, metadata=metadata)


@dg.job(
    executor_def=dg.in_process_executor,
    tags={"zoho_trigger": "demo_month"},
    description="Demo only: play one month of the provider's business (new customers, upgrades, cancellations, "
    "closures, payments on time and late, refunds, bounces, the billing run) and move the emulator's clock to the "
    "billing day, so ZOHO renews and raises its invoices. The source sensor then syncs the changes.",
)
def zoho_demo_month_job():
    play_demo_month()


def demo_jobs() -> list:
    """The demo's jobs, present only in the demo deployment (never against a real ZOHO)."""
    return [zoho_demo_month_job] if is_demo() else []
