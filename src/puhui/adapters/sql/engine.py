"""Database engines: SQLite (embedded default, WAL) and PostgreSQL (production)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

DEFAULT_URL = "sqlite:///puhui.db"
# A PostgreSQL connection back in the pool for longer than this is pinged before it is lent
# again (a server restarted meanwhile has closed it). One returned a moment ago is lent as
# it is: the settlement process takes a connection for every group, and a ping is a round
# trip more for each.
PING_IDLE_S = 1.0


def normalise_url(url: str) -> str:
    """Accept `postgresql://` URLs and use psycopg 3 for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """Create an engine for a database URL, with the settings puhui relies on."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url)
    event.listen(engine, "connect", _postgresql_settings)
    event.listen(engine, "checkin", _returned)

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) <= PING_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool then connects again (up to three times) instead of lending it.
            raise DisconnectionError() from error
        if not alive:
            raise DisconnectionError()

    return engine


def _returned(_dbapi_connection: Any, record: Any) -> None:
    record.info["returned_at"] = time.monotonic()


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while a batch is written; NORMAL is durable across crashes in WAL
    # mode except for the last transactions before a power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _postgresql_settings(dbapi_connection: Any, _record: Any) -> None:
    # psycopg prepares a statement run five times, and PostgreSQL may then keep one generic
    # plan for it, chosen with the statistics of the moment: planned while `subjects` was
    # small, a lookup of 15 pseudonyms kept scanning it as it grew (0.25 ms, then 1.5 ms at
    # 15 000 rows). Each execution is planned for its own values instead.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("set plan_cache_mode = force_custom_plan")
    dbapi_connection.commit()
