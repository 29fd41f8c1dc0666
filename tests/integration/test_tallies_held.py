"""Held records (spec v1.1) in the statistics' tallies, on both databases: a held record counts
in `all` and its platform's, by status `held`, with the grams it would credit, and nowhere
else; when it ends, `tallies.resolve` moves it to its outcome in every dimension, participants
included, so that the tallies always say what a recount of the stored records says."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from puhui.adapters.sql import bulk, tallies
from puhui.adapters.sql import tables as t
from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.service import admin, ingest
from tests.builders import event, trip

HELD_REASONS = ["awaiting_corroboration", "device_shared;velocity", "review_required;capped"]
CREDITED_REASONS = ["corroborated", "released", "credited_uncorroborated", "released;capped"]
REJECTED_REASONS = ["rejected_on_review", "not_corroborated"]

A, B, C, D, E, F, G = (f"1380013800{n}" for n in range(7))
STORED = pa.schema(
    [
        ("status", pa.string()),
        ("reason", pa.string()),
        ("reduction_g", pa.int64()),
        ("subject_id", pa.int64()),
        ("region", pa.string()),
        ("scene", pa.string()),
        ("start_ms", pa.int64()),
    ]
)
USAGE = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("scene", pa.string()),
        ("day", pa.date32()),
        ("g", pa.int64()),
        ("n", pa.int64()),
    ]
)


def _ride(record_id: str, subject: str, day: int, **more: Any) -> dict[str, Any]:
    """A bus ride (or `scene`) of a citizen at 08:00 on a day of October 2026 (0: 30 September)."""
    on = f"2026-10-{day:02d}" if day else "2026-09-30"
    times = {"start": f"{on}T08:00:00+08:00", "end": f"{on}T08:20:00+08:00"}
    return trip(record_id, subject=subject, **(times | more))


def _settle_base(app: App) -> None:
    """Three chunks of two platforms: credits of seven citizens in four regions and four scenes
    around a month's turn, a duplicate across platforms, a rejection and capped walks."""
    admin.add_platform(app, "amap")
    admin.add_platform(app, "didi")
    ingest.ingest_records(
        app,
        "amap",
        [
            _ride("a1", A, 1),
            _ride("a2", A, 2, scene="metro"),
            _ride("b1", B, 3, region="440300"),
            _ride("c1", C, 4, region="310000"),
            event("d1", subject=D, ref="R-1"),
            # 23:30 on 30 September, China time: September's day and month.
            trip("e1", subject=E, start="2026-09-30T23:30:00+08:00",
                 end="2026-09-30T23:50:00+08:00"),
            _ride("x1", E, 5, distance_km=-1),
        ],
    )  # fmt: skip
    ingest.ingest_records(
        app,
        "didi",
        [
            _ride("a1", A, 1, platform="didi"),
            _ride("f1", F, 1, platform="didi"),
            _ride("b2", B, 5, platform="didi", region="440300", scene="metro"),
            _ride("g0", G, 0, platform="didi", scene="metro"),
        ],
    )
    ingest.ingest_records(
        app,
        "amap",
        [
            _ride("a3", A, 3),
            _ride("g1", G, 1, scene="walk", distance_km=3),
            # Four walks of F in Chengdu, over the day's walking cap: the last two capped.
            *(_ride(f"f{n}", F, 6, start=f"2026-10-06T{n:02d}:00:00+08:00",
                    end=f"2026-10-06T{n:02d}:40:00+08:00", scene="walk", region="510100",
                    distance_km=3)
              for n in range(10, 14)),
        ],
    )  # fmt: skip


@pytest.fixture
def based(app: App) -> App:
    """The application with the base chunks settled (every record credited, duplicate or
    rejected: none held yet)."""
    _settle_base(app)
    with app.engine.connect() as conn:
        statuses = [(s, r) for s, r in conn.execute(text("select status, reason from records"))]
    assert [s for s, _ in statuses].count("duplicate") == 1
    assert [s for s, _ in statuses].count("rejected") == 1
    assert ("credited", "capped") in statuses, "a credit was capped"
    return app


def _seqs(conn: Connection) -> dict[str, int]:
    """The seq of each amap record by record id (didi's as `id@didi`)."""
    rows = conn.execute(
        text(
            "select r.record_id, p.code, r.seq from records r "
            "join platforms p on p.id = r.platform_id"
        )
    )
    return {rid if code == "amap" else f"{rid}@{code}": seq for rid, code, seq in rows}


def _mismatches(conn: Connection) -> list[str]:
    return list(conn.execute(text(tallies.mismatches(conn.dialect.name))).scalars())


