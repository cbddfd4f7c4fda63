"""The demo's job (only with DAGSTER_DEPLOYMENT=demo, which `make dev` sets): zoho_demo_month_job plays one month of
the provider's business on the demo database and moves the emulator's clock to its billing day
(zoho_pipeline.source.demo_clock). It calls no ZOHO API, so it is no sync run: the source sensor then starts those."""

import dagster as dg
from pydantic import Field

from zoho_pipeline.defs.resources import SourceDatabaseResource, ZohoBillingResource
from zoho_pipeline.defs.switches import is_demo


class DemoMonthConfig(dg.Config):
    seed: int = Field(default=42, description="same database and seed, same month")


@dg.op(description="One month of business in the source, and ZOHO's clock moved to the billing day.")
def play_demo_month(
    context: dg.OpExecutionContext, config: DemoMonthConfig, source: SourceDatabaseResource, zoho: ZohoBillingResource
) -> dg.Output[dict]:
    from zoho_pipeline.source.demo_clock import play_demo_month as play

    played, zoho_now = play(source.engine(), zoho.accounts_url, seed=config.seed)
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
