"""Hostile records mixed with good ones, generated, on SQLite and PostgreSQL: any JSON value in
any field (objects, arrays, huge and tiny numbers, NULs, lone surrogates, timestamps out of
range), items that are not objects, and lines of any bytes. Through JSON Lines, CSV, Parquet
and the API, ingest never raises and the server never answers 500; every record is answered
exactly once, in order; every good record is credited; the ledger proves itself.

Each example's records are new (their ids and citizens are numbered on), so one database
serves every example of a test."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puhui.adapters.batch.reader import FIELDS
from puhui.bootstrap import App
from puhui.service import admin, ingest, ledger
from tests.builders import event, trip
from tests.integration.conftest import Platform

EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_numbers = itertools.count(1)

# Values that reached a reader's or a database's limits before.
TRICKY: list[Any] = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "1e17", "1e308", "-1e40", "0.0001", "1e-400",
    "NaN", "Infinity", "0001-01-01T00:00:00+08:00", "2026-10-01T08:00:00+24:00",
    "2026-10-01T08:00:00+99:99", "2026-02-30T08:00:00Z", "²", "١٢", "İ", "x" * 300, "回收单",
    10**40, -(10**19), 2**63, 1e308, 5e-324, -0.0, True, False, None, [], {}, [1, [2]],
    {"km": 5}, "\r", "\t", '"', "\\", "\u2028",
]  # fmt: skip
_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, categories=None), max_size=20)
    | st.sampled_from(TRICKY)
)
JSON_VALUE = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=4,
)
NAMES = st.sampled_from([*FIELDS, "extra"])


def _good(n: int, day: int) -> dict[str, Any]:
    """A record credited whatever else is sent: its own id, citizen and ref."""
    if n % 2:
        return event(f"good-{n}", subject=f"139{n:08d}", ref=f"G-{n}")
    return trip(
        f"good-{n}",
        subject=f"139{n:08d}",
        start=f"2026-10-{day:02d}T08:00:00+08:00",
        end=f"2026-10-{day:02d}T08:20:00+08:00",
    )


@st.composite
def hostile_record(draw: st.DrawFn, values: st.SearchStrategy[Any] = JSON_VALUE) -> Any:
    """A good-looking record of another citizen with up to four fields replaced by any value,
    or, now and then, a JSON value that is not an object at all."""
    n = next(_numbers)
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    base = event if draw(st.booleans()) else trip
    record: dict[str, Any] = base(f"h-{n}", subject=f"137{n:08d}", ref=f"H-{n}")
    record.update(draw(st.dictionaries(NAMES, values, max_size=4)))
    if isinstance(record.get("record_id"), str) and record["record_id"].startswith("good"):
        record["record_id"] = "h" + record["record_id"]
    return record


@st.composite
def mixed(draw: st.DrawFn, hostile: st.SearchStrategy[Any]) -> list[tuple[str, Any]]:
    """A good record first, then good and hostile ones in any order: ("good", record) or
    ("hostile", item)."""
    day = draw(st.integers(1, 28))
    items: list[tuple[str, Any]] = [("good", _good(next(_numbers), day))]
    for kind in draw(st.lists(st.sampled_from(["good", "hostile"]), min_size=1, max_size=12)):
        item = _good(next(_numbers), day) if kind == "good" else draw(hostile)
        items.append((kind, item))
    return items


@pytest.fixture
def amap_app(app: App) -> App:
    admin.add_platform(app, "amap")
    return app


def _answered(app: App, path: Path, good_rows: list[int], rows: int, good: list[str]) -> None:
    """Ingest a file: one receipt per row, in order; every good record credited; the ledger
    sound."""
    receipts: list[pa.Table] = []
    report = ingest.ingest_files(app, "amap", [path], sink=receipts.append, chunk_size=7)
    table = pa.concat_tables(receipts) if receipts else None
    assert report.records == rows
    assert table is not None
    assert table.column("row").to_pylist() == list(range(1, rows + 1))
    got = table.to_pylist()
    assert [(got[r - 1]["record_id"], got[r - 1]["status"]) for r in good_rows] == [
        (g, "credited") for g in good
    ]
    assert ledger.verify(app) == []


def _line_of(item: Any, ascii_only: bool) -> bytes:
    """JSON text of an item; written without escapes, a lone surrogate is not UTF-8."""
    text = json.dumps(item, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


@EXAMPLES
@given(
    items=mixed(hostile_record() | st.binary(max_size=80).map(lambda b: b.replace(b"\n", b""))),
    ascii_only=st.booleans(),
)
def test_json_lines_of_anything(
    amap_app: App, tmp_path: Path, items: Any, ascii_only: bool
) -> None:
    lines = [item if isinstance(item, bytes) else _line_of(item, ascii_only) for _, item in items]
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    # A line that holds only spaces and carriage returns is blank: it is no record.
    kept = [
        (kind, item) for (kind, item), line in zip(items, lines, strict=True) if line.strip(b" \r")
    ]
    good_rows = [i + 1 for i, (kind, _) in enumerate(kept) if kind == "good"]
    good = [item["record_id"] for kind, item in kept if kind == "good"]
    _answered(amap_app, path, good_rows, len(kept), good)


def _csv_row(item: Any) -> str:
    """A CSV row of an item (a value that is not an object fills `record_id`); values as JSON
    writes them, strings as they are."""
    record = item if isinstance(item, dict) else {"record_id": item}
    cells = [
        v if isinstance(v, str) else json.dumps(v) for v in (record.get(f, "") for f in FIELDS)
    ]
    out = io.StringIO()
    # (The writer's own line end: only with it does it quote a cell holding a line break.)
    csv.writer(out).writerow(cells)
    return out.getvalue().removesuffix("\r\n")


def _blank_csv_row(text: str) -> bool:
    cells = next(csv.reader([text + "\n"]), [])
    return all(not c.strip() for c in cells)


@EXAMPLES
@given(
    items=mixed(
        hostile_record()
        # Bytes of a line that is no CSV row of its own (no quote, no line break).
        | st.binary(min_size=1, max_size=80).filter(lambda b: not {34, 10, 13} & set(b))
    )
)
def test_csv_of_anything(amap_app: App, tmp_path: Path, items: Any) -> None:
    lines: list[bytes] = []
    kept: list[str] = []
    for kind, item in items:
        line = item if isinstance(item, bytes) else _csv_row(item).encode("utf-8", "surrogatepass")
        lines.append(line)
        try:
            blank = _blank_csv_row(line.decode())
        except UnicodeDecodeError:  # invalid_encoding, never blank
            blank = False
        except csv.Error:  # malformed_row, never blank
            blank = False
        if not blank:
            kept.append(kind if kind == "good" else "")
    path = tmp_path / "f.csv"
    path.write_bytes(",".join(FIELDS).encode() + b"\n" + b"\n".join(lines) + b"\n")
    good_rows = [i + 1 for i, kind in enumerate(kept) if kind == "good"]
    good = [item["record_id"] for kind, item in items if kind == "good"]
    _answered(amap_app, path, good_rows, len(kept), good)


_PARQUET_TEXT = st.text(st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    # Parquet's strings are UTF-8: every tricky text but a lone surrogate.
    [t for t in TRICKY if isinstance(t, str) and not any("\ud800" <= c <= "\udfff" for c in t)]
)


@EXAMPLES
@given(items=mixed(hostile_record(_PARQUET_TEXT | st.none())))
def test_parquet_of_anything(amap_app: App, tmp_path: Path, items: Any) -> None:
    records = [item if isinstance(item, dict) else {"record_id": item} for _, item in items]
    columns = {
        f: pa.array([None if r.get(f) is None else str(r[f]) for r in records], pa.string())
        for f in FIELDS
    }
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table(columns), path)
    good_rows = [i + 1 for i, (kind, _) in enumerate(items) if kind == "good"]
    good = [item["record_id"] for kind, item in items if kind == "good"]
    _answered(amap_app, path, good_rows, len(items), good)


@EXAMPLES
@given(items=mixed(hostile_record()))
def test_the_api_answers_anything(app: App, amap: Platform, items: Any) -> None:
    response = amap.submit([item for _, item in items])
    assert response.status_code == 200, response.text[:500]
    receipts = response.json()["receipts"]
    assert len(receipts) == len(items)
    for (kind, item), receipt in zip(items, receipts, strict=True):
        if kind == "good":
            assert (receipt["record_id"], receipt["status"]) == (item["record_id"], "credited")
    assert ledger.verify(app) == []