def _state(conn: Connection) -> tuple[set[tuple[Any, ...]], dict[int, set[str]]]:
    """Every tally row and the values each citizen is counted in."""
    rows = {tuple(r) for r in conn.execute(text("select * from tallies"))}
    members = {
        int(s): set(counted.split(","))
        for s, counted in conn.execute(text("select subject_id, counted from tally_members"))
    }
    return rows, members


def _assert_as_recounted(conn: Connection) -> None:
    """The tallies are those a recount from scratch makes, zero rows and members included."""
    assert _mismatches(conn) == []
    kept = _state(conn)
    tallies.rebuild(conn)
    assert _state(conn) == kept


def _tally(conn: Connection, dimension: str, key: str, status: str, reason: str) -> Any:
    return conn.execute(
        text(
            "select records, grams, participants from tallies where dimension = :d "
            "and key = :k and status = :s and reason = :r"
        ),
        {"d": dimension, "k": key, "s": status, "r": reason},
    ).one_or_none()


def _hold(conn: Connection, held: dict[int, str]) -> None:
    """Make credited records held (as settlement would have), keeping their grams."""
    for seq, reason in held.items():
        conn.execute(
            text("update records set status = 'held', reason = :r where seq = :s"),
            {"r": reason, "s": seq},
        )


def _end(conn: Connection, outcomes: dict[int, tuple[str, str]]) -> None:
    """End held records as a resolving transaction does: update them, then `resolve`."""
    changed = []
    for seq, (status, reason) in outcomes.items():
        was_reason, grams = conn.execute(
            text("select reason, reduction_g from records where seq = :s and status = 'held'"),
            {"s": seq},
        ).one()
        changed.append((seq, "held", was_reason, int(grams)))
        conn.execute(
            text("update records set status = :st, reason = :r, reduction_g = :g where seq = :s"),
            {"st": status, "r": reason, "g": grams if status == "credited" else 0, "s": seq},
        )
    tallies.resolve(conn, changed)


def _stored_chunk(conn: Connection, lo: int, hi: int) -> pa.Table:
    return bulk.fetch_arrow(
        conn,
        f"select {', '.join(STORED.names)} from records where seq between :lo and :hi order by seq",
        {"lo": lo, "hi": hi},
        STORED,
    )


def _usage(conn: Connection, before: int, with_held: bool) -> pa.Table:
    """What the citizens were credited before a seq, per citizen, scene and China day; with
    `with_held`, their held records too, and how many of a row's records were credited."""
    counted = "(status = 'credited' or status = 'held')" if with_held else "status = 'credited'"
    rows, _ = bulk.execute(
        conn,
        "select subject_id, scene, (start_ms + :cn) / :day, sum(reduction_g), count(*), "
        "sum(case when status = 'credited' then 1 else 0 end) from records "
        f"where seq < :before and {counted} group by subject_id, scene, (start_ms + :cn) / :day",
        {"cn": china_time.OFFSET_MS, "day": china_time.DAY_MS, "before": before},
    )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    table = pa.table(
        [
            pa.array([int(s) for s in columns[0]], pa.int64()),
            pa.array(columns[1], pa.string()),
            pa.array([china_time.EPOCH + timedelta(days=int(d)) for d in columns[2]], pa.date32()),
            pa.array([int(g) for g in columns[3]], pa.int64()),
            pa.array([int(n) for n in columns[4]], pa.int64()),
        ],
        schema=USAGE,
    )
    if with_held:
        table = table.append_column(
            tallies.CREDITED_N, pa.array([int(n) for n in columns[5]], pa.int64())
        )
    return table


def _chunks(conn: Connection) -> list[tuple[int, int, int]]:
    """(platform, first seq, last seq) of each settled chunk, in order."""
    rows = conn.execute(
        text(
            "select platform_id, min(seq), max(seq) from records group by batch_id, platform_id "
            "order by min(seq)"
        )
    )
    return [(int(p), int(lo), int(hi)) for p, lo, hi in rows]


def _add_chunk(conn: Connection, chunk: tuple[int, int, int], arrow: bool, held: bool) -> None:
    platform, lo, hi = chunk
    with mock.patch.object(tallies, "SMALL_CHUNK", 0 if arrow else tallies.SMALL_CHUNK):
        tallies.add(conn, platform, _stored_chunk(conn, lo, hi), lo, hi, _usage(conn, lo, held))


