"""A chunk's UPDATE as one statement on Postgres: the engine's per-row UPDATE (bind parameters `b_*`, one set per
row) joined to the chunk's values, `UPDATE t SET … FROM unnest(<one array per parameter>) AS v WHERE …`.

psycopg2's executemany sends a chunk's 32 UPDATEs in one round trip, but Postgres parses and plans each of them,
and the driver reports no count per row, so a claim had to ask again which rows it got (a second round trip).
Measured on a chunk's claim and outcome (customers, 3 200 rows): the two executemany UPDATEs and that SELECT were
the largest share of Postgres' CPU per synced row. One statement is one plan and one round trip, and its RETURNING
says which compare-and-sets matched. One array per parameter (not a VALUES list of the chunk's rows) keeps the
statement the same for any chunk size, so SQLAlchemy compiles it once. SQLite keeps executemany: it runs in process, with exact row counts.
"""

from __future__ import annotations

import functools

from sqlalchemy import ARRAY, bindparam, column, func
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import NullType


def execute_joined(conn, statement, params: list[dict], returning=None):
    """Execute `statement` (an UPDATE whose per-row values are typed bind parameters) for every row of `params` in
    one statement (Postgres); `returning`: a column the result then holds for each row updated."""
    keys = tuple(sorted(params[0]))
    joined, used = _joined(statement, keys, returning)
    return conn.execute(joined, {f"a_{key}": [p[key] for p in params] for key in used})


@functools.lru_cache(maxsize=64)
def _joined(statement, keys: tuple[str, ...], returning):
    """(the joined statement, the parameters it reads), built once per statement. Its other bind parameters (its
    constants) stay as they are; a key the statement does not use is left out."""
    types = {}

    def collect(bind):
        if bind.key not in keys:
            return
        if isinstance(bind.type, NullType):
            raise TypeError(f"bind parameter {bind.key} needs a type to be read from an array")
        types[bind.key] = bind.type

    visitors.traverse(statement, {}, {"bindparam": collect})
    used = sorted(types)
    arrays = [bindparam(f"a_{k}", type_=ARRAY(types[k])) for k in used]  # rendered with a cast, e.g. ::UUID[]
    rows = func.unnest(*arrays).table_valued(*[column(k, types[k]) for k in used]).render_derived(name="v")

    def replace(element, **_kw):
        if isinstance(element, BindParameter) and element.key in types:
            return rows.c[element.key]
        return None

    joined = visitors.replacement_traverse(statement, {}, replace)
    return (joined.returning(returning) if returning is not None else joined), tuple(used)
