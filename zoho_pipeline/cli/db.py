"""`zoho-pipeline db`: the source database's migrations and demo data.

    zoho-pipeline db upgrade                     add the pipeline's columns and tables (idempotent)
    zoho-pipeline db downgrade [--revision R]    remove them again (default: everything, business data untouched)
    zoho-pipeline db current                     the revision the database is at
    zoho-pipeline db create-demo [--customers N] [--seed S] [--reset]
    zoho-pipeline db prune [--keep-calls N] [--logs-older-than 180d]

Each takes --database-url (default: $SOURCE_DATABASE_URL). Exit 0 on success, 2 on a usage error or a refusal.
"""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa

from zoho_pipeline.cli.common import add_database_argument, source_url
from zoho_pipeline.source import business, migrate
from zoho_pipeline.source.database import MissingProviderTables, business_row_counts, shown_url


class _Refusal(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoho-pipeline db",
        description="The source database: the pipeline's migrations (which only add zoho_* columns and tables) "
        "and a demo database.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        add_database_argument(p)
        return p

    lock_help = (
        "Postgres: give up when a lock is not granted within this time (e.g. 10s, 500ms, 0 = wait "
        "forever) rather than queue the provider's writes behind a long transaction (default 10s)"
    )
    p = add("upgrade", "add the pipeline's zoho_* columns, indexes and tables to the provider's database (idempotent)")
    p.add_argument("--lock-timeout", default="10s", help=lock_help)
    p = add("downgrade", "remove what `upgrade` added; business columns and rows are never touched")
    p.add_argument("--revision", default="base", help="revision to go down to (default: base = remove everything)")
    p.add_argument("--lock-timeout", default="10s", help=lock_help)
    add("current", "print the pipeline's migration revision in the database (and whether it is the head)")
    p = add("create-demo", "create the provider's tables, fill them with seeded demo data, then upgrade")
    p.add_argument("--customers", type=int, default=500, help="number of customers (default 500)")
    p.add_argument("--seed", type=int, default=42, help="random seed: same seed, same data (default 42)")
    p.add_argument(
        "--reset",
        action="store_true",
        help="drop the demo tables (business and pipeline) first; without it, a database whose business "
        "tables already hold rows is refused",
    )
    p = add("prune", "keep the pipeline's own tables bounded: payloads of deleted rows, old API calls, old attempts")
    p.add_argument(
        "--keep-calls",
        type=int,
        default=None,
        help="API calls the inspector keeps (default ZOHO_INSPECTOR_CALLS; 0 empties it)",
    )
    p.add_argument(
        "--logs-older-than",
        default=None,
        metavar="AGE",
        help="also delete sync attempts older than this (e.g. 180d; default: keep the whole attempt log)",
    )
    return parser


def _prune(args, url: str) -> int:
    from zoho_pipeline.monitor.history import parse_since
    from zoho_pipeline.source.database import make_engine
    from zoho_pipeline.sync.prune import prune
    from zoho_pipeline.sync.settings import SyncSettings

    keep = args.keep_calls if args.keep_calls is not None else SyncSettings.from_env().inspector_calls
    if keep < 0:
        raise _Refusal("--keep-calls must be 0 or more")
    logs_before = parse_since(args.logs_older_than) if args.logs_older_than else None
    engine = make_engine(url)
    try:
        deleted = prune(engine, keep_calls=keep, logs_before=logs_before)
    finally:
        engine.dispose()
    payloads = sum(n for k, n in deleted.items() if k.startswith("payloads:"))
    print(f"pruned on {shown_url(url)}:")
    print(f"  accepted payloads of deleted rows  {payloads:>8}")
    print(f"  API calls beyond the newest {keep:<6} {deleted['api_calls']:>8}")
    if "sync_logs" in deleted:
        print(f"  attempts older than {args.logs_older_than:<13} {deleted['sync_logs']:>8}")
    return 0


def _upgrade(args, url: str) -> int:
    before = migrate.current(url)
    reached = migrate.upgrade(url, lock_timeout=args.lock_timeout)
    if before == reached:
        print(f"already at {reached} (head) on {shown_url(url)}")
    else:
        head = " (head)" if reached == migrate.head() else ""
        print(f"migrated {before or 'base'} -> {reached}{head} on {shown_url(url)}")
    return 0


def _downgrade(args, url: str) -> int:
    before = migrate.current(url)
    if before is None:
        print(f"nothing to remove: the pipeline's migrations are not installed on {shown_url(url)}")
        return 0
    reached = migrate.downgrade(url, args.revision, lock_timeout=args.lock_timeout)
    print(f"downgraded {before} -> {reached or 'base'} on {shown_url(url)}")
    return 0


def _current(args, url: str) -> int:
    rev, head = migrate.current(url), migrate.head()
    if rev is None:
        print(f"none (not installed; head is {head})")
    elif rev == head:
        print(f"{rev} (head)")
    else:
        print(f"{rev} (head is {head}: run `zoho-pipeline db upgrade`)")
    return 0


def _create_demo(args, url: str) -> int:
    if args.customers < 0:
        raise _Refusal("--customers must be 0 or more")
    if args.reset:
        migrate.reset(url)
    else:
        full = {name: n for name, n in business_row_counts(url).items() if n}
        if full:
            listed = ", ".join(f"{name} ({n} rows)" for name, n in full.items())
            raise _Refusal(
                f"the business tables already hold data: {listed}. A demo is only loaded into empty "
                "tables; pass --reset to drop and recreate them (this deletes that data)"
            )
    counts = migrate.create_demo(url, customers=args.customers, seed=args.seed)
    print(f"demo database ready on {shown_url(url)} (seed {args.seed}), migrations at {counts['revision']}")
    for name in business.BUSINESS_TABLE_NAMES:
        print(f"  {name:<22} {counts[name]:>8}")
    bad = ", ".join(f"{kind} {n}" for kind, n in counts["bad_rows"].items())
    print(f"  deliberately bad rows: {bad or 'none'}")
    return 0


_COMMANDS = {
    "upgrade": _upgrade,
    "downgrade": _downgrade,
    "current": _current,
    "create-demo": _create_demo,
    "prune": _prune,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a usage error 2
        return int(exc.code or 0)
    try:
        return _COMMANDS[args.command](args, source_url(args))
    except (_Refusal, MissingProviderTables) as exc:
        print(f"zoho-pipeline db {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # no or a malformed database URL, a malformed --lock-timeout
        print(f"zoho-pipeline db {args.command}: {exc}", file=sys.stderr)
        return 2
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip()
        hint = (
            " (a long transaction holds the table: nothing was changed, run it again later)"
            if ("lock timeout" in reason)
            else ""
        )
        print(f"zoho-pipeline db {args.command}: database error: {reason}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
