"""Issue 12 item 6, the classification and the backoff: which database errors are retried inside the run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from zoho_pipeline.sync import transient


class _PgError(Exception):
    def __init__(self, message, pgcode=None):
        super().__init__(message)
        self.pgcode = pgcode


def _operational(message, pgcode=None, invalidated=False):
    return sa.exc.OperationalError("SELECT 1", {}, _PgError(message, pgcode), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        _operational("terminating connection due to administrator command", "57P01"),
        _operational("server closed the connection unexpectedly"),
        _operational('database "x" is not currently accepting connections'),
        _operational("anything", invalidated=True),
        _operational("database is locked"),
        _operational("could not serialize access", "40001"),
    ],
)
def test_connection_losses_and_passing_locks_are_transient(error):
    assert transient.is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        sa.exc.IntegrityError("INSERT", {}, _PgError("duplicate key value", "23505")),
        sa.exc.ProgrammingError("SELECT", {}, _PgError('relation "x" does not exist', "42P01")),
        _operational("no such table: customers"),
        ValueError("not a database error"),
    ],
)
def test_query_and_data_errors_are_not(error):
    assert not transient.is_transient(error)


def test_a_transient_error_is_retried_with_backoff_and_a_permanent_one_raised_at_once():
    waits, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _operational("server closed the connection unexpectedly")
        return "done"

    assert transient.retrying(flaky, "test", sleep=waits.append) == "done"
    assert len(calls) == 3 and len(waits) == 2 and waits[1] > waits[0]

    def broken():
        raise sa.exc.IntegrityError("INSERT", {}, _PgError("duplicate key value", "23505"))

    with pytest.raises(sa.exc.IntegrityError):
        transient.retrying(broken, "test", sleep=waits.append)
    assert len(waits) == 2

    def down():
        raise _operational("connection refused")

    with pytest.raises(sa.exc.OperationalError):
        transient.retrying(down, "test", attempts=4, sleep=waits.append)
    assert len(waits) == 2 + 3
