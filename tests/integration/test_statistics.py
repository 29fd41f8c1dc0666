"""Published statistics come from tallies kept at settlement: they must say exactly what a
recount of the stored records says, chunk after chunk, on both databases."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.generate import generate
from puhui.adapters.sql import tallies
from puhui.bootstrap import App
from puhui.service import admin, ingest, ledger, oversight

# Wide enough to hold every behaviour: a windowed breakdown recounts the records themselves.
EVER = (date(2000, 1, 1), date(2100, 1, 1))


@pytest.fixture
def settled(app: App, tmp_path: Path) -> App:
    """2 000 generated records of every platform (duplicates across platforms, rejections,
    caps, replays), settled in chunks of 300 so that citizens recur across chunks."""
    truth = generate(tmp_path / "files", records=2000, seed=11, received_at=app.clock())
    for platform in sorted({p for p, _ in truth.files}):
        admin.add_platform(app, platform)
    for platform, path in truth.files:
        ingest.ingest_files(app, platform, [path], chunk_size=300)
    # A replay of a file counts nothing again.
    platform, path = truth.files[0]
    ingest.ingest_files(app, platform, [path], chunk_size=300)
    return app


def _stored(app: App) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
    with app.engine.connect() as conn:
        return (
            {tuple(r) for r in conn.execute(text("select * from tallies where records > 0 "
                                                 "or participants > 0"))},
            {
                (subject, entry)
                for subject, counted in conn.execute(text("select * from tally_members"))
                for entry in counted.split(",")
            },
        )  # fmt: skip


def test_tallied_figures_equal_a_recount_of_the_records(settled: App) -> None:
    app = settled
    assert ledger.verify(app) == []
    for by in oversight.Dimension:
        tallied = oversight.reductions(app, by)
        assert tallied, by
        if by is not oversight.Dimension.DAY:  # by day always reads the tallies
            assert tallied == oversight.reductions(app, by, *EVER), by
    with app.engine.connect() as conn:
        unstarted = conn.execute(text("select count(*) from records where start_ms is null"))
        without_start = int(unstarted.scalar_one())
    totals = oversight.totals(app)
    recount = oversight.totals(app, *EVER)
    # A record rejected for lacking its start belongs to no day: only the totals count it.
    assert totals.received == recount.received + without_start
    assert dataclasses.replace(totals, received=recount.received) == recount
    assert oversight.duplicate_pairs(app) == oversight.duplicate_pairs(app, *EVER)
    assert oversight.duplicate_pairs(app), "the generated files report behaviours twice"
    every = Counter({(r.platform, r.status, r.reason): r.records for r in oversight.outcomes(app)})
    started = Counter(
        {(r.platform, r.status, r.reason): r.records for r in oversight.outcomes(app, *EVER)}
    )
    assert not started - every
    assert {status for _, status, _ in every - started} <= {"rejected"}
    platforms = {p.code: p for p in admin.list_platforms(app)}
    assert sum(p.credited for p in platforms.values()) == totals.records
    assert sum(p.credited_g for p in platforms.values()) == totals.credited_g


def test_day_windows_read_the_tallies_of_their_days(settled: App) -> None:
    days = oversight.reductions(settled, oversight.Dimension.DAY)
    middle = date.fromisoformat(days[len(days) // 2].key)
    window = oversight.reductions(settled, oversight.Dimension.DAY, middle, date(2100, 1, 1))
    assert window == [d for d in days if d.key >= middle.isoformat()]


def test_a_recount_from_scratch_finds_the_same_tallies(settled: App) -> None:
    """What the migration does for records stored before tallies existed."""
    before = _stored(settled)
    with settled.engine.begin() as conn:
        tallies.rebuild(conn)
    assert _stored(settled) == before


def test_a_citizen_counts_once_per_value_however_many_chunks_credit_them(app: App) -> None:
    """Each credit of one citizen comes in its own submission; they are one participant."""
    admin.add_platform(app, "amap")
    for n in range(3):
        ingest.ingest_records(
            app,
            "amap",
            [
                {
                    "platform": "amap", "record_id": f"w{n}", "subject": "13800138000",
                    "scene": "walk", "region": "110000", "distance_km": 2.0,
                    "start": datetime(2026, 10, 1 + n, 8, tzinfo=UTC).isoformat(),
                    "end": datetime(2026, 10, 1 + n, 8, 30, tzinfo=UTC).isoformat(),
                }
            ],
        )  # fmt: skip
    totals = oversight.totals(app)
    assert (totals.records, totals.participants) == (3, 1)
    [month] = oversight.reductions(app, oversight.Dimension.MONTH)
    assert (month.key, month.records, month.participants) == ("2026-10", 3, 1)
    assert [d.participants for d in oversight.reductions(app, oversight.Dimension.DAY)] == [1] * 3


@pytest.mark.parametrize(
    "forgery",
    [
        "update tallies set records = records + 1 where dimension = 'scene'",
        "update tallies set grams = grams - 1 where dimension = 'all' and status = 'credited' "
        "and reason = ''",
        "update tallies set participants = participants + 1 where dimension = 'province'",
        "delete from tallies where dimension = 'pair'",
        "insert into tallies values ('region', '650100', 'credited', '', 1, 1000, 1)",
    ],
)
def test_verify_finds_tallies_that_do_not_recount(settled: App, forgery: str) -> None:
    with settled.engine.begin() as conn:
        conn.execute(text(forgery))
    assert {v.check for v in ledger.verify(settled)} == {"tally_mismatch"}
