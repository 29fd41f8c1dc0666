"""Worked examples of reading activity-record files: one shape for every format, in chunks."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from puhui.adapters.batch.reader import FIELDS, SCHEMA, read_chunks
from puhui.domain.errors import InputError
from tests.builders import event, trip, write_csv, write_jsonl, write_parquet

Writer = Callable[[Path, list[dict[str, Any]]], Path]
WRITERS: dict[str, Writer] = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}

RECORDS = [
    trip("t1"),
    trip("t2", distance_km="0.9999", ref=" Tap-9 ", origin_lat="39.9", origin_lon="116.4"),
    event("e1"),
    event("e2", device="dev-1", material=None),
]


def read(path: Path, chunk_size: int = 1000) -> list[dict[str, Any]]:
    """Every row of a file, chunk after chunk."""
    return [row for chunk in read_chunks(path, chunk_size) for row in chunk.to_pylist()]


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_gives_the_same_rows(tmp_path: Path, fmt: str) -> None:
    """JSON Lines, CSV and Parquet of the same records read as identical rows of text."""
    rows = read(WRITERS[fmt](tmp_path / f"records.{fmt}", RECORDS))
    assert rows == read(write_jsonl(tmp_path / "reference.jsonl", RECORDS))
    assert [r["row"] for r in rows] == [1, 2, 3, 4]
    assert [r["record_id"] for r in rows] == ["t1", "t2", "e1", "e2"]
    assert rows[0]["distance_km"] == "5"
    assert rows[1]["distance_km"] == "0.9999"
    assert rows[1]["ref"] == " Tap-9 "  # trimming and case folding belong to validation
    assert rows[2]["quantity"] == "2.5"
    assert rows[3]["material"] is None
    assert all(r["malformed"] is None for r in rows)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_chunk_has_the_same_schema(tmp_path: Path, fmt: str) -> None:
    """`row`, `malformed`, then one nullable text column per field of the spec."""
    (chunk,) = list(read_chunks(WRITERS[fmt](tmp_path / f"records.{fmt}", RECORDS)))
    assert chunk.schema == SCHEMA
    assert chunk.column_names == ["row", "malformed", *FIELDS]


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    """Extra fields a platform sends do not reach the record."""
    path = write_jsonl(tmp_path / "a.jsonl", [trip("t1", colour="green", score=3)])
    (row,) = read(path)
    assert "colour" not in row
    assert row["record_id"] == "t1"


def test_a_missing_column_is_null_in_every_format(tmp_path: Path) -> None:
    """A Parquet file without a `ref` column reads as if every ref were empty."""
    pq.write_table(pa.table({"record_id": ["a"], "scene": ["bus"]}), tmp_path / "a.parquet")
    (row,) = read(tmp_path / "a.parquet")
    assert (row["record_id"], row["scene"], row["ref"], row["platform"]) == ("a", "bus", None, None)


def test_json_numbers_and_strings_read_as_the_same_text(tmp_path: Path) -> None:
    """`"distance_km": 5` and `"distance_km": "5"` are one value."""
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"record_id": "a", "distance_km": 5}\n{"record_id": "b", "distance_km": "5"}\n'
    )
    assert [r["distance_km"] for r in read(path)] == ["5", "5"]


def test_typed_parquet_columns_read_as_text(tmp_path: Path) -> None:
    """Numbers become their text; zoned timestamps become RFC 3339 in UTC with a `Z`."""
    table = pa.table(
        {
            "record_id": ["a"],
            "distance_km": pa.array([0.9999]),
            "quantity": pa.array([3], pa.int64()),
            "start": pa.array(
                [datetime(2026, 10, 1, 0, 0, 5, tzinfo=UTC)], pa.timestamp("s", "UTC")
            ),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")
    (row,) = read(tmp_path / "a.parquet")
    assert (row["distance_km"], row["quantity"]) == ("0.9999", "3")
    assert row["start"].endswith("Z")
    assert datetime.fromisoformat(row["start"]) == datetime(2026, 10, 1, 0, 0, 5, tzinfo=UTC)


# Blank lines, malformed rows, empty cells -----------------------------------------------------


def test_blank_lines_of_json_lines_are_skipped(tmp_path: Path) -> None:
    """Empty and whitespace-only lines carry no record and get no receipt."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"record_id": "a"}\n\n   \n{"record_id": "b"}\n\n')
    assert [r["record_id"] for r in read(path)] == ["a", "b"]


