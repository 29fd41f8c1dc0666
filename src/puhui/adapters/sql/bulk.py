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


def fetch_arrow(conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """Run a query and return its rows as an Arrow table of the given schema.

    The query runs on the DBAPI cursor: large results skip SQLAlchemy's per-row processing.
    Parameters are written `:name`; values are always bound, never interpolated.
    """
    dbapi: Any = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        result = dbapi.execute(sql, params).fetchall()
    else:
        with dbapi.cursor() as cursor:
            cursor.execute(_NAMED.sub(r"%(\1)s", sql.replace("%", "%%")), params)
            result = cursor.fetchall()
    columns: list[tuple[Any, ...]] = (
        list(zip(*result, strict=True)) if result else [() for _ in schema]
    )
    return pa.Table.from_arrays(
        [pa.array(list(col), type=field.type) for col, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


# A write of at least this many rows may change the planner's picture of a table; smaller ones
# are left to PostgreSQL's autovacuum.
FRESH_STATISTICS = 10_000


def refresh_statistics(conn: Connection, table: str, written: int, key: str = "id") -> None:
    """Let PostgreSQL's planner see the `written` rows this transaction just wrote to `table`.

    Without fresh statistics a bulk load plans its joins as if the tables were still empty
    (nested loops over sequential scans). Statistics are refreshed only after a bulk write, and
    only when the table has more than doubled since they were taken (the highest `key`, an
    increasing id, bounds its size): a sample of a large table costs about half a second and
    changes little. SQLite plans from its indexes and needs nothing.
    """
    if conn.dialect.name != "postgresql" or written < FRESH_STATISTICS:
        return
    rows = conn.exec_driver_sql(f"select coalesce(max({key}), 0) from {table}").scalar_one()
    known = conn.exec_driver_sql(
        "select reltuples from pg_class where oid = cast(%(t)s as regclass)", {"t": table}
    ).scalar_one()
    if known is not None and known >= 0 and rows <= 2 * max(known, 1000):
        return
    conn.exec_driver_sql(f"analyze {table}")
