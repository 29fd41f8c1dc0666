"""Worked examples of the plausibility rules: each rule's statement, its predicate run in
DuckDB over a small table, and its rendering in Arrow kernels over the same table, which must
agree.

Rows carry the normalised columns the rules may use: trips from 08:00 UTC on 1 October 2026,
`amount_milli` in metres for trips, coordinates in decimal degrees or null.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from puhui.adapters.batch import vectorised
from puhui.domain import rules
from puhui.domain.reasons import Reason

START_MS = 1_790_755_200_000  # 2026-10-01T08:00:00Z
HOUR_MS = 3_600_000

COLUMNS = pa.schema(
    [
        ("kind", pa.string()),
        ("scene", pa.string()),
        ("region", pa.string()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("amount_milli", pa.int64()),
        ("origin_lat", pa.float64()),
        ("origin_lon", pa.float64()),
        ("dest_lat", pa.float64()),
        ("dest_lon", pa.float64()),
    ]
)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory DuckDB for the module."""
    connection = duckdb.connect()
    yield connection
    connection.close()


def trip(
    scene: str = "bus", *, metres: int = 5000, ms: int = HOUR_MS, **more: Any
) -> dict[str, Any]:
    """A trip of `metres` lasting `ms` milliseconds."""
    row = {"kind": "trip", "scene": scene, "region": "110000", "start_ms": START_MS}
    row |= {"end_ms": START_MS + ms, "amount_milli": metres}
    return row | more


def event(scene: str = "paperless", quantity_milli: int = 1000) -> dict[str, Any]:
    """An event: a moment and a quantity, no end."""
    return {"kind": "event", "scene": scene, "region": "110000", "start_ms": START_MS,
            "end_ms": None, "amount_milli": quantity_milli}  # fmt: skip


def violated(
    con: duckdb.DuckDBPyConnection, code: Reason, rows: list[dict[str, Any]]
) -> list[bool]:
    """Evaluate one rule on each row: its statement, its SQL predicate as prepare runs it (null
    counts as false) and its Arrow rendering, which must agree."""
    table = pa.Table.from_pylist(rows, schema=COLUMNS)
    con.register("records", table)
    predicate = rules.RULES[code].predicate()
    try:
        result = con.execute(f"select coalesce(({predicate}), false) from records").fetchall()
    finally:
        con.unregister("records")
    stated = [
        rules.RULES[code].violated(
            rules.Measured(**{k: v for k, v in row.items() if k != "region"})
        )
        for row in rows
    ]
    assert [bool(r[0]) for r in result] == stated, "the SQL rendering disagrees with the rule"
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}
    in_arrow = vectorised.violations(columns)[code].to_pylist()
    assert in_arrow == stated, "the Arrow rendering disagrees with the rule"
    return stated


# Duration -----------------------------------------------------------------------------------


def test_a_trip_of_zero_seconds_is_implausible(con: duckdb.DuckDBPyConnection) -> None:
    """End equal to start: zero duration; one millisecond later it is a trip."""
    rows = [trip(ms=0), trip(ms=1), trip(ms=-HOUR_MS), trip(ms=HOUR_MS)]
    assert violated(con, Reason.NON_POSITIVE_DURATION, rows) == [True, False, True, False]


def test_a_trip_may_last_a_day_but_not_longer(con: duckdb.DuckDBPyConnection) -> None:
    """24 hours is the longest trip; a millisecond more is not one trip."""
    day = rules.LONGEST_TRIP_MS
    rows = [trip("walk", metres=50_000, ms=day), trip("walk", metres=50_000, ms=day + 1)]
    assert violated(con, Reason.TRIP_TOO_LONG, rows) == [False, True]
    assert violated(con, Reason.TRIP_TOO_LONG, [event()]) == [False]


def test_an_event_has_no_duration_to_check(con: duckdb.DuckDBPyConnection) -> None:
    """Events carry no end: the duration rule does not apply."""
    assert violated(con, Reason.NON_POSITIVE_DURATION, [event()]) == [False]


# Speed --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scene", "kmh"),
    [("walk", 15), ("bike", 45), ("bus", 100), ("metro", 160), ("ev", 180)],
)
def test_each_mode_has_a_fastest_credible_average_speed(
    con: duckdb.DuckDBPyConnection, scene: str, kmh: int
) -> None:
    """In one hour: exactly the bound is plausible, one metre more is not."""
    rows = [
        trip(scene, metres=kmh * 1000 - 1),
        trip(scene, metres=kmh * 1000),
        trip(scene, metres=kmh * 1000 + 1),
    ]
    assert violated(con, Reason.SPEED_IMPLAUSIBLE, rows) == [False, False, True]