@pytest.mark.parametrize(("arrow", "held_usage"), [(False, False), (True, False), (False, True)])
def test_a_held_record_counts_in_all_and_its_platform_with_its_pending_grams(
    based: App, arrow: bool, held_usage: bool
) -> None:
    """Counted chunk by chunk, in Python or Arrow, as a recount counts it: by status `held`
    and its reasons, its grams pending, in no region, day or scene, and not as a participant."""
    with based.engine.begin() as conn:
        seq = _seqs(conn)
        # B's rides are both held: B is credited nowhere; A's Beijing metro ride of 2 October.
        _hold(conn, {seq["b1"]: HELD_REASONS[0], seq["b2@didi"]: HELD_REASONS[0]})
        _hold(conn, {seq["a2"]: HELD_REASONS[1]})
        # F's only October credit before the last chunk's walks: held, so F's October starts
        # with them (whatever the caps' usage says of the held ride).
        _hold(conn, {seq["f1@didi"]: HELD_REASONS[2]})
        conn.execute(text("delete from tallies"))
        conn.execute(text("delete from tally_members"))
        for chunk in _chunks(conn):
            _add_chunk(conn, chunk, arrow, held_usage)
        pending = conn.execute(
            text("select sum(reduction_g) from records where seq in (:a, :b)"),
            {"a": seq["b1"], "b": seq["b2@didi"]},
        ).scalar_one()
        assert pending > 0
        assert tuple(_tally(conn, "all", "", "held", HELD_REASONS[0])) == (2, pending, 0)
        assert _tally(conn, "all", "", "held", HELD_REASONS[1])[0] == 1
        assert _tally(conn, "region", "440300", "credited", "") is None
        assert _tally(conn, "province", "440000", "credited", "") is None
        assert _tally(conn, "day", "2026-10-03", "credited", "")[2] == 1  # A only, not B
        assert _tally(conn, "scene", "metro", "credited", "")[0] == 1  # G's, not A's nor B's
        citizens = conn.execute(
            text("select count(distinct subject_id) from records where status = 'credited'")
        ).scalar_one()
        assert _tally(conn, "all", "", "credited", "")[2] == citizens
        _assert_as_recounted(conn)


def test_resolving_held_records_moves_them_to_their_outcome_everywhere(based: App) -> None:
    """B's held rides: one released, B becomes a participant of Shenzhen, Guangdong and its
    day; C's only ride is rejected: Shanghai counts nobody. A's release adds a day only."""
    with based.engine.begin() as conn:
        seq = _seqs(conn)
        _hold(conn, {seq["b1"]: HELD_REASONS[0], seq["b2@didi"]: HELD_REASONS[0]})
        _hold(conn, {seq["c1"]: HELD_REASONS[1], seq["a2"]: HELD_REASONS[2]})
        tallies.rebuild(conn)
        _assert_as_recounted(conn)
        everyone = _tally(conn, "all", "", "credited", "")[2]
        metro = _tally(conn, "scene", "metro", "credited", "")
    with based.engine.begin() as conn:
        _end(
            conn,
            {
                seq["b1"]: ("credited", "corroborated"),
                seq["c1"]: ("rejected", "rejected_on_review"),
                seq["a2"]: ("credited", "released;capped"),
            },
        )
    with based.engine.begin() as conn:
        b1 = conn.execute(
            text("select reduction_g from records where seq = :s"), {"s": seq["b1"]}
        ).scalar_one()
        assert tuple(_tally(conn, "region", "440300", "credited", "")) == (1, b1, 1)
        assert tuple(_tally(conn, "province", "440000", "credited", "")) == (1, b1, 1)
        assert _tally(conn, "day", "2026-10-03", "credited", "")[2] == 2  # A and B
        assert _tally(conn, "day", "2026-10-02", "credited", "")[2] == 2  # A and D
        metro_now = _tally(conn, "scene", "metro", "credited", "")
        assert (metro_now[0], metro_now[2]) == (metro[0] + 1, metro[2] + 1)  # A joins G
        assert _tally(conn, "all", "", "credited", "")[2] == everyone + 1  # B, not C
        assert _tally(conn, "all", "", "credited", "corroborated")[0] == 1
        assert _tally(conn, "all", "", "held", HELD_REASONS[0])[0] == 1  # b2, never resolved
        assert _tally(conn, "all", "", "held", HELD_REASONS[1]) is None  # deleted, as a recount
        assert tuple(_tally(conn, "all", "", "rejected", "rejected_on_review")) == (1, 0, 0)
        assert _tally(conn, "region", "310000", "credited", "") is None
        assert _tally(conn, "day", "2026-10-04", "credited", "") is None
        assert "region=440300" in _state(conn)[1][_subject(conn, seq["b1"])]
        assert "region=310000" not in _state(conn)[1].get(_subject(conn, seq["c1"]), set())
        _assert_as_recounted(conn)


def _subject(conn: Connection, seq: int) -> int:
    return int(
        conn.execute(text("select subject_id from records where seq = :s"), {"s": seq}).scalar_one()
    )


