"""`zoho-pipeline db ...`: every sub-command, its output and its exit codes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from zoho_pipeline.cli import db as db_cmd
from zoho_pipeline.cli import main as cli
from zoho_pipeline.source import business, database, migrate


def test_full_cycle(db_url, capsys, monkeypatch):
    monkeypatch.delenv("SOURCE_DATABASE_URL", raising=False)
    url = ["--database-url", db_url]

    assert db_cmd.main(["current", *url]) == 0
    assert "none" in capsys.readouterr().out

    assert db_cmd.main(["create-demo", *url, "--customers", "30", "--seed", "9"]) == 0
    out = capsys.readouterr().out
    assert "customers" in out and " 30" in out and migrate.head() in out and "invalid_email" in out
    assert database.business_row_counts(db_url)["customers"] == 30

    # a second demo into tables that hold rows is refused, nothing changes
    assert db_cmd.main(["create-demo", *url, "--customers", "10"]) == 2
    assert "--reset" in capsys.readouterr().err
    assert database.business_row_counts(db_url)["customers"] == 30

    assert db_cmd.main(["create-demo", *url, "--customers", "12", "--reset"]) == 0
    capsys.readouterr()
    assert database.business_row_counts(db_url)["customers"] == 12

    assert db_cmd.main(["upgrade", *url]) == 0
    assert "already at" in capsys.readouterr().out
    assert db_cmd.main(["current", *url]) == 0
    assert capsys.readouterr().out.strip() == f"{migrate.head()} (head)"

    assert db_cmd.main(["downgrade", *url, "--revision", "0001"]) == 0
    assert "-> 0001" in capsys.readouterr().out
    assert db_cmd.main(["current", *url]) == 0
    assert "upgrade" in capsys.readouterr().out

    assert db_cmd.main(["downgrade", *url]) == 0
    assert "-> base" in capsys.readouterr().out
    assert migrate.current(db_url) is None
    assert database.business_row_counts(db_url)["customers"] == 12

    assert db_cmd.main(["upgrade", *url]) == 0
    assert f"migrated base -> {migrate.head()} (head)" in capsys.readouterr().out


def test_database_url_from_the_environment(sqlite_url, capsys, monkeypatch):
    monkeypatch.setenv("SOURCE_DATABASE_URL", sqlite_url)
    assert cli.main(["db", "create-demo", "--customers", "3"]) == 0
    capsys.readouterr()
    assert cli.main(["db", "current"]) == 0
    assert "(head)" in capsys.readouterr().out


def test_no_database_url_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("SOURCE_DATABASE_URL", raising=False)
    monkeypatch.setattr("zoho_pipeline.cli.main._load_dotenv", lambda: None)
    for command in (["upgrade"], ["downgrade"], ["current"], ["create-demo"]):
        assert db_cmd.main(command) == 2
        assert "SOURCE_DATABASE_URL" in capsys.readouterr().err
    assert db_cmd.main(["current", "--database-url", "not a url"]) == 2


def test_upgrade_refuses_without_provider_tables(sqlite_url, capsys):
    assert db_cmd.main(["upgrade", "--database-url", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert "customers" in err and "create-demo" in err
    engine = database.make_engine(sqlite_url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_create_demo_into_empty_existing_business_tables(sqlite_url, capsys):
    engine = database.make_engine(sqlite_url)
    business.create_business_tables(engine)
    engine.dispose()
    assert db_cmd.main(["create-demo", "--database-url", sqlite_url, "--customers", "4"]) == 0
    assert database.business_row_counts(sqlite_url)["customers"] == 4


@pytest.mark.parametrize("argv", [[], ["bogus"], ["create-demo", "--customers", "many"]])
def test_usage_errors(argv, capsys):
    assert db_cmd.main(argv) == 2


def test_help(capsys):
    assert db_cmd.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("upgrade", "downgrade", "current", "create-demo"):
        assert name in out
    assert db_cmd.main(["create-demo", "--help"]) == 0
    assert "--reset" in capsys.readouterr().out


def test_upgrade_lock_timeout_flag(pg_url, capsys):
    engine = database.make_engine(pg_url)
    business.create_business_tables(engine)
    engine.dispose()
    holder = sa.create_engine(pg_url)
    with holder.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE customers IN ACCESS SHARE MODE")
        assert db_cmd.main(["upgrade", "--database-url", pg_url, "--lock-timeout", "200ms"]) == 1
        assert "run it again later" in capsys.readouterr().err
        conn.rollback()
    holder.dispose()
    assert db_cmd.main(["upgrade", "--database-url", pg_url, "--lock-timeout", "soon"]) == 2
    assert db_cmd.main(["upgrade", "--database-url", pg_url]) == 0
