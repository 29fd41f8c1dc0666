"""One bad record is rejected alone: inputs a reader or a database could choke on (an amount
too large or too small, a timestamp out of range, a NUL character, a JSON object where a string
belongs, a line that is not UTF-8 or is too long) each get one rejected receipt with a stable
reason, through every file format and over the API, on both databases; every other record is
credited and the ledger proves itself."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from puhui.adapters.batch import reader
from puhui.adapters.batch.reader import FIELDS, read_chunks
from puhui.adapters.sql import tables as t
from puhui.bootstrap import App
from puhui.domain.errors import InputError
from puhui.domain.scenes import MAX_DEVICE
from puhui.service import admin, ingest, ledger, queries
from tests.builders import event, trip, write_csv, write_jsonl, write_parquet
from tests.integration.conftest import Platform

# (what the platform sent, the reason its receipt must carry); `record_id` "bad" unless the
# record_id itself is the bad value.
TEXT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "quantity 1e15": (event("bad", quantity="1e15"), "ill_typed_field"),
    "quantity 1e17": (event("bad", quantity="1e17"), "ill_typed_field"),
    "quantity 1e308": (event("bad", quantity="1e308"), "ill_typed_field"),
    "quantity 0.0001": (event("bad", quantity="0.0001"), "amount_too_small"),
    "distance 0.0004": (trip("bad", distance_km="0.0004"), "amount_too_small"),
    "start in year 1": (event("bad", start="0001-01-01T00:00:00+08:00"), "ill_typed_field"),
    "offset +24:00": (event("bad", start="2026-10-02T10:00:00+24:00"), "ill_typed_field"),
    "offset +99:99": (event("bad", start="2026-10-02T10:00:00+99:99"), "ill_typed_field"),
    "NUL in record_id": (event("bad\x00id"), "ill_typed_record_id"),
    "NUL in ref": (event("bad", ref="RC-\x001"), "ill_typed_field"),
    "NUL in device": (trip("bad", device="d\x00"), "ill_typed_field"),
}
# Values only JSON (and the API) can carry.
JSON_CASES: dict[str, tuple[dict[str, Any], str]] = {
    **TEXT_CASES,
    "quantity 1e40": (event("bad", quantity=1e40), "ill_typed_field"),
    "object as record_id": (event({"id": 1}), "ill_typed_record_id"),
    "array as ref": (event("bad", ref=["RC-1"]), "ill_typed_field"),
    "object as quantity": (event("bad", quantity={"kg": 2}), "ill_typed_field"),
}

# A lone surrogate: JSON can write one (`\\ud800`), UTF-8 cannot. Over the API the record is
# refused; in a JSON Lines file the line is not read (`malformed_row`).
API_CASES = {
    **JSON_CASES,
    "lone surrogate in record_id": (event("s\ud800"), "ill_typed_record_id"),
    "lone surrogate in ref": (event("bad", ref="RC-\udfff"), "ill_typed_field"),
}


def _good(n: int) -> list[dict[str, Any]]:
    """Records of distinct citizens, each credited."""
    return [event(f"g{i}", subject=f"1390000{i:04d}", ref=f"RC-{i}") for i in range(n)]


def _check(app: App, platform: str, expected_reason: str, report: ingest.IngestReport) -> None:
    assert report.records == 41
    assert report.by_status == {"credited": 40, "rejected": 1}
    assert report.by_reason[expected_reason] == 1
    assert ledger.verify(app) == []
    stored = {r["record_id"]: r for r in queries.receipts(app, platform)}
    assert all(stored[f"g{i}"]["status"] == "credited" for i in range(40))


@pytest.fixture
def amap_app(app: App) -> App:
    admin.add_platform(app, "amap")
    return app


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_json_lines(amap_app: App, tmp_path: Path, case: str) -> None:
    bad, reason = JSON_CASES[case]
    good = _good(40)
    path = write_jsonl(tmp_path / "f.jsonl", [*good[:20], bad, *good[20:]])
    _check(amap_app, "amap", reason, ingest.ingest_files(amap_app, "amap", [path]))


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
@pytest.mark.parametrize(("suffix", "write"), [("csv", write_csv), ("parquet", write_parquet)])
def test_csv_and_parquet(
    amap_app: App, tmp_path: Path, case: str, suffix: str, write: Callable[..., Path]
) -> None:
    bad, reason = TEXT_CASES[case]
    good = _good(40)
    path = write(tmp_path / f"f.{suffix}", [*good[:20], bad, *good[20:]])
    _check(amap_app, "amap", reason, ingest.ingest_files(amap_app, "amap", [path]))


@pytest.mark.parametrize("kind", ["list", "struct", "map"])
def test_a_parquet_column_of_nested_values(amap_app: App, tmp_path: Path, kind: str) -> None:
    """A list, struct or map column: the records that fill it are ill-typed, the others go on."""
    good = _good(40)
    rows = [*good[:20], event("bad"), *good[20:]]
    columns: dict[str, pa.Array] = {
        f: pa.array([None if r.get(f) is None else str(r[f]) for r in rows], pa.string())
        for f in FIELDS
        if f != "device"
    }
    value: Any = {"list": ["d-1"], "struct": {"id": "d-1"}, "map": [("id", "d-1")]}[kind]
    typed = {
        "list": pa.list_(pa.string()),
        "struct": pa.struct([("id", pa.string())]),
        "map": pa.map_(pa.string(), pa.string()),
    }[kind]
    columns["device"] = pa.array([value if r["record_id"] == "bad" else None for r in rows], typed)
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table(columns), path)
    _check(amap_app, "amap", "ill_typed_field", ingest.ingest_files(amap_app, "amap", [path]))


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_over_the_api(amap: Platform, case: str) -> None:
    bad, reason = API_CASES[case]
    good = _good(40)
    response = amap.submit([*good[:20], bad, *good[20:]])
    assert response.status_code == 200, response.text
    receipts = response.json()["receipts"]
    assert [r["status"] for r in receipts] == ["credited"] * 20 + ["rejected"] + ["credited"] * 20
    assert receipts[20]["reason"] == reason
    assert receipts[20]["reduction_g"] == 0


def test_a_string_that_looks_like_json_is_a_string(amap_app: App, tmp_path: Path) -> None:
    records = [
        event("{x}", ref="[RC-1]"),
        event("e2", subject="13900001111", ref="{RC-2}", device='{"d": 1}'),
    ]
    path = write_jsonl(tmp_path / "f.jsonl", records)
    report = ingest.ingest_files(amap_app, "amap", [path])
    assert report.by_status == {"credited": 2}


def _lines_file(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _json_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def _csv_line(record: dict[str, Any]) -> str:
    out = io.StringIO()
    # (The writer's own line end: only with it does it quote a cell holding a line break.)
    csv.writer(out).writerow([record.get(f, "") for f in FIELDS])
    return out.getvalue().removesuffix("\r\n")


def _file(path: Path, good: list[dict[str, Any]], bad: bytes | dict[str, Any]) -> Path:
    """A JSON Lines or CSV file (by `path`'s suffix) of `good` with `bad` in the middle: a
    record, or a line's bytes as they are."""
    if path.suffix == ".csv":
        header, line = ",".join(FIELDS).encode(), lambda r: _csv_line(r).encode()
    else:
        header, line = None, _json_line
    bad_line = bad if isinstance(bad, bytes) else line(bad)
    lines = [line(r) for r in good[:20]] + [bad_line] + [line(r) for r in good[20:]]
    return _lines_file(path, [header, *lines] if header else lines)


def _gbk(fmt: str) -> bytes:
    record = event("gbk", ref="回收单")
    text = _csv_line(record) if fmt == "csv" else json.dumps(record, ensure_ascii=False)
    return text.encode("gbk")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("chunk", [3, 100_000])
def test_a_line_that_is_invalid_encoding_is_one_record_refused(
    amap_app: App, tmp_path: Path, chunk: int, fmt: str
) -> None:
    """Read in chunks smaller than the file too: the lines before it are read once, the lines
    after it are numbered on."""
    path = _file(tmp_path / f"f.{fmt}", _good(40), _gbk(fmt))
    chunks = list(read_chunks(path, chunk))
    rows = [r for c in chunks for r in c.column("row").to_pylist()]
    assert rows == list(range(1, 42))
    malformed = [m for c in chunks for m in c.column("malformed").to_pylist()]
    assert malformed == [None] * 20 + ["invalid_encoding"] + [None] * 20
    _check(amap_app, "amap", "invalid_encoding", ingest.ingest_files(amap_app, "amap", [path]))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_line_longer_than_the_limit_is_one_record_refused(
    amap_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(reader, "MAX_LINE", 4096)
    path = _file(tmp_path / f"f.{fmt}", _good(40), event("long", device="x" * 5000))
    _check(amap_app, "amap", "row_too_long", ingest.ingest_files(amap_app, "amap", [path]))


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("opens a quoted cell", b'long,"' + b"x" * 5000),
        ("inside a quoted cell", b"x" * 5000),
        ("closes a quoted cell", b"x" * 5000 + b'",rest'),
    ],
)
def test_a_csv_line_too_long_in_a_quoted_cell_refuses_its_row_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, line: bytes
) -> None:
    """The row the line belongs to is refused, and the next row starts where the file's does:
    the placeholder of the line opens or closes the quoted cell as the line did."""
    monkeypatch.setattr(reader, "MAX_LINE", 4096)
    lines = {
        "opens a quoted cell": [line, b'second line",x'],
        "inside a quoted cell": [b'long,"first line', line, b'last line"'],
        "closes a quoted cell": [b'long,"first line', line],
    }[where]
    path = _lines_file(tmp_path / "f.csv", [b"record_id,ref", b"a,R1", *lines, b"c,R3"])
    rows = [r for c in read_chunks(path) for r in c.select(["row", "malformed", "ref"]).to_pylist()]
    assert rows == [
        {"row": 1, "malformed": None, "ref": "R1"},
        {"row": 2, "malformed": "row_too_long", "ref": None},
        {"row": 3, "malformed": None, "ref": "R3"},
    ]


