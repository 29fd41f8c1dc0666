"""What keeps a small write's statements cheap as the database grows: PostgreSQL's statistics
refreshed as tables double, every execution planned for its own values, and request nonces
forgotten once a minute rather than by every group."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from puhui.adapters.sql import engine, nonces
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.engine import make_engine
from puhui.bootstrap import App
from puhui.domain import signing
from puhui.service import admin, ingest
from tests.builders import event

KEY = "pk_" + "0" * 24
HORIZON_MS = 2 * signing.MAX_SKEW_S * 1000


def _postgresql(app: App) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")


def test_small_writes_refresh_statistics_once_a_table_doubles(app: App) -> None:
    """Groups of 100 records, far from the 10 000 of a bulk write, still let the planner see
    `records` and `subjects` grow (autovacuum is off for them here: only the writers refresh).
    A table is looked at each time the rows written since add up to its size, and analysed when
    it is more than twice what the planner knows: at 1 000 rows, then 4 000."""
    _postgresql(app)
    admin.add_platform(app, "amap")
    with app.engine.begin() as conn:
        for table in ("records", "subjects"):
            conn.execute(text(f"alter table {table} set (autovacuum_enabled = false)"))
    pipeline = ingest.Pipeline(app)
    try:
        for g in range(50):
            records = [
                event(f"e{g}-{i}", subject=f"139{g:04d}{i:04d}", quantity="1") for i in range(100)
            ]
            ingest.ingest_records(app, "amap", records, pipeline=pipeline)
    finally:
        pipeline.close()
    with app.engine.connect() as conn:
        known = dict(
            conn.execute(
                text(
                    "select relname, reltuples from pg_class "
                    "where relname in ('records', 'subjects')"
                )
            ).all()
        )
    assert known["records"] >= 4_000
    assert known["subjects"] >= 4_000


def test_every_execution_is_planned_for_its_own_values(app: App) -> None:
    """No generic plan chosen with the statistics of an earlier moment."""
    _postgresql(app)
    with app.engine.connect() as conn:
        assert conn.execute(text("show plan_cache_mode")).scalar_one() == "force_custom_plan"


def test_nonces_past_the_horizon_are_forgotten_once_a_minute(app: App) -> None:
    """A claim forgets the nonces past its horizon (twice the allowed skew before its
    requests), at most once a minute of requests' time: in between, they are kept."""
    t0 = 1_790_000_000_000

    def claim(nonce: str, at: int) -> set[str]:
        with app.engine.begin() as conn:
            assert nonces.claim(conn, [(KEY, nonce, at)]) == {}
            return set(conn.execute(select(t.request_nonces.c.nonce)).scalars())

    a, x, y, z = ("a" * 16, "x" * 16, "y" * 16, "z" * 16)
    # The first claim forgets what is past its horizon, t0.
    assert claim(a, t0 + HORIZON_MS) == {a}
    assert claim(x, t0 + 10_000) == {a, x}
    # x is past this claim's horizon (t0 + 30 s), but the last forgetting was 30 s before.
    assert claim(y, t0 + HORIZON_MS + 30_000) == {a, x, y}
    # A minute after it, x goes.
    assert claim(z, t0 + HORIZON_MS + 60_000) == {a, y, z}


def test_a_connection_is_pinged_only_after_it_sat_idle(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settlement process takes a connection for every group: one returned a moment ago is
    lent without a round trip to check it; one idle for longer is checked first, and one the
    server closed meanwhile is replaced, not lent."""
    _postgresql(app)
    pings: list[object] = []
    ping = app.engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(app.engine.dialect, "do_ping", counted)
    with app.engine.connect() as conn:
        pid = conn.execute(text("select pg_backend_pid()")).scalar_one()
    pings.clear()
    with app.engine.connect() as conn:
        assert conn.execute(text("select pg_backend_pid()")).scalar_one() == pid
    assert pings == []

    monkeypatch.setattr(engine, "PING_IDLE_S", 0.0)
    other = make_engine(app.engine.url.render_as_string(hide_password=False))
    with other.connect() as conn:
        conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()
    with app.engine.connect() as conn:
        assert conn.execute(text("select pg_backend_pid()")).scalar_one() != pid
    assert pings