def test_the_bound_is_an_average_over_the_whole_trip(con: duckdb.DuckDBPyConnection) -> None:
    """A 5 km walk takes at least 20 minutes at 15 km/h: 20 min passes, 19 min 59 s does not."""
    rows = [
        trip("walk", metres=5000, ms=20 * 60_000),
        trip("walk", metres=5000, ms=20 * 60_000 - 1000),
        trip("walk", metres=5000, ms=20 * 60_000 + 1000),
    ]
    assert violated(con, Reason.SPEED_IMPLAUSIBLE, rows) == [False, True, False]


def test_a_speed_plausible_for_one_mode_is_not_for_another(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """30 km in an hour: a bike ride, not a walk."""
    rows = [trip("walk", metres=30_000), trip("bike", metres=30_000)]
    assert violated(con, Reason.SPEED_IMPLAUSIBLE, rows) == [True, False]


def test_a_zero_duration_trip_is_not_also_judged_for_speed(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """No division by zero: the duration rule reports it, the speed rule stays silent."""
    rows = [trip("walk", metres=5000, ms=0), trip("walk", metres=0, ms=0)]
    assert violated(con, Reason.SPEED_IMPLAUSIBLE, rows) == [False, False]
    assert violated(con, Reason.NON_POSITIVE_DURATION, rows) == [True, True]


def test_events_are_never_too_fast(con: duckdb.DuckDBPyConnection) -> None:
    """Speed applies to trips only, whatever an event's quantity."""
    assert violated(con, Reason.SPEED_IMPLAUSIBLE, [event(quantity_milli=10**9)]) == [False]


# Straight line ------------------------------------------------------------------------------

# 0.1° of longitude on the equator: 2 × 6 371 000 × asin(sin(0.05°)) = 11 119.49 m. A route may
# fall short of it by 2 % and 50 m: 11 119.49 × 0.98 − 50 = 10 847.10 m.
EQUATOR = {"origin_lat": 0.0, "origin_lon": 0.0, "dest_lat": 0.0, "dest_lon": 0.1}


def test_the_straight_line_is_the_great_circle_distance(con: duckdb.DuckDBPyConnection) -> None:
    """The SQL haversine gives the textbook value for 0.1° on the equator."""
    con.register("places", pa.Table.from_pylist([EQUATOR]))
    [(metres,)] = con.execute(f"select {rules.straight_line_m()} from places").fetchall()
    con.unregister("places")
    assert metres == pytest.approx(6_371_000 * math.radians(0.1), abs=0.01)
    assert metres == pytest.approx(11_119.49, abs=0.01)


def test_a_distance_shorter_than_the_straight_line_is_implausible(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """10 848 m passes (within 2 % and 50 m of 11 119 m), 10 847 m does not."""
    rows = [
        trip("bike", metres=11_120, **EQUATOR),
        trip("bike", metres=10_848, **EQUATOR),
        trip("bike", metres=10_847, **EQUATOR),
        trip("bike", metres=5_000, **EQUATOR),
    ]
    assert violated(con, Reason.DISTANCE_BELOW_STRAIGHT_LINE, rows) == [False, False, True, True]


def test_a_route_longer_than_the_straight_line_is_plausible(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Roads wind: twice the straight line is fine."""
    rows = [trip("bus", metres=22_239, **EQUATOR)]
    assert violated(con, Reason.DISTANCE_BELOW_STRAIGHT_LINE, rows) == [False]


@pytest.mark.parametrize("missing", ["origin_lat", "origin_lon", "dest_lat", "dest_lon"])
def test_the_straight_line_is_checked_only_with_all_four_coordinates(
    con: duckdb.DuckDBPyConnection, missing: str
) -> None:
    """Coordinates are optional: without all four there is nothing to compare."""
    coordinates = {**EQUATOR, missing: None}
    rows = [trip("bike", metres=10, **coordinates), trip("bike", metres=10)]
    assert violated(con, Reason.DISTANCE_BELOW_STRAIGHT_LINE, rows) == [False, False]


def test_the_same_place_at_both_ends_is_a_round_trip(con: duckdb.DuckDBPyConnection) -> None:
    """Origin equal to destination: any distance is at least the straight line of 0 m."""
    here = {"origin_lat": 39.9, "origin_lon": 116.4, "dest_lat": 39.9, "dest_lon": 116.4}
    assert violated(con, Reason.DISTANCE_BELOW_STRAIGHT_LINE, [trip("walk", **here)]) == [False]


def test_a_record_may_violate_several_rules_at_once(con: duckdb.DuckDBPyConnection) -> None:
    """A 5 km walk in one minute that is shorter than its straight line breaks two rules."""
    row = trip("walk", metres=5_000, ms=60_000, **EQUATOR)
    broken = [code for code in rules.RULES if violated(con, code, [row]) == [True]]
    assert broken == [Reason.SPEED_IMPLAUSIBLE, Reason.DISTANCE_BELOW_STRAIGHT_LINE]
