"""The DuckDB and Arrow renderings of intake prepare what the statement of intake
(`domain.intake`) does.

Generated chunks mix ordinary records with the texts platforms get wrong: numbers with spaces,
signs, exponents, underscores, `inf` and `nan`, digits of other scripts; timestamps in UTC, with
offsets, lower-case separators, nine fraction digits, impossible days, hours, minutes and
offsets, years out of range; amounts too large to keep or too small to earn anything; unknown
scenes, regions and materials, malformed subjects, another platform's records, over-long ids and
refs, coordinates out of range; NUL characters, and JSON objects and arrays, in any field. Every
column of every record must be the same either way (the JSON of coordinates compared as values),
since the receipts, the digests that tell a replay from a conflict, and the stored records come
from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from puhui.adapters.batch.prepare import Preparer, epoch_ms
from puhui.adapters.batch.reader import FIELDS, records_table
from puhui.adapters.methodology_files import load_catalogue
from puhui.domain.methodology import Catalogue
from tests.conftest import NOW

numbers = st.one_of(
    st.sampled_from(["5", "0", "2.5", "0.0004", "-1", "+3", ".5", "5.", "1e3", "2.5E-1", " 4 ",
                     "\t4", "1_000", "inf", "-inf", "nan", "Infinity", "1,5", "abc", "٣", "0x10",
                     "2.00000000005", "-0.0004", "1e-400", "123456.789", "-0.0", "1e400",
                     "0.0009", "0.00099999999999", "5\x00", "1e17"]),
    st.sampled_from([[5], {"km": 5}, True, 7, 0.25]),
    st.decimals(min_value=-10, max_value=500, places=4, allow_nan=False).map(str),
    st.floats(min_value=-200, max_value=200, allow_nan=False).map(repr),
)  # fmt: skip
stamps = st.one_of(
    st.sampled_from(["2026-10-01T08:00:00+08:00", "2026-10-01T00:00:00Z", "2026-10-01t08:20:00z",
                     "2026-10-01 08:10:00.5+08:00", "2026-10-01T08:00:00.123456789+08:00",
                     "2026-10-01T08:00:00.9999999Z", "2026-02-30T08:00:00Z",
                     "2026-10-01T24:00:00Z", "2026-10-01T08:60:00Z", "2026-10-01T08:00:00+24:00",
                     "2026-10-01T08:00:00+99:99", "2026-10-01T08:00:00", "0001-01-01T00:00:00Z",
                     "1899-12-31T23:59:59Z", "1900-01-01T00:00:00+08:00", "3000-01-01T00:00:00Z",
                     "2026-10-01T08:00:00+08:00\n", "yesterday", "2026-11-01T08:04:00+08:00",
                     "2026-11-01T08:06:00+08:00", "2024-02-29T12:00:00-05:30",
                     "2026-10-01T08:00:00\x00+08:00"]),
    st.datetimes(
        min_value=datetime(2026, 9, 1),
        max_value=datetime(2026, 11, 2),
    ).map(lambda d: d.isoformat(timespec="milliseconds") + "+08:00"),
)  # fmt: skip
coordinates = st.one_of(st.none(), numbers, st.sampled_from(["39.9", "116.4", "91", "-181"]))


@st.composite
def raw_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record as a platform might send it, right or wrong in any field."""
    record: dict[str, Any] = {
        "platform": draw(st.sampled_from(["amap", "amap", "amap", "didi", "amap\x00", None])),
        "record_id": draw(st.sampled_from(["r1", "r2", "x" * 129, "é" * 128, "r\x001", {"id": 1},
                                           "r\ud800", ["r1"], 12, None])),
        "subject": draw(st.sampled_from(["13800138000", "+86 138-0013 8000", "11010519491231002X",
                                         "11010519491231002x", "12345", "１３８００１３８０００",
                                         "1380013\x008000", None])),
        "scene": draw(st.sampled_from(["bus", "metro", "walk", "bike", "ev", "recycling",
                                       "paperless", "electricity", "no_cutlery", "taxi", None])),
        "region": draw(st.sampled_from(["110000", "510100", "440300", "999999", "1100", None])),
        "start": draw(st.one_of(st.none(), stamps)),
        "end": draw(st.one_of(st.none(), stamps)),
        "distance_km": draw(st.one_of(st.none(), numbers)),
        "quantity": draw(st.one_of(st.none(), numbers)),
        "material": draw(st.sampled_from(["paper", "plastic", "Paper", "wood", "paper\x00",
                                          None])),
        "ref": draw(st.sampled_from([None, "T-1", " t-1 ", "\tT-1", "İX", "ΟΔΟΣ Α", "r" * 300,
                                     "T\x00-1", {"ref": "T-1"}, "T\udfff"])),
        "origin_lat": draw(coordinates),
        "origin_lon": draw(coordinates),
        "dest_lat": draw(coordinates),
        "dest_lon": draw(coordinates),
        "device": draw(st.sampled_from([None, "d-1", "设备", "d\x00", ["d-1"], "设" * 129])),
    }  # fmt: skip
    return {k: v for k, v in record.items() if v is not None}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def preparers(catalogue: Catalogue) -> Iterator[tuple[Preparer, Preparer, Preparer]]:
    """The DuckDB rendering (no chunk is small), the Arrow one (every chunk is a few thousand
    records) and the statement (every chunk is small)."""
    duck = Preparer(catalogue, b"k" * 32, "amap", small_chunk=0)
    arrow = Preparer(catalogue, b"k" * 32, "amap", small_chunk=0, arrow_chunk=10**9)
    statement = Preparer(catalogue, b"k" * 32, "amap", small_chunk=10**9)
    yield duck, arrow, statement
    duck.close()
    arrow.close()
    statement.close()


