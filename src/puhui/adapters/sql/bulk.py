"""Fast row transfer between Arrow tables and the database, inside the caller's transaction.

SQLite gets `executemany` on its own connection; PostgreSQL gets COPY. Both run on the DBAPI
connection under the SQLAlchemy connection, so they share its transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection

# A bound parameter `:name` (not the `::` of a PostgreSQL cast).
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def rows_of(table: pa.Table, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of some columns of an Arrow table, as tuples."""
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def insert_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append rows to a table (or a temporary table) in the current transaction."""
    if not rows:
        return
    names = ", ".join(columns)
    dbapi: Any = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
        dbapi.executemany(f"insert into {table} ({names}) values ({marks})", rows)
        return
    with dbapi.cursor() as cursor, cursor.copy(f"copy {table} ({names}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def execute(conn: Connection, sql: str, params: dict[str, Any]) -> tuple[list[Any], int]:
    """Run a statement on the DBAPI connection and return its rows (none for a statement that
    returns none) and its row count.

    For statements whose text changes with their size (a VALUES list of the chunk's keys):
    SQLAlchemy would parse each new text for its parameters and compile it, which costs more
    than a small chunk's whole lookup. Parameters are written `:name`; values are always bound,
    never interpolated.
    """
    dbapi: Any = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        cursor = dbapi.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount
    with dbapi.cursor() as cursor:
        cursor.execute(_NAMED.sub(r"%(\1)s", sql.replace("%", "%%")), params)
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount


def fetch_arrow(conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """Run a query (`execute`) and return its rows as an Arrow table of the given schema: large
    results skip SQLAlchemy's per-row processing."""
    result, _ = execute(conn, sql, params)
    columns: list[tuple[Any, ...]] = (
        list(zip(*result, strict=True)) if result else [() for _ in schema]
    )
    return pa.Table.from_arrays(
        [pa.array(list(col), type=field.type) for col, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


# Below this many rows any plan is fast: a table is first looked at once this many were written.
SMALL_TABLE = 1_000
# Rows this process wrote to a table since it last looked at its size, and the size it saw then,
# by (database, table).
_WRITTEN: dict[tuple[str, str], list[int]] = {}


def refresh_statistics(conn: Connection, table: str, written: int, key: str = "id") -> None:
    """Let PostgreSQL's planner see the `written` rows this transaction just wrote to `table`.

    With statistics taken when a table was small, PostgreSQL plans lookups as if it still were:
    a probe of 15 citizens' usage became a scan of every record of the month (3.8 ms with 1 800
    of them, and growing), and a bulk load's joins nested loops over sequential scans. Autovacuum
    catches up only a minute or more later. So the writes of this process are counted, and once
    they add up to the table's size at the last look (so only when it may have doubled: no query
    for most writes), its size (the highest `key`, an increasing id, bounds it) is compared with
    what the planner knows, and the statistics are refreshed if it more than doubled: a sample of
    a large table costs about half a second. SQLite plans from its indexes and needs nothing.
    """
    if conn.dialect.name != "postgresql":
        return
    seen = _WRITTEN.setdefault((str(conn.engine.url), table), [0, 0])
    seen[0] += written
    if seen[0] < max(SMALL_TABLE, seen[1]):
        return
    rows = conn.exec_driver_sql(f"select coalesce(max({key}), 0) from {table}").scalar_one()
    seen[:] = [0, int(rows)]
    known = conn.exec_driver_sql(
        "select reltuples from pg_class where oid = cast(%(t)s as regclass)", {"t": table}
    ).scalar_one()
    if known is not None and known >= 0 and rows <= 2 * max(known, SMALL_TABLE):
        return
    conn.exec_driver_sql(f"analyze {table}")
