"""The fraud signals of a settled chunk, set-based: `domain.signals` rendered in DuckDB.

The input is `seen` (the chunk's valid records and the stored ones of its citizens and devices
within the signals' windows) and `burst_history` (the platform's stored records counted per
region, scene and minute). Coordinates and devices are read out of each record's `extra` JSON,
as intake wrote it. Small inputs are judged by the statement itself (`domain.signals.fired`),
larger ones by one SQL query; tests hold both to the statement.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import duckdb
import pyarrow as pa

from puhui.domain.evidence import Thresholds
from puhui.domain.reasons import Reason
from puhui.domain.signals import SIGNALS, Measured, Seen, fired, sql_of_all

SEEN = pa.schema(
    [
        ("seq", pa.int64()),
        ("in_chunk", pa.bool_()),
        ("judged", pa.bool_()),
        ("platform_id", pa.int64()),
        ("citizen", pa.int64()),
        ("device", pa.string()),
        ("scene", pa.string()),
        ("region", pa.string()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("day", pa.int64()),
        ("amount_milli", pa.int64()),
        ("origin_lat", pa.float64()),
        ("origin_lon", pa.float64()),
        ("dest_lat", pa.float64()),
        ("dest_lon", pa.float64()),
    ]
)

# Up to this many rows (chunk and history) the statement judges: DuckDB's fixed cost per query
# is larger than the statement's loops.
STATEMENT_UP_TO = 400

# The columns of `seen` from a table with `extra` (JSON of coordinates and device) in place of
# them; `day` is the China day number of the start.
_FROM_EXTRA = """
select seq, in_chunk, judged, platform_id, citizen,
    coalesce(device, json_extract_string(extra, '$.device')) as device,
    scene, region, start_ms, end_ms,
    (start_ms + 28800000) // 86400000 as day, amount_milli,
    try_cast(json_extract(extra, '$.origin_lat') as double) as origin_lat,
    try_cast(json_extract(extra, '$.origin_lon') as double) as origin_lon,
    try_cast(json_extract(extra, '$.dest_lat') as double) as dest_lat,
    try_cast(json_extract(extra, '$.dest_lon') as double) as dest_lon
from raw
"""


def seen_of(con: duckdb.DuckDBPyConnection, raw: pa.Table) -> pa.Table:
    """`seen` from rows with `extra` (and `device` when known, else read from `extra`)."""
    con.register("raw", raw)
    try:
        return con.sql(_FROM_EXTRA).to_arrow_table().cast(SEEN)
    finally:
        with suppress(duckdb.Error):
            con.unregister("raw")


def devices_of(con: duckdb.DuckDBPyConnection, extra: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The device of each record, read out of its `extra` JSON (null where none was sent)."""
    if extra.null_count == len(extra):
        return pa.nulls(len(extra), pa.string())
    con.register("extras", pa.table({"extra": extra}))
    try:
        found = con.sql("select json_extract_string(extra, '$.device') as d from extras")
        return found.to_arrow_table().column("d").combine_chunks().cast(pa.string())
    finally:
        with suppress(duckdb.Error):
            con.unregister("extras")


def judge(
    con: duckdb.DuckDBPyConnection, seen: pa.Table, burst_history: pa.Table, t: Thresholds
) -> dict[int, dict[Reason, Measured]]:
    """The signals that fire on each judged record of `seen`, with their measurements."""
    if seen.num_rows <= STATEMENT_UP_TO:
        return by_the_statement(seen, burst_history, t)
    con.register("seen", seen)
    con.register("burst_history", burst_history)
    try:
        out: dict[int, dict[Reason, Measured]] = {}
        for code, seq, v1, v2 in con.execute(sql_of_all(t)).fetchall():
            out.setdefault(int(seq), {})[Reason(code)] = (int(v1), None if v2 is None else int(v2))
        return out
    finally:
        for name in ("seen", "burst_history"):
            with suppress(duckdb.Error):
                con.unregister(name)


def by_the_statement(
    seen: pa.Table, burst_history: pa.Table, t: Thresholds
) -> dict[int, dict[Reason, Measured]]:
    """The statement over `seen`; bursts over the chunk's records and the stored minute counts
    (as stand-in records: the stored records in `seen` are only those of the chunk's citizens
    and devices)."""
    listed = seen.to_pylist()
    rows = [Seen(*_values(r)) for r in listed]
    judged = [r["seq"] for r in listed if r["judged"]]
    others = [code for code in SIGNALS if code is not Reason.BURST]
    out = fired(judged, rows, t, only=others)
    stand_ins = [
        Seen(
            0,
            h["platform_id"],
            None,
            None,
            h["scene"],
            h["region"],
            h["minute"] * 60_000,
            None,
            -1,
            0,
        )
        for h in burst_history.to_pylist()
        for _ in range(h["n"])
    ]
    chunk = [row for row, r in zip(rows, listed, strict=True) if r["in_chunk"]]
    for seq, found in fired(judged, [*stand_ins, *chunk], t, only=[Reason.BURST]).items():
        out.setdefault(seq, {}).update(found)
    return {
        seq: dict(sorted(found.items(), key=lambda x: _ORDER[x[0]])) for seq, found in out.items()
    }


_ORDER = {code: i for i, code in enumerate(SIGNALS)}


def _values(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["seq"],
        r["platform_id"],
        r["citizen"],
        r["device"],
        r["scene"],
        r["region"],
        r["start_ms"],
        r["end_ms"],
        r["day"],
        r["amount_milli"],
        r["origin_lat"],
        r["origin_lon"],
        r["dest_lat"],
        r["dest_lon"],
    )
