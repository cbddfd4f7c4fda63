"""`zoho-pipeline demo`: time in the demo.

    zoho-pipeline demo month [--seed N] [--sync] [--json]   play one month of business, move ZOHO's clock on
    zoho-pipeline demo figures [--json]                     the figures finance asks for (source + ZOHO)

`month` plays the month after the source's newest billing run in a provider's order: ZOHO's clock to the eve of
the billing day; the month's account changes (new customers, upgrades, cancellations, closures) written and synced
here (a sync run like `zoho-pipeline sync`'s), so they reach ZOHO before its renewal; the clock to the billing day
(ZOHO renews its subscriptions and raises their invoices); then the payments (on time and late, refunds, bounces)
and the billing run on the 1st. Under `make dev` the source sensor syncs those on its own; `--sync` runs that
sync here at once and prints the figures. The emulator is the one
at ZOHO_ACCOUNTS_URL (or --emulator-url). Exit 0 done, 1 the sync left rows failed (or the changes could not be synced before the renewal), 2 a usage error or no emulator.
"""

from __future__ import annotations

import argparse
import json
import sys

from zoho_pipeline.cli.common import add_database_argument, open_source
from zoho_pipeline.env import text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoho-pipeline demo", description="Time in the demo (emulator only).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    month = sub.add_parser("month", help="play one month of business and move ZOHO's clock to its billing day")
    month.add_argument("--seed", type=int, default=42, help="same database and seed, same month (default 42)")
    month.add_argument("--emulator-url", default=None, help="the emulator's root URL (default: $ZOHO_ACCOUNTS_URL)")
    month.add_argument("--sync", action="store_true", help="sync now (a Dagster run) and print the figures")
    month.add_argument("--json", action="store_true", help="print what the month changed as JSON")
    figures = sub.add_parser("figures", help="payments applied vs credit, paid-status and balance differences")
    figures.add_argument("--json", action="store_true")
    for p in (month, figures):
        add_database_argument(p)
    return parser


def print_figures(engine, as_json: bool = False) -> None:
    """The finance figures from the source and ZOHO (the environment's ZOHO settings)."""
    from zoho_pipeline.monitor.finance import finance_figures
    from zoho_pipeline.sync.stores import zoho_client
    from zoho_pipeline.zoho.config import ZohoConfig

    with zoho_client(ZohoConfig.from_env(), engine) as client:
        figures = finance_figures(engine, client)
    if as_json:
        print(json.dumps(figures.as_dict(), indent=2))
    else:
        print("\nFinance figures")
        print("\n".join(f"  {line}" for line in figures.lines()))


def sync_account_changes(quiet: bool) -> None:
    """Sync what is due now (the month's account changes) as `zoho-pipeline sync` does: a Dagster run in the
    instance's history. A failed row (the demo's deliberately bad ones) does not stop the month."""
    from zoho_pipeline.cli import sync as sync_cmd
    from zoho_pipeline.sync.settings import ENTITY_ORDER

    instance, _note = sync_cmd.instance_for_cli()
    report, errors, _checks = sync_cmd.collect(sync_cmd.run_job(list(ENTITY_ORDER), instance=instance))
    if errors:
        raise RuntimeError(f"the sync of the month's account changes failed: {'; '.join(errors)}")
    if not quiet:
        print(f"Synced the month's account changes before ZOHO's renewal ({report.api_calls} ZOHO calls)")


def _month(args, engine) -> int:
    from zoho_pipeline.source.demo_clock import CaughtUp, ChangesNotSynced, ClockError, play_demo_month

    url = args.emulator_url or text("ZOHO_ACCOUNTS_URL")
    if not url:
        print("zoho-pipeline demo month: no emulator: set ZOHO_ACCOUNTS_URL or pass --emulator-url", file=sys.stderr)
        return 2
    try:
        played, zoho_now = play_demo_month(
            engine, url, seed=args.seed, sync_changes=lambda: sync_account_changes(quiet=args.json)
        )
    except ChangesNotSynced as exc:
        print(f"zoho-pipeline demo month: {exc}", file=sys.stderr)
        return 1
    except (ClockError, CaughtUp) as exc:
        print(f"zoho-pipeline demo month: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**played.as_dict(), "zoho_clock": zoho_now.isoformat()}, indent=2))
    else:
        d = played
        print(
            f"Played {d.month:%B %Y} in the source (business from {d.period_start:%Y-%m-%d %H:%M} to the billing "
            f"run on {d.month:%Y-%m-%d}); ZOHO's clock is now {zoho_now:%Y-%m-%d %H:%M} UTC\n"
            f"  new customers {d.new_customers}, upgrades {d.upgrades}, cancellations {d.cancellations}, "
            f"closures {d.closures}\n"
            f"  invoices: {d.recurring_invoices} recurring (the billing run), {d.one_off_invoices} one-off\n"
            f"  payments: {d.payments_on_time} on time, {d.payments_late} late, {d.left_unpaid} invoices left unpaid, "
            f"{d.refunds} refunded, {d.bounces} bounced"
        )
    if not args.sync:
        if not args.json:
            print("The source sensor syncs the changes within a minute (make dev); or run `zoho-pipeline sync`.")
        return 0
    from zoho_pipeline.cli import sync as sync_cmd

    code = sync_cmd.main(["--json"] if args.json else [])
    print_figures(engine, as_json=args.json)
    return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    engine = open_source(args)
    if engine is None:
        return 2
    try:
        if args.command == "month":
            return _month(args, engine)
        print_figures(engine, as_json=args.json)
        return 0
    finally:
        engine.dispose()