def test_blank_lines_of_csv_are_skipped(tmp_path: Path) -> None:
    """Empty lines and rows of empty cells carry no record."""
    path = tmp_path / "a.csv"
    path.write_text("record_id,scene\na,bus\n\n,\nb,metro\n")
    rows = read(path)
    assert [r["record_id"] for r in rows] == ["a", "b"]
    assert [r["row"] for r in rows] == [1, 2]


def test_blank_lines_of_json_lines_do_not_count_in_row_numbers(tmp_path: Path) -> None:
    """Row numbers are positions among records, as in CSV: 1 and 2, not 1 and 3."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"record_id": "a"}\n\n{"record_id": "b"}\n')
    assert [r["row"] for r in read(path)] == [1, 2]


def test_a_line_that_is_not_a_json_object_is_malformed_and_reading_goes_on(
    tmp_path: Path,
) -> None:
    """Invalid JSON, an array, a string: each one `malformed_row`, the next line still read."""
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"record_id": "a"}\nnot json\n[1, 2]\n"text"\n{"record_id": "b"\n{"record_id": "c"}\n'
    )
    rows = read(path)
    assert [(r["row"], r["malformed"], r["record_id"]) for r in rows] == [
        (1, None, "a"),
        (2, "malformed_row", None),
        (3, "malformed_row", None),
        (4, "malformed_row", None),
        (5, "malformed_row", None),
        (6, None, "c"),
    ]


def test_a_csv_row_of_the_wrong_width_is_malformed(tmp_path: Path) -> None:
    """Too many or too few cells for the header: `malformed_row`, cells kept for the audit."""
    path = tmp_path / "a.csv"
    path.write_text("record_id,scene,ref\na,bus,R1\nb,bus,R2,extra\nc,bus\nd,metro,R4\n")
    rows = read(path)
    assert [(r["row"], r["malformed"], r["record_id"]) for r in rows] == [
        (1, None, "a"),
        (2, "malformed_row", "b"),
        (3, "malformed_row", "c"),
        (4, None, "d"),
    ]


def test_empty_csv_cells_are_null(tmp_path: Path) -> None:
    """An empty or blank cell is a missing field, as the spec says."""
    path = tmp_path / "a.csv"
    path.write_text("record_id,scene,ref,material\na,bus,,   \n")
    (row,) = read(path)
    assert (row["ref"], row["material"], row["quantity"]) == (None, None, None)


def test_empty_json_strings_are_null(tmp_path: Path) -> None:
    """`"ref": ""` and `"ref": null` are the same as no ref."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"record_id": "a", "ref": ""}\n{"record_id": "b", "ref": null}\n')
    assert [r["ref"] for r in read(path)] == [None, None]


def test_a_csv_header_may_carry_a_byte_order_mark(tmp_path: Path) -> None:
    """Spreadsheets on Windows write one; the first column is still `record_id`."""
    path = tmp_path / "a.csv"
    path.write_bytes("\ufeffrecord_id,scene\r\na,bus\r\n".encode())
    (row,) = read(path)
    assert (row["record_id"], row["scene"]) == ("a", "bus")


def test_a_csv_cell_may_hold_quotes_commas_and_line_breaks(tmp_path: Path) -> None:
    """Quoted cells are one field, and a quoted line break does not start a record."""
    path = tmp_path / "a.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["record_id", "ref"])
        writer.writerow(["a", 'INV, "no. 1"\nsecond line'])
        writer.writerow(["b", "R2"])
    rows = read(path)
    assert [(r["row"], r["ref"]) for r in rows] == [(1, 'INV, "no. 1"\nsecond line'), (2, "R2")]


@pytest.mark.parametrize(
    ("name", "content"), [("a.csv", ""), ("a.jsonl", ""), ("b.csv", "record_id\n")]
)
def test_a_file_without_records_yields_nothing(tmp_path: Path, name: str, content: str) -> None:
    """An empty file, or a CSV header alone, is zero records and no error."""
    path = tmp_path / name
    path.write_text(content)
    assert read(path) == []


