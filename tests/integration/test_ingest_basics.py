"""Worked examples of ingest on both databases: credits, regional methodologies, replays."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from puhui.bootstrap import App
from puhui.service import admin, ingest, ledger, queries
from tests.builders import event, trip, write_jsonl


def _ingest(app: App, path: Path) -> list[dict[str, object]]:
    tables: list[pa.Table] = []
    ingest.ingest_files(app, "amap", [path], sink=tables.append)
    return pa.concat_tables(tables).to_pylist() if tables else []


def test_a_bus_ride_earns_more_in_beijing_than_in_shenzhen(app: App, tmp_path: Path) -> None:
    """5 km by bus: Beijing's car baseline credits 1079 g, Shenzhen's city mix 134 g."""
    admin.add_platform(app, "amap")
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [trip("bj"), trip("sz", region="440300", subject="13900139000")],
    )
    receipts = {r["record_id"]: r for r in _ingest(app, path)}
    assert receipts["bj"]["reduction_g"] == 1079
    assert receipts["bj"]["methodology"] == "bj-low-carbon-travel@1.0.0"
    assert receipts["sz"]["reduction_g"] == 134
    assert receipts["sz"]["methodology"] == "sz-public-transit@1.0.1"
    assert ledger.verify(app) == []


def test_replaying_a_file_returns_the_same_receipts_and_credits_nothing_twice(
    app: App, tmp_path: Path
) -> None:
    """The second ingest of the same file answers with the stored receipts."""
    admin.add_platform(app, "amap")
    path = write_jsonl(tmp_path / "a.jsonl", [trip("t1"), event("e1", ref="R-1")])
    first = _ingest(app, path)
    second = _ingest(app, path)
    keep = ("record_id", "status", "reason", "reduction_g", "methodology")
    assert [{k: r[k] for k in keep} for r in first] == [{k: r[k] for k in keep} for r in second]
    view = queries.account(app, "13800138000")
    assert view.balance_g == 1079 + 549
    assert ledger.verify(app) == []


def test_a_changed_replay_is_refused_as_a_conflict(app: App, tmp_path: Path) -> None:
    """Same (platform, record_id) with another distance: rejected, first receipt kept."""
    admin.add_platform(app, "amap")
    _ingest(app, write_jsonl(tmp_path / "a.jsonl", [trip("t1")]))
    again = _ingest(app, write_jsonl(tmp_path / "b.jsonl", [trip("t1", distance_km=9)]))
    assert (again[0]["status"], again[0]["reason"]) == ("rejected", "conflict")
    stored = list(queries.receipts(app, "amap"))
    assert [(r["status"], r["reduction_g"]) for r in stored] == [("credited", 1079)]
