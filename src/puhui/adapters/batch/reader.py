"""Read activity-record files (JSON Lines, CSV, Parquet) as a stream of Arrow chunks.

Every chunk has the same shape whatever the format: `row` (the record's position in the file,
from 1, blank lines and the CSV header not counted, int64), `malformed` (a reason code when the
row could not be parsed at all, else null) and one nullable string column per field of
activity-record v1. Empty strings are null, as the spec says of empty CSV cells. Nothing is typed
or checked here: that is the validation step's job. A file is never read into memory whole.

A line of JSON Lines that is not UTF-8 (`invalid_encoding`) or is longer than MAX_LINE
(`row_too_long`, never held whole) is a row the reader could not read, as a line that is not a
JSON object is (`malformed_row`): one record refused, and the file goes on. So is a CSV row with
such a line, or longer than MAX_LINE in all, or that the CSV grammar refuses. A file that
cannot be read at all (a CSV header of such a line, a Parquet file or page that is damaged) is
refused by an `InputError` naming it and the line or row.

Every field of the spec holds a string or a number. A JSON object or array in a field (a
Parquet list, struct or map column), or a string with a lone surrogate (JSON can write one,
UTF-8 cannot), is read as its JSON text after `NOT_TEXT`, a NUL character, which no field may
hold: validation reports the field ill-typed, and the rest of the record, and of the file, goes
on.
"""

from __future__ import annotations

import csv
import json
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from puhui.domain.errors import InputError
from puhui.domain.intake import NUL
from puhui.domain.reasons import Reason
from puhui.domain.scenes import MAX_LINE

FIELDS: tuple[str, ...] = (
    "platform",
    "record_id",
    "subject",
    "scene",
    "region",
    "start",
    "end",
    "distance_km",
    "quantity",
    "material",
    "ref",
    "origin_lat",
    "origin_lon",
    "dest_lat",
    "dest_lon",
    "device",
)

SCHEMA = pa.schema(
    [pa.field("row", pa.int64()), pa.field("malformed", pa.string())]
    + [pa.field(f, pa.string()) for f in FIELDS]
)

DEFAULT_CHUNK = 100_000
# What the text of a value that is not text a field can hold starts with: the character
# validation never accepts in a field.
NOT_TEXT = NUL


def read_chunks(path: Path, chunk_size: int = DEFAULT_CHUNK) -> Iterator[pa.Table]:
    """Yield a file's records in chunks of at most `chunk_size` rows.

    Raises:
        InputError: the file does not exist or its format is not JSON Lines, CSV or Parquet.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        yield from _jsonl(path, chunk_size)
    elif suffix == ".csv":
        yield from _csv(path, chunk_size)
    elif suffix == ".parquet":
        yield from _parquet(path, chunk_size)
    else:
        raise InputError(f"{path}: unknown format {suffix!r} (expected .jsonl, .csv or .parquet)")


def _finish(table: pa.Table) -> pa.Table:
    """Turn empty or blank strings into nulls and order the columns as SCHEMA.

    Every text column is cleaned by the same three kernel calls over all of them at once (one
    array of their chunks, sliced back per column): a small chunk, an API group, then pays
    three calls instead of three a column."""
    texts = [f.name for f in SCHEMA if f.type == pa.string()]
    together = pa.chunked_array(
        [chunk for name in texts for chunk in table.column(name).chunks], pa.string()
    )
    blank = pc.equal(pc.utf8_trim_whitespace(together), "")
    cleaned = pc.if_else(blank, pa.scalar(None, pa.string()), together)
    n = table.num_rows
    at = {name: i * n for i, name in enumerate(texts)}
    columns = [
        cleaned.slice(at[f.name], n) if f.name in at else table.column(f.name) for f in SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _jsonl(path: Path, chunk_size: int) -> Iterator[pa.Table]:
    """DuckDB's reader, fast, for a file of clean lines; where it refuses a line (not UTF-8,
    longer than MAX_LINE), the rest of the file is read line by line, and that line is one
    record refused with its reason. DuckDB's error, which quotes the line, is not shown."""
    if _last_line_too_long(path):
        # DuckDB's reader drops such a last line without a word: never let it read this file.
        yield from _jsonl_by_lines(path, chunk_size, 0)
        return
    read = 0
    try:
        for table in _jsonl_by_duckdb(path, chunk_size):
            read += table.num_rows
            yield table
    except (duckdb.Error, OSError):  # DuckDB reports some refusals as OSError
        yield from _jsonl_by_lines(path, chunk_size, read)


