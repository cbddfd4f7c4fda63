"""What every sub-command of `zoho-pipeline` shares: the --database-url argument, entity names as arguments, the
source engine, the ZOHO client from the environment, the row a --row names, and plain text tables."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import sqlalchemy as sa

from zoho_pipeline.env import text
from zoho_pipeline.monitor.queries import resolve_ids
from zoho_pipeline.source.database import make_engine
from zoho_pipeline.sync.entities import entity_name


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL of the source database (default: $SOURCE_DATABASE_URL)"
    )


def command_parser(name: str, description: str, **kw) -> argparse.ArgumentParser:
    """The parser of `zoho-pipeline <name>`, with the --database-url every operator command takes."""
    parser = argparse.ArgumentParser(prog=f"zoho-pipeline {name}", description=description, **kw)
    add_database_argument(parser)
    return parser


def entity_arg(value: str) -> str:
    """argparse type: an entity name, a singular or a table name → the canonical entity name; a usage error
    otherwise."""
    try:
        return entity_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def source_url(args) -> str:
    """The command's --database-url, else $SOURCE_DATABASE_URL; ValueError saying what is missing or malformed."""
    url = getattr(args, "database_url", None) or text("SOURCE_DATABASE_URL")
    if not url:
        raise ValueError("no database given: pass --database-url or set SOURCE_DATABASE_URL")
    try:
        sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"not a valid SQLAlchemy URL: {exc}") from None
    return url


def open_source(args) -> sa.Engine | None:
    """The source engine for a command's --database-url / $SOURCE_DATABASE_URL; None (reason printed) if unset."""
    try:
        return make_engine(source_url(args))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return None


def row_id(engine: sa.Engine, entity: str, row: str | None) -> str | None:
    """The source id of the row a --row names (its id, or email / invoice number / transaction id); what was typed
    when it names no row, so the logs and calls of an id no longer in the source are still found. None: no --row."""
    if not row:
        return None
    found, _missing = resolve_ids(engine, entity, [row])
    return found.get(row.strip(), row.strip())


def format_table(headers: list[str], rows: list[list[Any]], max_width: int = 70, numbers_right: bool = False) -> str:
    """A plain text table; long cells are cut with an ellipsis. `numbers_right`: every column but the first is
    right-aligned (tables of counts)."""

    def cell(v) -> str:
        s = "" if v is None else " ".join(str(v).split())
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]

    def line(vals) -> str:
        return "  ".join(
            v.rjust(w) if numbers_right and i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in body])
