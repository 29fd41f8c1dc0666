"""One bad record is rejected alone: inputs that once cost a whole file or a whole group (an
amount too large or too small, a timestamp out of range, a NUL character, a JSON object where a
string belongs) each get one rejected receipt with a stable reason, through every file format
and over the API, on both databases; every other record is credited and the ledger proves
itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from puhui.adapters.batch.reader import FIELDS
from puhui.bootstrap import App
from puhui.service import admin, ingest, ledger, queries
from tests.builders import event, trip, write_csv, write_jsonl, write_parquet
from tests.integration.conftest import Platform

# (what the platform sent, the reason its receipt must carry); `record_id` "bad" unless the
# record_id itself is the bad value.
TEXT_CASES: dict[str, tuple[dict[str, Any], str]] = {
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
def test_csv(amap_app: App, tmp_path: Path, case: str) -> None:
    bad, reason = TEXT_CASES[case]
    good = _good(40)
    path = write_csv(tmp_path / "f.csv", [*good[:20], bad, *good[20:]])
    _check(amap_app, "amap", reason, ingest.ingest_files(amap_app, "amap", [path]))


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_parquet(amap_app: App, tmp_path: Path, case: str) -> None:
    bad, reason = TEXT_CASES[case]
    good = _good(40)
    path = write_parquet(tmp_path / "f.parquet", [*good[:20], bad, *good[20:]])
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


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_over_the_api(amap: Platform, case: str) -> None:
    bad, reason = JSON_CASES[case]
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
