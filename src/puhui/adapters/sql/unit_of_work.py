"""The unit of work of intake on SQLAlchemy: one connection and one transaction, rolled back
on leaving unless committed."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine, RootTransaction

from puhui.adapters.sql.federation import SqlNodeLink
from puhui.adapters.sql.intake import IntakeStore


class SqlIntakeUnitOfWork:
    """Implements `service.ports.IntakeUnitOfWork` on a database engine."""

    store: IntakeStore
    federation: SqlNodeLink

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._transaction: RootTransaction | None = None

    def __enter__(self) -> SqlIntakeUnitOfWork:
        self._conn = self.engine.connect()
        self._transaction = self._conn.begin()
        self.store = IntakeStore(self._conn)
        self.federation = SqlNodeLink(self._conn)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._conn is not None, "entered"
        assert self._transaction is not None, "entered"
        try:
            if self._transaction.is_active:
                self._transaction.rollback()
        finally:
            self._conn.close()

    def commit(self) -> None:
        """Commit the transaction."""
        assert self._transaction is not None, "entered"
        self._transaction.commit()