def _last_line_too_long(path: Path) -> bool:
    """Whether a file's last line is longer than MAX_LINE (its last MAX_LINE bytes are read)."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - MAX_LINE - 2))
        tail = f.read().rstrip(b"\r\n")
    start = tail.rfind(b"\n") + 1
    return len(tail) - start > MAX_LINE or (start == 0 and size > MAX_LINE + 2)


def _records_query(source: str, reason: str) -> str:
    """The statement that reads the JSON object of each line of `source` (a `line` column),
    or says why it cannot (`reason`, a column or SQL for the lines the reader could not read)."""
    struct = "{" + ",".join(f'"{f}":"VARCHAR"' for f in FIELDS) + "}"
    fields = ", ".join(f"j.{f} as {f}" for f in FIELDS)
    return f"""
        select
            case when reason is not null then reason
                 when line is null or trim(line, ' ' || chr(13)) = '' then 'blank'
                 when not json_valid(line) or json_type(line) <> 'OBJECT'
                 then '{Reason.MALFORMED_ROW}'
            end as malformed,
            {fields},
            -- The rare line that may hold an object or an array inside: `_nested` looks.
            case when j is not null and (contains(substr(line, 2), '{{') or contains(line, '['))
                 then line end as maybe_nested
        from (
            select line, {reason} as reason,
                   case when json_valid(line) and json_type(line) = 'OBJECT'
                        then json_transform(line, '{struct}') end as j
            from {source}
        )
    """


def _numbered(table: pa.Table, row: int, skip: int = 0) -> tuple[pa.Table, int]:
    """A chunk without its blank lines and without the first records up to `skip` (already
    read), numbered on from `row`; and the last number."""
    keep = pc.invert(pc.fill_null(pc.equal(table.column("malformed"), "blank"), False))
    table = table.filter(keep)
    if row < skip:
        dropped = min(skip - row, table.num_rows)
        table, row = table.slice(dropped), row + dropped
    rows = pa.array(range(row + 1, row + 1 + table.num_rows), pa.int64())
    return _finish(_nested(table).add_column(0, "row", rows)), row + table.num_rows


def _jsonl_by_duckdb(path: Path, chunk_size: int) -> Iterator[pa.Table]:
    con = duckdb.connect()
    # Each line is read as one string (JSON text cannot contain a raw \x01).
    lines = (
        "(select raw as line from read_csv(?, columns={'raw': 'VARCHAR'}, delim='\x01', "
        "quote='', escape='', header=false, auto_detect=false, strict_mode=true, "
        f"max_line_size={MAX_LINE}))"
    )
    try:
        query = _records_query(lines, "cast(null as varchar)")
        reader = con.sql(query, params=[str(path)]).to_arrow_reader(chunk_size)
        row = 0
        # DuckDB hands out batches of a few thousand rows whatever size is asked for: gather
        # them into chunks of `chunk_size`, so that a chunk is one transaction of that size.
        for gathered in _gathered(reader, chunk_size):
            table, row = _numbered(gathered, row)
            if table.num_rows:
                yield table
    finally:
        con.close()


def _jsonl_by_lines(path: Path, chunk_size: int, skip: int) -> Iterator[pa.Table]:
    """The records of a file after its first `skip`, its lines split and decoded here: a line
    that is not UTF-8 or is longer than MAX_LINE is one record the reader could not read."""
    con = duckdb.connect()
    query = _records_query("lines", "reason")
    row = 0
    try:
        for lines in _gathered_lines(_lines(path), chunk_size):
            text, reason = _decoded(lines)
            con.register("lines", pa.table({"line": text, "reason": reason}))
            decoded: pa.Table = con.sql(query).to_arrow_table()
            con.unregister("lines")
            table, row = _numbered(decoded, row, skip)
            if table.num_rows:
                yield table
    finally:
        con.close()


# A file is read this much at a time.
_BLOCK = 16 * 2**20
_BOM = b"\xef\xbb\xbf"


def _lines(path: Path, quotes: deque[bool] | None = None) -> Iterator[pa.Array]:
    """A file's lines as binary values (without their `\\n`), a block of the file at a time; a
    line longer than MAX_LINE bytes is null, and never held whole. With `quotes`, whether each
    such line holds an odd number of `"` is appended to it, in order (a CSV row's quoted cell
    may open or close on that line)."""
    with path.open("rb") as f:
        head = b""  # the start of the line the last block ended in
        long = False  # that line is longer than MAX_LINE already: its bytes are dropped
        long_quotes = 0  # the `"` among its bytes dropped so far
        first = True
        while block := f.read(_BLOCK):
            if first and block.startswith(_BOM):
                block = block[len(_BOM) :]
            first = False
            out: list[pa.Array] = []
            if long:
                end = block.find(b"\n")
                if end < 0:
                    long_quotes += block.count(b'"') if quotes is not None else 0
                    continue
                out.append(pa.nulls(1, pa.binary()))
                if quotes is not None:
                    quotes.append((long_quotes + block.count(b'"', 0, end)) % 2 == 1)
                block, long = block[end + 1 :], False
            data = head + block if head else block
            # Split in C; the last piece is the start of a line the next block ends.
            pieces = pc.split_pattern(pa.array([data], pa.binary()), b"\n")[0].values
            head = pieces[len(pieces) - 1].as_py()
            if len(pieces) > 1:
                lines = pieces.slice(0, len(pieces) - 1)
                too_long = pc.greater(pc.binary_length(lines), MAX_LINE)
                if quotes is not None and pc.any(too_long).as_py():
                    counts = pc.count_substring(lines.filter(too_long), '"').to_pylist()
                    quotes.extend(n % 2 == 1 for n in counts)
                out.append(pc.if_else(too_long, pa.scalar(None, pa.binary()), lines))
            if len(head) > MAX_LINE:
                long_quotes = head.count(b'"') if quotes is not None else 0
                head, long = b"", True
            if out:
                yield pa.concat_arrays(out) if len(out) > 1 else out[0]
        if long:
            if quotes is not None:
                quotes.append(long_quotes % 2 == 1)
            yield pa.nulls(1, pa.binary())
        elif head:
            yield pa.array([head], pa.binary())


def _gathered_lines(blocks: Iterator[pa.Array], chunk_size: int) -> Iterator[pa.Array]:
    """Arrays of `chunk_size` lines (the last one shorter) from a stream of blocks' lines."""
    waiting: list[pa.Array] = []
    size = 0
    for block in blocks:
        waiting.append(block)
        size += len(block)
        while size >= chunk_size:
            lines = pa.concat_arrays(waiting)
            yield lines.slice(0, chunk_size)
            rest = lines.slice(chunk_size)
            waiting, size = [rest], len(rest)
    if size:
        yield pa.concat_arrays(waiting)


