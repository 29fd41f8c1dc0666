"""Preparation keeps receive order: the records of a chunk come out in the order they were read.

Receive order decides which record of a behaviour is credited, and within a chunk it is the
order of the file. DuckDB's joins do not keep their input's order once a chunk is large enough
to be processed in parallel, so this is checked on a chunk of 200 000 records.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from puhui.adapters.batch.prepare import Preparer, epoch_ms
from puhui.adapters.batch.reader import FIELDS, SCHEMA
from puhui.adapters.methodology_files import load_catalogue
from tests.conftest import NOW


@pytest.mark.slow
def test_a_full_chunk_comes_out_of_preparation_in_file_order() -> None:
    """200 000 rides of 2 000 citizens: row numbers 1 to 200 000, in that order."""
    n = 200_000
    values: dict[str, list[str | None]] = {f: [None] * n for f in FIELDS}
    values["platform"] = ["amap"] * n
    values["record_id"] = [f"r{i}" for i in range(n)]
    values["subject"] = [f"138{i % 2000:08d}" for i in range(n)]
    values["scene"] = ["bus"] * n
    values["region"] = ["110000", "510100"] * (n // 2)
    values["start"] = ["2026-10-01T08:00:00+08:00"] * n
    values["end"] = ["2026-10-01T08:20:00+08:00"] * n
    values["distance_km"] = ["5"] * n
    raw = pa.Table.from_pydict(
        {"row": list(range(1, n + 1)), "malformed": [None] * n, **values}, schema=SCHEMA
    )
    preparer = Preparer(load_catalogue(), b"k" * 32, "amap")
    try:
        prepared = preparer.prepare(raw, epoch_ms(NOW))
    finally:
        preparer.close()
    assert prepared.column("row").to_pylist() == list(range(1, n + 1))
    assert prepared.column("record_id").to_pylist() == values["record_id"]
