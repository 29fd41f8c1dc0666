"""Every rendering of settlement decides what the statement of the rules decides, for any split.

The judge is `domain.settlement`: the records of a generated history, all of them, decided one by
one in receive order from an empty book. The renderings are what an ingest runs, submission by
submission against the database: the DuckDB statement (large chunks) and the statement itself
over the lookups' results (small chunks), or a mix of both. Histories are dense on purpose: three
citizens, a few refs, trips that overlap or just touch, replays and changed re-sends of the same
record ids, platforms' records sent under another platform, implausible walks, and tight caps
(counts and grams, per day and per month, different in Beijing and Chengdu) that bind often.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from puhui.adapters.batch import sequential
from puhui.adapters.batch.prepare import Preparer, epoch_ms
from puhui.adapters.batch.reader import records_table
from puhui.adapters.batch.sequential import candidates
from puhui.adapters.sql import intake as intake_store
from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import NotFoundError
from puhui.domain.methodology import Cap, Catalogue
from puhui.domain.settlement import Role, settle
from puhui.service import admin, ingest, ledger, queries
from tests.conftest import NOW

BEIJING = timezone(timedelta(hours=8))
PLATFORMS = ("amap", "didi")
CITIZENS = ("13800138000", "13900139000", "11010519491231002X")
DAYS = (datetime(2026, 9, 30, tzinfo=BEIJING), datetime(2026, 10, 1, tzinfo=BEIJING))
REFS = (None, None, "T-1", "T-2", "t-1 ", "R-9")
KEEP = ("status", "reason", "reduction_g", "methodology")

# Beijing's and Chengdu's methodologies get different caps, so that one citizen's scene on one
# day can meet two limits.
CAPS = {
    "bj-low-carbon-travel": (Cap("day", max_g=1_500, max_count=3), Cap("month", max_g=2_400)),
    "cn-common": (Cap("day", max_g=900, max_count=4), Cap("month", max_count=5)),
}


# Caps of a month below those of its days, so that the month's bind on a single record too.
LOW_MONTH_CAPS = {
    "bj-low-carbon-travel": (Cap("day", max_g=1_500, max_count=3), Cap("month", max_g=1_000)),
    "cn-common": (Cap("day", max_count=2), Cap("month", max_g=400)),
}
# Enough citizens that most records of a submission share nothing with the others.
MANY_CITIZENS = tuple(f"139{n:08d}" for n in range(15))


def tight(catalogue: Catalogue, caps_of: dict[str, tuple[Cap, ...]] = CAPS) -> Catalogue:
    """The shipped catalogue with the caps above (or `caps_of`) on every scene."""
    methodologies = []
    for m in catalogue.methodologies:
        caps = caps_of.get(m.id, (Cap("day", max_g=700, max_count=2),))
        scenes = {k: dataclasses.replace(rule, caps=caps) for k, rule in m.scenes.items()}
        methodologies.append(dataclasses.replace(m, scenes=scenes))
    return Catalogue(methodologies, catalogue.factors, catalogue.regions)


@st.composite
def records(draw: st.DrawFn, platform: str, citizens: tuple[str, ...] = CITIZENS) -> dict[str, Any]:
    """One record of a small, crowded world."""
    day = draw(st.sampled_from(DAYS))
    start = day + timedelta(hours=8, minutes=draw(st.sampled_from([0, 5, 10, 15, 20, 40])))
    record: dict[str, Any] = {
        "platform": platform if draw(st.integers(0, 15)) else draw(st.sampled_from(PLATFORMS)),
        "record_id": f"{platform}-{draw(st.integers(0, 11))}",
        "subject": draw(st.sampled_from(citizens)),
        "region": draw(st.sampled_from(["110000", "510100"])),
        "start": start.isoformat(),
    }
    ref = draw(st.sampled_from(REFS))
    if ref is not None:
        record["ref"] = ref
    if draw(st.integers(0, 3)):
        record["scene"] = draw(st.sampled_from(["bus", "metro", "walk"]))
        record["end"] = (start + timedelta(minutes=draw(st.sampled_from([10, 20, 30])))).isoformat()
        record["distance_km"] = draw(st.sampled_from(["0.8", "2.5", "4", "6.3"]))
    else:
        record["scene"] = draw(st.sampled_from(["paperless", "recycling"]))
        record["quantity"] = draw(st.sampled_from(["1", "2", "3.5"]))
        if record["scene"] == "recycling":
            record["material"] = "paper"
    return record


@st.composite
def histories(
    draw: st.DrawFn, citizens: tuple[str, ...] = CITIZENS
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Submissions in receive order: (platform, records); some records are sent again, as they
    were (replays) or changed (conflicts)."""
    submissions: list[tuple[str, list[dict[str, Any]]]] = []
    sent: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 6))):
        platform = draw(st.sampled_from(PLATFORMS))
        batch: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(1, 9))):
            own = [r for r in sent + batch if r["record_id"].startswith(platform)]
            choice = draw(st.integers(0, 5))
            if own and choice == 0:
                batch.append(dict(draw(st.sampled_from(own))))
            elif own and choice == 1:
                batch.append(draw(st.sampled_from(own)) | {"distance_km": "1.1", "quantity": "1"})
            else:
                batch.append(draw(records(platform, citizens)))
        submissions.append((platform, batch))
        sent += batch
    return submissions


