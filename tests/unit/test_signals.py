"""The fraud signals: each statement on worked cases, and the SQL rendering (DuckDB) held to the
statements on generated histories."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puhui.adapters.batch import signals as batch
from puhui.domain.evidence import Thresholds, VolumeCeiling, load
from puhui.domain.reasons import Reason
from puhui.domain.signals import MINUTE_MS, SIGNALS, Seen, fired

T0 = 1_793_000_000_000  # 2026-10-26, a Monday morning (UTC)
HOUR = 3_600_000
T = load().thresholds


def seen(seq: int, **kw: object) -> Seen:
    values: dict[str, object] = {
        "seq": seq,
        "platform": 1,
        "citizen": 1,
        "device": None,
        "scene": "walk",
        "region": "110105",
        "start_ms": T0 + seq * HOUR,
        "end_ms": T0 + seq * HOUR + 600_000,
        "day": (T0 + seq * HOUR + 28_800_000) // 86_400_000,
        "amount_milli": 1_000 + seq,
    }
    values.update(kw)
    return Seen(**values)  # type: ignore[arg-type]


def test_a_device_shared_by_four_citizens_fires_from_the_fourth() -> None:
    rows = [seen(i, citizen=i, device="d") for i in range(1, 6)]
    out = fired([r.seq for r in rows], rows, T)
    assert [s for s in out if Reason.DEVICE_SHARED in out[s]] == [4, 5]
    assert out[5][Reason.DEVICE_SHARED] == (5, None)


def test_a_citizen_on_as_many_devices_as_the_threshold_fires() -> None:
    n = T.citizen_devices
    rows = [seen(i, device=f"d{i}") for i in range(1, n + 1)]
    assert fired([n], rows, T)[n] == {Reason.DEVICE_HOPPING: (n, None)}
    assert fired([n - 1], rows, T) == {}
    other_platform = [r._replace(platform=2) if r.seq == 1 else r for r in rows]
    assert fired([n], other_platform, T) == {}


def test_a_teleport_between_trips_fires_and_a_flight_does_not() -> None:
    beijing = {"dest_lat": 39.9, "dest_lon": 116.4, "origin_lat": 39.8, "origin_lon": 116.3}
    shanghai = {"origin_lat": 31.2, "origin_lon": 121.5, "dest_lat": 31.3, "dest_lon": 121.4}
    a = seen(1, **beijing)
    ends = a.end_ms or 0
    spoof = seen(2, start_ms=ends + 20 * 60_000, end_ms=ends + 40 * 60_000, **shanghai)
    flight = seen(3, start_ms=ends + 4 * HOUR, end_ms=ends + 4 * HOUR + 600_000, **shanghai)
    out = fired([2], [a, spoof], T)
    assert out[2][Reason.VELOCITY][0] >= 1_000
    assert fired([3], [a, flight], T) == {}


def test_volume_beyond_a_days_ceiling_fires() -> None:
    t = replace(T, volume={"recycling": VolumeCeiling(10, 60_000)})
    receipts = [seen(i, scene="recycling", end_ms=None, amount_milli=25_000) for i in (1, 2, 3)]
    receipts = [r._replace(day=receipts[0].day) for r in receipts]
    out = fired([1, 2, 3], receipts, t)
    assert list(out) == [3]
    assert out[3][Reason.VOLUME_OUTLIER] == (3, 75_000)


def test_a_burst_against_a_quiet_day_fires() -> None:
    minute = (T0 // MINUTE_MS) * MINUTE_MS
    rows = [seen(i, citizen=i, start_ms=minute + i, end_ms=minute + 600_000) for i in range(1, 21)]
    out = fired([r.seq for r in rows], rows, T)
    assert [s for s in out if Reason.BURST in out[s]] == list(range(T.burst_records, 21))


def test_identical_trips_fire_from_the_second() -> None:
    rows = [
        seen(i, amount_milli=4_321, end_ms=T0 + i * HOUR + 777_000, device="p") for i in (1, 2, 3)
    ]
    out = fired([1, 2, 3], rows, T)
    assert list(out) == [2, 3]
    assert out[3][Reason.REPEATED_TRIP] == (3, None)
    # A transit card's taps (no device) between the same two stations are not compared.
    taps = [r._replace(device=None) for r in rows]
    assert fired([1, 2, 3], taps, T) == {}


def test_devices_are_compared_within_their_platform() -> None:
    rows = [seen(i, citizen=i, device="d", platform=i % 2) for i in range(1, 7)]
    assert fired([r.seq for r in rows], rows, T) == {}


def test_every_signal_explains_itself() -> None:
    for code, sig in SIGNALS.items():
        assert sig.doc
        assert code.value
        assert sig.explain((3, 4), T)


# --- the SQL rendering against the statement ---------------------------------------------------

_DEVICES = st.sampled_from([None, "d1", "d2", "d3", "d4", "d5"])
_PLACES = st.sampled_from(
    [(39.90, 116.40), (39.95, 116.30), (31.23, 121.47), (22.54, 114.06), (None, None)]
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Seen], list[int]]:
    n = draw(st.integers(2, 40))
    minute = (T0 // MINUTE_MS) * MINUTE_MS
    rows = []
    for seq in range(1, n + 1):
        trip = draw(st.booleans())
        start = minute + draw(st.integers(0, 30)) * draw(st.sampled_from([1, 60_000, HOUR]))
        o, d = draw(_PLACES), draw(_PLACES)
        rows.append(
            Seen(
                seq=seq,
                platform=draw(st.sampled_from([1, 1, 2])),
                citizen=draw(st.integers(1, 5)),
                device=draw(_DEVICES),
                scene=draw(st.sampled_from(["walk", "metro"])) if trip else "recycling",
                region=draw(st.sampled_from(["110105", "440300"])),
                start_ms=start,
                end_ms=start + draw(st.sampled_from([600_000, 1_200_000])) if trip else None,
                day=(start + 28_800_000) // 86_400_000,
                amount_milli=draw(st.sampled_from([1_500, 2_000, 30_000])),
                origin_lat=o[0] if trip else None,
                origin_lon=o[1] if trip else None,
                dest_lat=d[0] if trip else None,
                dest_lon=d[1] if trip else None,
            )
        )
    first_in_chunk = draw(st.integers(1, n))
    judged = [r.seq for r in rows if r.seq >= first_in_chunk and r.platform == 1]
    return rows, judged


TIGHT = replace(
    T,
    device_citizens=2,
    citizen_devices=2,
    burst_records=2,
    burst_ratio=1,
    min_jump_m=10_000,
    volume={"walk": VolumeCeiling(2, 3_000), "recycling": VolumeCeiling(1, 31_000)},
)


def _tables(rows: list[Seen], judged: list[int]) -> tuple[pa.Table, pa.Table]:
    first = min(judged)
    chunk = [r for r in rows if r.seq >= first]
    stored = [r for r in rows if r.seq < first]
    seen_rows = [
        {
            "seq": r.seq,
            "in_chunk": r.seq >= first,
            "judged": r.seq in judged,
            "platform_id": r.platform,
            "citizen": r.citizen,
            "device": r.device,
            "scene": r.scene,
            "region": r.region,
            "start_ms": r.start_ms,
            "end_ms": r.end_ms,
            "day": r.day,
            "amount_milli": r.amount_milli,
            "origin_lat": r.origin_lat,
            "origin_lon": r.origin_lon,
            "dest_lat": r.dest_lat,
            "dest_lon": r.dest_lon,
        }
        for r in rows
    ]
    # The chunk is one platform's: the stored minute counts are that platform's.
    counts: dict[tuple[object, str, str, int], int] = {}
    for r in stored:
        key = (r.platform, r.region, r.scene, r.start_ms // MINUTE_MS)
        counts[key] = counts.get(key, 0) + 1
    history = pa.table(
        {
            "platform_id": pa.array([k[0] for k in counts], pa.int64()),
            "region": pa.array([k[1] for k in counts], pa.string()),
            "scene": pa.array([k[2] for k in counts], pa.string()),
            "minute": pa.array([k[3] for k in counts], pa.int64()),
            "n": pa.array(list(counts.values()), pa.int64()),
        }
    )
    assert all(r.platform == 1 for r in chunk if r.seq in judged)
    return pa.Table.from_pylist(seen_rows, schema=batch.SEEN), history


@pytest.mark.parametrize("thresholds", [T, TIGHT], ids=["shipped", "tight"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=histories())
def test_the_sql_rendering_is_the_statement(
    thresholds: Thresholds, case: tuple[list[Seen], list[int]]
) -> None:
    rows, judged = case
    if not judged:
        return
    seen_table, history = _tables(rows, judged)
    stated = fired(judged, rows, thresholds)
    con = duckdb.connect()
    saved = batch.STATEMENT_UP_TO
    try:
        batch.STATEMENT_UP_TO = -1
        rendered = batch.judge(con, seen_table, history, thresholds)
        batch.STATEMENT_UP_TO = 10**9
        by_statement = batch.judge(con, seen_table, history, thresholds)
    finally:
        batch.STATEMENT_UP_TO = saved
    assert rendered == stated
    assert by_statement == stated
