"""Alembic environment for the pipeline's own migrations on the provider's database.

Run programmatically by `zoho_pipeline.source.migrate` (no alembic.ini): the Config carries either an open
`connection` or a `url` in `config.attributes`. The version table is `zoho_pipeline_alembic_version`, so the
provider's own alembic (if any) and ours never meet. Each revision runs in its own transaction; on Postgres a
`lock_timeout` keeps an ALTER from queueing behind a long business query and blocking the provider's writes.
"""

from __future__ import annotations

import re

from alembic import context

from zoho_pipeline.source import tables

VERSION_TABLE = "zoho_pipeline_alembic_version"


def _include_object(obj, name, type_, reflected, compare_to):
    """Autogenerate only ever looks at our objects: zoho_* tables, zoho_* columns and their indexes."""
    if type_ == "table":
        return bool(name) and name.startswith("zoho_")
    if type_ == "column":
        return bool(name) and name.startswith("zoho_")
    if type_ in ("index", "unique_constraint"):
        return bool(name) and ("zoho" in name)
    return False


def _run(connection) -> None:
    if connection.dialect.name == "postgresql":
        lock_timeout = context.config.attributes.get("lock_timeout")
        if lock_timeout:
            if not re.fullmatch(r"\d+\s*(ms|s|min)?", str(lock_timeout)):
                raise ValueError(f"lock_timeout must look like 10s, 500ms or 2min, not {lock_timeout!r}")
            connection.exec_driver_sql(f"SET lock_timeout = '{lock_timeout}'")
            connection.commit()
    context.configure(
        connection=connection,
        target_metadata=tables.metadata,
        include_object=_include_object,
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
        render_as_batch=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from zoho_pipeline.source.database import make_engine

    engine = make_engine(context.config.attributes["url"])
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run `zoho-pipeline db upgrade` against the database")
run_migrations_online()