def judged(app: App, history: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The receipts the statement of the rules gives the whole history, from an empty book."""
    preparers = {p: Preparer(app.catalogue, app.secret, p) for p in PLATFORMS}
    numbers: dict[str, int] = {}
    everything, seq = [], 1
    try:
        for platform, batch in history:
            prepared = preparers[platform].prepare(records_table(batch), epoch_ms(NOW))
            n = prepared.num_rows
            prepared = prepared.append_column("seq", pa.array(range(seq, seq + n), pa.int64()))
            seq += n
            pseudonyms = [p for p in prepared.column("pseudonym").to_pylist() if p]
            for p in pseudonyms:
                numbers.setdefault(p, len(numbers) + 1)
            ids = pa.table(
                {
                    "pseudonym": pa.array(list(numbers), pa.string()),
                    "subject_id": pa.array(list(numbers.values()), pa.int64()),
                }
            )
            everything += candidates(prepared, ids, PLATFORMS.index(platform))
    finally:
        for preparer in preparers.values():
            preparer.close()
    return [
        {
            "status": str(d.status),
            "reason": d.reason,
            "reduction_g": d.reduction_g,
            "methodology": d.methodology,
            "role": d.role,
        }
        for d in settle(everything)
    ]


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=histories(),
    small_chunk=st.sampled_from([0, 4, 1_000_000]),
    inline_keys=st.sampled_from([0, intake_store.INLINE_KEYS]),
)
# One citizen's bus rides on one day in Chengdu (1 008 g, 900 g a day there) and then in
# Beijing (1 079 g, 1 500 g a day there), in one chunk: the second gets the 600 g that remain
# under its own cap.
@example(
    history=[
        (
            "amap",
            [
                {"platform": "amap", "record_id": "amap-1", "subject": CITIZENS[0],
                 "scene": "bus", "region": "510100", "start": "2026-10-01T08:00:00+08:00",
                 "end": "2026-10-01T08:30:00+08:00", "distance_km": "42"},
                {"platform": "amap", "record_id": "amap-2", "subject": CITIZENS[0],
                 "scene": "bus", "region": "110000", "start": "2026-10-01T09:00:00+08:00",
                 "end": "2026-10-01T09:20:00+08:00", "distance_km": "5"},
            ],
        )
    ],
    small_chunk=0,
    inline_keys=0,
)  # fmt: skip
def test_every_rendering_decides_what_the_rules_decide_for_any_split(
    new_database: Callable[[Path], str],
    history: list[tuple[str, list[dict[str, Any]]]],
    small_chunk: int,
    inline_keys: int,
) -> None:
    """Submissions settled one by one (DuckDB for chunks over `small_chunk` records, the
    statement itself for the others; the chunk's keys bound as parameters or staged in
    temporary tables) give each record the receipt the rules give it, credit each citizen the
    grams the rules credit, and leave a sound ledger."""
    inline, intake_store.INLINE_KEYS = intake_store.INLINE_KEYS, inline_keys
    try:
        _ingest_and_judge(new_database, history, small_chunk)
    finally:
        intake_store.INLINE_KEYS = inline


def _ingest_and_judge(
    new_database: Callable[[Path], str],
    history: list[tuple[str, list[dict[str, Any]]]],
    small_chunk: int,
    caps_of: dict[str, tuple[Cap, ...]] = CAPS,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = bootstrap(Settings(new_database(Path(folder)), Path(folder) / "k"), clock=lambda: NOW)
        app.catalogue = tight(app.catalogue, caps_of)
        try:
            admin.init(app)
            for code in PLATFORMS:
                admin.add_platform(app, code)
            pipeline = ingest.Pipeline(app, small_chunk=small_chunk)
            got: list[dict[str, Any]] = []
            try:
                for platform, batch in history:
                    _report, receipts = ingest.ingest_records(
                        app, platform, batch, pipeline=pipeline
                    )
                    got += [{k: r[k] for k in KEEP} for r in receipts.to_pylist()]
            finally:
                pipeline.close()
            expected = judged(app, history)
            assert got == [{k: e[k] for k in KEEP} for e in expected]
            for citizen in {r["subject"] for _, b in history for r in b}:
                credited = sum(
                    e["reduction_g"]
                    for e, r in zip(expected, (r for _, b in history for r in b), strict=True)
                    if e["role"] == Role.NEW and r["subject"] == citizen
                )
                assert _balance(app, citizen) == credited
            assert ledger.verify(app) == []
        finally:
            app.close()


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(MANY_CITIZENS))
def test_records_that_meet_nothing_are_decided_as_the_rules_decide(
    new_database: Callable[[Path], str], history: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    """Many citizens, so that most records meet nothing in their chunk nor in the database and
    are credited column by column (`sequential.alone`), beside others that meet a citizen's
    earlier credits, trips or refs; and caps of a month below those of its days. Submissions
    here are small: the column path is taken whatever their size."""
    alone_from, sequential.ALONE_FROM = sequential.ALONE_FROM, 0
    try:
        _ingest_and_judge(new_database, history, 1_000_000, LOW_MONTH_CAPS)
    finally:
        sequential.ALONE_FROM = alone_from


def _balance(app: App, subject: str) -> int:
    try:
        return queries.account(app, subject).balance_g
    except NotFoundError:
        return 0