# Chunks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_chunks_keep_the_row_numbers_of_the_file(tmp_path: Path, fmt: str) -> None:
    """Five records in chunks of two: 1–2, 3–4, 5."""
    records = [trip(f"t{i}") for i in range(5)]
    chunks = list(read_chunks(WRITERS[fmt](tmp_path / f"a.{fmt}", records), chunk_size=2))
    assert [c.column("row").to_pylist() for c in chunks] == [[1, 2], [3, 4], [5]]
    assert [r for c in chunks for r in c.column("record_id").to_pylist()] == [
        f"t{i}" for i in range(5)
    ]


def test_csv_row_numbers_continue_across_chunks_past_malformed_rows(tmp_path: Path) -> None:
    """A malformed row counts as a row; the next chunk starts after it."""
    path = tmp_path / "a.csv"
    path.write_text("record_id,scene\na,bus\nb,bus,x\nc,bus\n")
    chunks = list(read_chunks(path, chunk_size=2))
    assert [c.column("row").to_pylist() for c in chunks] == [[1, 2], [3]]
    assert chunks[0].column("malformed").to_pylist() == [None, "malformed_row"]


LINE = json.dumps(trip("r"), ensure_ascii=False)


def _big_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(LINE.replace('"r"', f'"r{i}"', 1) + "\n")
    return path


def _big_csv(path: Path, n: int) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["record_id", "scene", "region"])
        writer.writerows([f"r{i}", "bus", "110000"] for i in range(n))
    return path


def _big_parquet(path: Path, n: int) -> Path:
    ids = pa.array([f"r{i}" for i in range(n)])
    pq.write_table(pa.table({"record_id": ids}), path, row_group_size=20_000)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "make"),
    [("big.jsonl", _big_jsonl), ("big.csv", _big_csv), ("big.parquet", _big_parquet)],
)
def test_a_large_file_is_read_in_bounded_chunks(
    tmp_path: Path, name: str, make: Callable[[Path, int], Path]
) -> None:
    """300 000 records with chunks of 50 000: never more than a chunk in hand, none lost, and
    every chunk but the last full, so that a chunk is one transaction of the size asked for."""
    n, size = 300_000, 50_000
    path = make(tmp_path / name, n)
    chunks = read_chunks(path, chunk_size=size)
    first = next(chunks)
    assert 0 < first.num_rows <= size
    assert first.column("row")[0].as_py() == 1
    count, expected_row, largest = first.num_rows, first.num_rows + 1, first.num_rows
    sizes = [first.num_rows]
    for chunk in chunks:
        assert chunk.num_rows <= size
        sizes.append(chunk.num_rows)
        assert chunk.column("row")[0].as_py() == expected_row
        count += chunk.num_rows
        expected_row += chunk.num_rows
        largest = max(largest, chunk.num_rows)
    assert count == n
    assert largest <= size
    assert sizes == [size] * (n // size)


# Refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["records.txt", "records.xlsx", "records"])
def test_an_unknown_extension_is_refused(tmp_path: Path, name: str) -> None:
    """Only .jsonl, .csv and .parquet (and .ndjson, .json for JSON Lines) are read."""
    path = tmp_path / name
    path.write_text('{"record_id": "a"}\n')
    with pytest.raises(InputError, match="unknown format"):
        list(read_chunks(path))


def test_the_extension_is_not_case_sensitive(tmp_path: Path) -> None:
    """`RECORDS.JSONL` from a Windows share is JSON Lines."""
    path = write_jsonl(tmp_path / "RECORDS.JSONL", [trip("t1")])
    assert [r["record_id"] for r in read(path)] == ["t1"]


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    """Nothing to read is an input error, not an empty batch."""
    with pytest.raises(InputError, match="no such file"):
        list(read_chunks(tmp_path / "absent.jsonl"))


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    """A .parquet file that cannot be opened as Parquet is an input error."""
    path = tmp_path / "a.parquet"
    path.write_text("record_id\na\n")
    with pytest.raises(InputError, match="Parquet"):
        list(read_chunks(path))
