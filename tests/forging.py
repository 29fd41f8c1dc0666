"""A forger with the database's superuser: edits the ledger past its append-only triggers.

Tests of `ledger verify` use it to plant the forgeries each check guards against: the
triggers refuse an UPDATE or DELETE of a ledger row to the application, not to whoever owns
the database, and the checks must catch what such an owner can do.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import Executable


def forge(engine: Engine, *statements: str | Executable) -> None:
    """Run the statements in one transaction with the append-only triggers out of the way.

    A string is sent to the database as it is (no bind parameters); an SQLAlchemy statement
    is executed as such. On PostgreSQL the transaction runs with `session_replication_role =
    replica` (which needs a superuser); on SQLite the triggers whose name contains
    `append_only` are dropped, the statements run and the triggers are created again from
    their saved SQL, all in one write transaction.
    """
    if engine.dialect.name == "sqlite":
        _forge_sqlite(engine, statements)
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("set local session_replication_role = replica")
        for statement in statements:
            _run(conn, statement)


def _forge_sqlite(engine: Engine, statements: tuple[str | Executable, ...]) -> None:
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        previous = driver.isolation_level
        # The transaction is begun and ended here, so that the DROP and CREATE TRIGGER
        # statements belong to it (the driver would otherwise run them outside any).
        driver.isolation_level = None
        try:
            conn.exec_driver_sql("begin immediate")
            try:
                triggers = conn.exec_driver_sql(
                    "select name, sql from sqlite_master"
                    " where type = 'trigger' and name like '%append_only%'"
                ).all()
                for name, _sql in triggers:
                    conn.exec_driver_sql(f'drop trigger "{name}"')
                for statement in statements:
                    _run(conn, statement)
                for _name, sql in triggers:
                    conn.exec_driver_sql(sql)
            except BaseException:
                conn.exec_driver_sql("rollback")
                raise
            conn.exec_driver_sql("commit")
        finally:
            driver.isolation_level = previous


def _run(conn: Any, statement: str | Executable) -> None:
    if isinstance(statement, str):
        conn.exec_driver_sql(statement)
    else:
        conn.execute(statement)