def test_a_resolution_refuses_what_it_cannot_move(based: App) -> None:
    """Only held (or rejected) records, each once, all stored."""
    with based.engine.begin() as conn:
        seq = _seqs(conn)
        for changed, refusal in (
            ([(seq["a1"], "credited", "", 0)], "can be resolved"),
            ([(seq["c1"], "held", "x", 1), (seq["c1"], "held", "x", 1)], "resolved twice"),
            ([(10**9, "held", "x", 1)], "not stored"),
        ):
            with pytest.raises(ValueError, match=refusal):
                tallies.resolve(conn, changed)
        tallies.resolve(conn, [])
        assert _mismatches(conn) == []


EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(data=st.data())
def test_any_sequence_of_chunks_and_resolutions_leaves_the_tallies_recounted(
    based: App, data: st.DataObject
) -> None:
    """The base chunks settled again one by one, some credits held as they are stored (some
    never resolved), and after each chunk some held records credited or rejected, a few at a
    time or all at once: the tallies always equal a recount. Each example is rolled back."""
    columns = [c.name for c in t.records.columns]
    with based.engine.connect() as conn, conn.begin() as transaction:
        stored = conn.execute(text(f"select {', '.join(columns)} from records order by seq"))
        rows = [tuple(r) for r in stored]
        chunks = _chunks(conn)
        for table in ("records", "tallies", "tally_members"):
            conn.execute(text(f"delete from {table}"))
        arrow = data.draw(st.booleans(), "arrow")
        held_usage = data.draw(st.booleans(), "usage with held records")
        held: dict[int, str] = {}
        for chunk in chunks:
            _, lo, hi = chunk
            bulk.insert_rows(conn, "records", columns, [r for r in rows if lo <= r[0] <= hi])
            credited = [r[0] for r in rows if lo <= r[0] <= hi and r[columns.index("status")]
                        == "credited"]  # fmt: skip
            holding = data.draw(st.lists(st.sampled_from(credited), unique=True), "held")
            reasons = data.draw(
                st.lists(
                    st.sampled_from(HELD_REASONS), min_size=len(holding), max_size=len(holding)
                )
            )
            _hold(conn, dict(zip(holding, reasons, strict=True)))
            held |= dict(zip(holding, reasons, strict=True))
            _add_chunk(conn, chunk, arrow, held_usage)
            assert _mismatches(conn) == []
            for _ in range(data.draw(st.integers(0, 2), "resolutions")):
                if not held:
                    break
                ending = data.draw(st.lists(st.sampled_from(sorted(held)), unique=True), "end")
                outcomes: dict[int, tuple[str, str]] = {}
                for s in ending:
                    credit = data.draw(st.booleans())
                    reason = data.draw(
                        st.sampled_from(CREDITED_REASONS if credit else REJECTED_REASONS)
                    )
                    outcomes[s] = ("credited" if credit else "rejected", reason)
                    del held[s]
                _end(conn, outcomes)
                assert _mismatches(conn) == []
        _assert_as_recounted(conn)
        transaction.rollback()


def test_a_thousand_resolutions_in_one_call(based: App) -> None:
    """A bulk decision: many held records of many citizens and days resolved in one call."""
    n = 1200
    with based.engine.begin() as conn:
        platform = conn.execute(text("select id from platforms where code = 'amap'")).scalar_one()
        first = conn.execute(text("select max(seq) from records")).scalar_one() + 1
        batch = conn.execute(text("select max(batch_id) from records")).scalar_one()
        columns = (
            *("seq", "batch_id", "platform_id", "record_id", "digest", "subject_id", "scene"),
            *("region", "start_ms", "end_ms", "status", "reason", "reduction_g"),
        )
        day0 = china_time.day_start_ms(china_time.EPOCH + timedelta(days=20_000))
        regions = ("110000", "440300", "310000", "510100")
        rows = [
            (first + i, batch, platform, f"bulk-{i}", f"{i:032x}", 1000 + i % 97,
             "bus", regions[i % 4], day0 + (i % 45) * china_time.DAY_MS + i * 1000,
             day0 + (i % 45) * china_time.DAY_MS + i * 1000 + 600_000,
             "held", HELD_REASONS[i % 3], 100 + i)
            for i in range(n)
        ]  # fmt: skip
        bulk.insert_rows(conn, "records", columns, rows)
        tallies.rebuild(conn)
    groups: dict[bool, dict[int, tuple[str, str]]] = defaultdict(dict)
    for i in range(n):
        groups[i % 5 == 0][first + i] = (
            ("rejected", "not_corroborated") if i % 3 == 0 else ("credited", "released")
        )
    with based.engine.begin() as conn:
        _end(conn, groups[False])
        _end(conn, groups[True])
        _assert_as_recounted(conn)
        assert _tally(conn, "all", "", "held", HELD_REASONS[0]) is None