def test_a_csv_row_of_many_lines_longer_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line short, the quoted cell they make up is not."""
    monkeypatch.setattr(reader, "MAX_LINE", 4096)
    cell = "\n".join(["y" * 100] * 50)
    path = tmp_path / "f.csv"
    path.write_text(f'record_id,ref\na,R1\nb,"{cell}"\nc,R3\n')
    malformed = [m for c in read_chunks(path) for m in c.column("malformed").to_pylist()]
    assert malformed == [None, "row_too_long", None]


def test_a_csv_row_the_grammar_cannot_read_is_one_record_refused(tmp_path: Path) -> None:
    """A bare carriage return in an unquoted cell: that row is refused, not the file."""
    path = tmp_path / "f.csv"
    path.write_bytes(b"record_id,ref\na,R1\nb,R\r2\nc,R3\n")
    rows = [r for c in read_chunks(path) for r in c.select(["malformed", "ref"]).to_pylist()]
    assert rows == [
        {"malformed": None, "ref": "R1"},
        {"malformed": "malformed_row", "ref": None},
        {"malformed": None, "ref": "R3"},
    ]


@pytest.mark.parametrize(
    ("header", "why"),
    [("回收,单".encode("gbk"), "not UTF-8"), (b"x" * 5000, "longer than 4096 bytes")],
)
def test_a_csv_header_that_cannot_be_read_refuses_the_file_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: bytes, why: str
) -> None:
    monkeypatch.setattr(reader, "MAX_LINE", 4096)
    path = _lines_file(tmp_path / "f.csv", [header, b"a,R1"])
    with pytest.raises(InputError, match=f"f.csv: line 1: the CSV header is {why}"):
        list(read_chunks(path))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_file_whose_only_line_is_40_mb_is_one_record_refused(
    amap_app: App, tmp_path: Path, fmt: str
) -> None:
    big = event("big", device="x" * 40 * 2**20)
    if fmt == "csv":
        path = _lines_file(tmp_path / "f.csv", [",".join(FIELDS).encode(), _csv_line(big).encode()])
    else:
        path = _lines_file(tmp_path / "f.jsonl", [_json_line(big)])
    report = ingest.ingest_files(amap_app, "amap", [path])
    assert report.records == 1
    assert report.by_reason == {"row_too_long": 1}


def test_records_read_before_a_line_that_is_invalid_encoding_are_read_once(tmp_path: Path) -> None:
    """DuckDB's reader has handed out chunks before it meets the line: the file is read on
    from there, line by line, numbered on."""
    # Some 50 MB before it: DuckDB hands out most of them first.
    good = [_json_line(event(f"g{i}", device="d" * 200)) for i in range(200_000)]
    bad = "回收".encode("gbk")
    path = _lines_file(tmp_path / "f.jsonl", [*good, bad, *good[:10]])
    chunks = list(read_chunks(path, 5_000))
    rows = [r for c in chunks for r in c.column("row").to_pylist()]
    assert rows == list(range(1, 200_012))
    ids = [i for c in chunks for i in c.column("record_id").to_pylist()]
    assert ids == [f"g{i}" for i in range(200_000)] + [None] + [f"g{i}" for i in range(10)]
    malformed = [m for c in chunks for m in c.column("malformed").to_pylist()]
    assert malformed[200_000] == "invalid_encoding"
    assert malformed.count(None) == 200_010


def test_a_json_lines_line_with_a_lone_surrogate_is_not_read(amap_app: App, tmp_path: Path) -> None:
    good = [json.dumps(r).encode() for r in _good(40)]
    bad = json.dumps(event("s\ud800")).encode()  # written as the escape \\ud800
    path = _lines_file(tmp_path / "f.jsonl", [*good[:20], bad, *good[20:]])
    _check(amap_app, "amap", "malformed_row", ingest.ingest_files(amap_app, "amap", [path]))


def _batches(app: App) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(t.batches.c.source).order_by(t.batches.c.id)).scalars())


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.parquet", b"PAR1 not Parquet"),
        ("bad.csv", "回收,单\n".encode("gbk")),
        ("bad.xlsx", b"PK"),
    ],
)
def test_a_file_that_cannot_be_opened_leaves_no_batch_behind(
    amap_app: App, tmp_path: Path, name: str, content: bytes
) -> None:
    """The files before it are settled; the refusal names it; no empty batch is left for it."""
    good = write_jsonl(tmp_path / "good.jsonl", _good(3))
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(InputError, match=name):
        ingest.ingest_files(amap_app, "amap", [good, bad])
    assert _batches(amap_app) == ["good.jsonl"]
    assert ledger.verify(amap_app) == []


def test_a_damaged_parquet_page_refuses_the_rest_of_the_file_by_row(
    amap_app: App, tmp_path: Path
) -> None:
    """The rows before the damaged page are settled, and the refusal says up to which row;
    sent again, they are replayed, not credited twice."""
    path = write_parquet(tmp_path / "f.parquet", _good(400))
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=100, compression="none")
    column = pq.ParquetFile(path).metadata.row_group(2).column(0)
    data = bytearray(path.read_bytes())
    for i in range(column.data_page_offset, column.data_page_offset + 16):
        data[i] ^= 0x5A  # the page header of the third row group
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"f\.parquet: unreadable Parquet from row 201 on") as e:
        ingest.ingest_files(amap_app, "amap", [path], chunk_size=100)
    assert "rows 1 to 200 were read" in str(e.value)
    assert "\n" not in str(e.value)
    assert len(list(queries.receipts(amap_app, "amap"))) == 200
    assert ledger.verify(amap_app) == []
    pq.write_table(table, path)
    again = ingest.ingest_files(amap_app, "amap", [path])
    assert (again.replays, again.transfers, again.by_status["credited"]) == (200, 200, 400)


def test_a_device_of_any_length_is_stored_within_its_bound(app: App, amap: Platform) -> None:
    """A device id longer than MAX_DEVICE characters (here 6 MiB, sent in one API request) is
    kept as its SHA-256, so equal devices still compare equal; a shorter one as it is."""
    long = "d" * 6 * 2**20
    records = [
        trip("t1", device=long),
        trip("t2", device=long, subject="13900139000"),
        trip("t3", device="x" * MAX_DEVICE, subject="13700137000"),
    ]
    response = amap.submit(records)
    assert response.status_code == 200, response.text[:300]
    assert [r["status"] for r in response.json()["receipts"]] == ["credited"] * 3
    with app.engine.connect() as conn:
        rows = conn.execute(select(t.records.c.record_id, t.records.c.extra)).all()
    devices = {rid: json.loads(extra)["device"] for rid, extra in rows}
    digest = "sha256:" + hashlib.sha256(long.encode()).hexdigest()
    assert devices == {"t1": digest, "t2": digest, "t3": "x" * MAX_DEVICE}
