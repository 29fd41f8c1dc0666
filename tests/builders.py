"""Builders of activity records and files for tests: sensible defaults, explicit overrides."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from puhui.adapters.batch.reader import FIELDS


def trip(record_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid 5 km, 20-minute bus ride in Beijing on 1 October 2026, from platform `amap`."""
    record: dict[str, Any] = {
        "platform": "amap",
        "record_id": record_id,
        "subject": "13800138000",
        "scene": "bus",
        "region": "110000",
        "start": "2026-10-01T08:00:00+08:00",
        "end": "2026-10-01T08:20:00+08:00",
        "distance_km": 5,
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


def event(record_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid recycling event (2.5 kg of paper in Chengdu on 2 October 2026) from `amap`."""
    record: dict[str, Any] = {
        "platform": "amap",
        "record_id": record_id,
        "subject": "13800138000",
        "scene": "recycling",
        "region": "510100",
        "start": "2026-10-02T10:00:00+08:00",
        "quantity": "2.5",
        "material": "paper",
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as JSON Lines."""
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def write_csv(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as CSV with every field of the spec as a column."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for r in records:
            writer.writerow({k: r.get(k, "") for k in FIELDS})
    return path


def write_parquet(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as Parquet, every field as text."""
    rows = list(records)
    columns = {f: [None if r.get(f) is None else str(r[f]) for r in rows] for f in FIELDS}
    table = pa.table({f: pa.array(values, pa.string()) for f, values in columns.items()})
    pq.write_table(table, path)
    return path


def citizen_token(
    app: Any,
    phone: str,
    platform: str = "amap",
    scopes: Iterable[str] = ("balance", "history:all", "spend"),
    days: int = 90,
) -> str:
    """An access token of `platform` for the citizen with this number, as if the citizen had
    granted it these scopes (every platform's history, by default) on the consent page."""
    from puhui.domain.consent import Scope
    from puhui.service import citizens, consent, queries

    pseudonym = queries.pseudonym_of(app, phone)
    grant = consent.grant(app, pseudonym, platform, frozenset(Scope(s) for s in scopes), days)
    return citizens.issue_access_token(app, grant).token


def citizen_session(app: Any, phone: str) -> str:
    """The citizen's own session token, as signing in with a code gives it."""
    from puhui.service import citizens, queries

    return citizens.issue_session(app, queries.pseudonym_of(app, phone)).token