def _comparable(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for row in rows:
        if row["extra"] is not None:
            row["extra"] = {
                k: "non-finite" if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in json.loads(row["extra"]).items()
            }
    return rows


def _same_as_the_statement(
    preparers: tuple[Preparer, Preparer, Preparer], records: list[Any]
) -> None:
    duck, arrow, statement = preparers
    raw = records_table(records)
    by_statement = statement.prepare(raw, epoch_ms(NOW))
    expected = _comparable(by_statement)
    for rendering in (duck, arrow):
        prepared = rendering.prepare(raw, epoch_ms(NOW))
        assert prepared.schema == by_statement.schema
        for got, wanted in zip(_comparable(prepared), expected, strict=True):
            assert got == wanted


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(st.one_of(raw_records(), st.just("not an object")), min_size=1, max_size=8))
@example(records=[dict.fromkeys(FIELDS, "x")])
def test_the_renderings_prepare_what_the_statement_of_intake_prepares(
    preparers: tuple[Preparer, Preparer, Preparer], records: list[Any]
) -> None:
    """Same reasons, values, pseudonyms, digests, days and quantifications, record by record."""
    _same_as_the_statement(preparers, records)


@st.composite
def common_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record as platforms mostly send it, in the plain forms the Arrow rendering takes
    itself: the values that decide its arithmetic (amounts with up to ten decimals, fractions
    of seconds, offsets, coordinates printed every way, days near the end of a month) vary."""
    trip = draw(st.booleans())
    moment = draw(st.datetimes(min_value=datetime(2026, 9, 28), max_value=datetime(2026, 11, 1)))
    zone = draw(st.sampled_from(["Z", "+08:00", "-05:30", "+14:00", "z"]))
    fraction = draw(st.sampled_from(["", ".5", ".123", ".123456789", ".0009"]))
    start = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone
    amount = draw(
        st.one_of(
            st.decimals(min_value=0, max_value=10**6, places=draw(st.integers(0, 10)))
            .filter(lambda d: d.is_finite())
            .map(lambda d: format(d, "f")),
            st.sampled_from(["0", "1", "5.", "999999999999.9999999999", "0.0005"]),
        )
    )
    record: dict[str, Any] = {
        "platform": "amap",
        "record_id": draw(st.sampled_from(["r1", "r2", "r3"])),
        "subject": draw(
            st.sampled_from(["13800138000", "+86 138-0013 8001", "11010519491231002X"])
        ),
        "scene": draw(st.sampled_from(["bus", "metro", "walk", "bike", "ev"]))
        if trip
        else draw(st.sampled_from(["recycling", "paperless", "electricity", "no_cutlery"])),
        "region": draw(st.sampled_from(["110000", "510100", "440300", "330100"])),
        "start": start,
    }
    if trip:
        minutes = draw(st.integers(-10, 2000))
        end = moment + timedelta(minutes=minutes)
        record["end"] = end.strftime("%Y-%m-%dT%H:%M:%S") + zone
        record["distance_km"] = amount
    else:
        record["quantity"] = amount
        if draw(st.booleans()):
            record["end"] = start
    if record["scene"] == "recycling":
        record["material"] = draw(st.sampled_from(["paper", "plastic", "glass"]))
    elif draw(st.booleans()):
        record["material"] = draw(st.sampled_from(["paper", "anything"]))
    for name, bound in (
        ("origin_lat", 90),
        ("origin_lon", 180),
        ("dest_lat", 90),
        ("dest_lon", 180),
    ):
        if draw(st.integers(0, 4)):
            value = draw(st.floats(min_value=-bound, max_value=bound))
            record[name] = draw(
                st.sampled_from([repr(value), f"{value:.6f}", f"{value:.0f}", f"{value:.15f}"])
            )
    if draw(st.booleans()):
        record["ref"] = draw(st.sampled_from(["T-1", " t-1 ", "AbC", "x" * 256]))
    if draw(st.booleans()):
        record["device"] = draw(st.sampled_from(["d-1", "设备", "a b", "d" * 128, "d" * 129]))
    return record


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(common_records(), min_size=1, max_size=12))
def test_the_renderings_prepare_common_records_as_the_statement_does(
    preparers: tuple[Preparer, Preparer, Preparer], records: list[Any]
) -> None:
    """The records the Arrow rendering prepares itself: same values, digests, grams, reasons."""
    _same_as_the_statement(preparers, records)


def test_the_arrow_rendering_prepares_common_records_itself(
    preparers: tuple[Preparer, Preparer, Preparer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain records never reach the statement; an odd one does, alone (the differential tests
    above would pass just as well if the Arrow rendering handed everything on)."""
    _, arrow, _ = preparers
    handed: list[int] = []
    by_statement = arrow.prepare_by_statement

    def statement(raw: pa.Table, received_ms: int) -> pa.Table:
        handed.extend(raw.column("row").to_pylist())
        return by_statement(raw, received_ms)

    monkeypatch.setattr(arrow, "prepare_by_statement", statement)
    plain = {
        "platform": "amap", "record_id": "r", "subject": "13800138000", "scene": "bus",
        "region": "110000", "start": "2026-10-01T08:00:00+08:00",
        "end": "2026-10-01T08:30:00+08:00", "distance_km": "5.2", "origin_lat": "39.9",
        "origin_lon": "116.4", "dest_lat": "39.95", "dest_lon": "116.45", "ref": "T-1",
        "device": "d-1",
    }  # fmt: skip
    records = [plain | {"record_id": f"r{i}"} for i in range(5)]
    records[3] |= {"distance_km": "5e0"}  # a number this rendering leaves to the statement
    prepared = arrow.prepare(records_table(records), epoch_ms(NOW))
    assert handed == [4]
    assert prepared.column("row").to_pylist() == [1, 2, 3, 4, 5]
    assert prepared.column("amount_milli").to_pylist() == [5200, 5200, 5200, 5000, 5200]