def _decoded(lines: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The lines as text, and why a line has none: `row_too_long` (null), `invalid_encoding`."""
    too_long = pc.is_null(lines)
    try:
        text = pc.cast(lines, pa.string())
        invalid_encoding = pa.array([False] * len(lines))
    except pa.ArrowInvalid:
        # Some line is not UTF-8: found line by line (rare), and read as no text.
        texts: list[str | None] = []
        bad: list[bool] = []
        for value in lines.to_pylist():
            try:
                texts.append(None if value is None else value.decode("utf-8"))
                bad.append(False)
            except UnicodeDecodeError:
                texts.append(None)
                bad.append(True)
        text, invalid_encoding = pa.array(texts, pa.string()), pa.array(bad)
    reason = pc.if_else(
        too_long,
        pa.scalar(str(Reason.ROW_TOO_LONG)),
        pc.if_else(
            invalid_encoding, pa.scalar(str(Reason.INVALID_ENCODING)), pa.scalar(None, pa.string())
        ),
    )
    return text, reason


def _nested(table: pa.Table) -> pa.Table:
    """Mark the fields whose JSON value is an object or an array (`NOT_TEXT` before their JSON
    text, as DuckDB wrote it), and drop the lines kept to look at."""
    lines = table.column("maybe_nested")
    table = table.drop_columns(["maybe_nested"])
    if lines.null_count == len(lines):
        return table
    nested: dict[str, set[int]] = {}
    for i, line in enumerate(lines.to_pylist()):
        if line is not None:
            for name, value in json.loads(line).items():
                if name in FIELDS and isinstance(value, (dict, list)):
                    nested.setdefault(name, set()).add(i)
    for name, at in nested.items():
        values = table.column(name).to_pylist()
        marked = [NOT_TEXT + v if i in at and v is not None else v for i, v in enumerate(values)]
        table = table.set_column(
            table.schema.get_field_index(name), name, pa.array(marked, pa.string())
        )
    return table


def _gathered(reader: pa.RecordBatchReader, chunk_size: int) -> Iterator[pa.Table]:
    """Tables of `chunk_size` rows (the last one shorter) from a stream of smaller batches."""
    waiting: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        waiting.append(batch)
        size += batch.num_rows
        while size >= chunk_size:
            table = pa.Table.from_batches(waiting)
            yield table.slice(0, chunk_size)
            rest = table.slice(chunk_size)
            waiting, size = rest.to_batches(), rest.num_rows
    if size:
        yield pa.Table.from_batches(waiting, schema=reader.schema)


def _csv(path: Path, chunk_size: int) -> Iterator[pa.Table]:
    """CSV with a header row, its lines split and decoded by `_CsvLines`: a row one of whose
    lines is not UTF-8 (`invalid_encoding`) or is longer than MAX_LINE (`row_too_long`), or
    that the CSV grammar cannot read (`malformed_row`), is one record refused, its cells not
    kept, and the file goes on. A header that cannot be read refuses the file."""
    # A cell may be as long as a line (the module's default is 128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE))
    lines = _CsvLines(path)
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error:
        raise InputError(f"{path}: line 1: the CSV header cannot be read") from None
    if lines.why is not None:
        why = (
            "not UTF-8" if lines.why == Reason.INVALID_ENCODING else f"longer than {MAX_LINE} bytes"
        )
        raise InputError(f"{path}: line 1: the CSV header is {why}")
    positions = {name: i for i, name in enumerate(header)}
    width = len(header)
    wanted = [(f, positions.get(f)) for f in FIELDS]
    ordinal = 0
    while True:
        columns: dict[str, list[str | None]] = {f: [] for f in FIELDS}
        rows: list[int] = []
        malformed: list[str | None] = []
        while len(rows) < chunk_size:
            lines.start_row()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error:  # a bare carriage return in a cell, a cell too long
                cells, lines.why = [], lines.why or Reason.MALFORMED_ROW
            if lines.why is None and all(not c.strip() for c in cells):
                continue
            ordinal += 1
            rows.append(ordinal)
            if lines.why is not None:
                malformed.append(str(lines.why))
                cells = []
            else:
                malformed.append(str(Reason.MALFORMED_ROW) if len(cells) != width else None)
            for name, i in wanted:
                columns[name].append(cells[i] if i is not None and i < len(cells) else None)
        if not rows:
            return
        yield _finish(_table(rows, malformed, columns))


class _CsvLines:
    """The lines of a CSV file as text, for `csv.reader`, which takes them as it needs them.
    `why` is set when a line taken since `start_row` was last called could not be read (not
    UTF-8, or longer than MAX_LINE), or when those lines add up to more than MAX_LINE
    characters (a row of many lines): the row they belong to is refused. A line that could not
    be read is handed on as a placeholder that opens or closes a quoted cell as the line did,
    so that the reader still ends the row where the file does."""

    def __init__(self, path: Path) -> None:
        self.why: Reason | None = None
        self.length = 0
        self._lines = self._read(path)

    def __iter__(self) -> Iterator[str]:
        return self._lines

    def start_row(self) -> None:
        """Forget the lines taken so far: the next row starts."""
        self.why, self.length = None, 0

    def _read(self, path: Path) -> Iterator[str]:
        odd_quotes: deque[bool] = deque()
        for block in _lines(path, odd_quotes):
            texts, reasons = _decoded(block)
            whys = reasons.to_pylist() if reasons.null_count < len(reasons) else None
            for i, line in enumerate(texts.to_pylist()):
                if whys is not None and whys[i] is not None:
                    if whys[i] == Reason.ROW_TOO_LONG:
                        line = '"-' if odd_quotes.popleft() else "-"
                    else:  # decoded all the same: its quotes and commas still count
                        line = block[i].as_py().decode(errors="replace")
                    self.why = self.why or Reason(whys[i])
                self.length += len(line)
                if self.length > MAX_LINE:
                    self.why = self.why or Reason.ROW_TOO_LONG
                yield line + "\n"


def _table(
    rows: list[int], malformed: list[str | None], columns: dict[str, list[str | None]]
) -> pa.Table:
    arrays = [pa.array(rows, pa.int64()), pa.array(malformed, pa.string())]
    arrays += [pa.array(columns[f], pa.string()) for f in FIELDS]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _parquet(path: Path, chunk_size: int) -> Iterator[pa.Table]:
    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: unreadable Parquet: {_one_line(exc)}") from None
    names = set(source.schema_arrow.names)
    row = 0
    batches = source.iter_batches(batch_size=chunk_size, columns=[f for f in FIELDS if f in names])
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as exc:
            # A damaged page: which of its rows are intact cannot be told.
            raise InputError(
                f"{path}: unreadable Parquet from row {row + 1} on ({_one_line(exc)}); rows 1 to {row} "
                "were read, and are replayed, not credited again, when the mended file is sent"
            ) from None
        if batch is None:
            return
        n = batch.num_rows
        arrays: dict[str, pa.Array] = {
            "row": pa.array(range(row + 1, row + 1 + n), pa.int64()),
            "malformed": pa.nulls(n, pa.string()),
        }
        row += n
        for f in FIELDS:
            arrays[f] = _as_text(batch.column(f)) if f in names else pa.nulls(n, pa.string())
        yield _finish(pa.Table.from_pydict(arrays, schema=SCHEMA))


def _one_line(error: Exception) -> str:
    """An error's message on one line (Arrow's span several)."""
    return " ".join(str(error).split())


def _as_text(column: pa.Array) -> pa.Array:
    """Render a typed Parquet column as the text a JSON or CSV file would carry."""
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            # A timestamp without a zone cannot be placed in time: leave it for validation to
            # refuse, rendered without an offset.
            return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
        return pc.strftime(
            pc.cast(column, pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ"
        )
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_nested(column.type):
        return pa.array([_json_text(v) for v in _plain(column.to_pylist())], pa.string())
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        # A type with no text of its own (binary, a dictionary of them): its values' text.
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())


def _plain(values: list[Any]) -> list[Any]:
    """Parquet's nested values as JSON can write them (a map's pairs as a list)."""
    return [json.loads(json.dumps(v, default=str)) if v is not None else None for v in values]


def records_table(records: Sequence[object]) -> pa.Table:
    """One chunk from records already parsed from JSON (an API request body), with the same
    shape and the same text a JSON Lines file would give: numbers and booleans as their JSON
    text, nested values as JSON, an item that is not an object `malformed_row`.

    A field is read from every record at once, and handed to Arrow as it is when it holds
    only text (the usual case): an API group of thousands of records is on the settling
    thread's path."""
    objects = [isinstance(item, Mapping) for item in records]
    items: Sequence[Any] = (
        records
        if all(objects)
        else [item if ok else {} for item, ok in zip(records, objects, strict=True)]
    )
    arrays = [
        pa.array(range(1, len(records) + 1), pa.int64()),
        pa.array([None if ok else str(Reason.MALFORMED_ROW) for ok in objects], pa.string()),
    ]
    for f in FIELDS:
        values = [item.get(f) for item in items]
        try:
            arrays.append(pa.array(values, pa.string()))
        except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
            arrays.append(pa.array([_json_text(v) for v in values], pa.string()))
    return _finish(pa.Table.from_arrays(arrays, schema=SCHEMA))


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return NOT_TEXT + json.dumps(value)
        return value
    # JSON writes an integer, and a finite double, as Python's repr does (a bool is no int here).
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return repr(value)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (dict, list)):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate inside: written as its escape
                text = json.dumps(value, separators=(",", ":"))
        return NOT_TEXT + text
    return text


def describe(path: Path) -> str:
    """One line naming a file and its format, for progress output."""
    return f"{path.name} ({path.suffix.lstrip('.').lower()})"


__all__ = ["FIELDS", "SCHEMA", "describe", "read_chunks", "records_table"]
