"""End to end: `puhui ingest` of files full of hostile records, on SQLite and PostgreSQL. Each
bad record is one rejected receipt, the command exits 0, and nothing it prints, on stdout or
stderr, nor the receipts it writes, holds a citizen's identifier a file carried."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.builders import event, trip, write_csv, write_jsonl, write_parquet
from tests.integration.test_hostile_inputs import JSON_CASES, TEXT_CASES


def _with_subject(record: dict[str, Any], n: int) -> dict[str, Any]:
    return {**record, "subject": f"1390077{n:04d}"}


def _cases(cases: dict[str, tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
    """Each hostile case with an identifier of its own, between good records."""
    records: list[dict[str, Any]] = []
    for i, (bad, _) in enumerate(cases.values()):
        records.append(_with_subject(event(f"g{i}", ref=f"RC-{i}"), 2 * i))
        own_id = {"record_id": f"bad{i}"} if bad["record_id"] == "bad" else {}
        records.append(_with_subject({**bad, **own_id}, 2 * i + 1))
    return records


def _ingest(cli: Any, path: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    receipts = tmp_path / f"{path.name}.receipts.csv"
    done = subprocess.run(
        [*cli.argv, "ingest", "--platform", "amap", "--receipts", str(receipts), str(path)],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=300,
        check=False,
    )
    return done, receipts.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_hostile_file_is_answered_and_nothing_echoes_an_identifier(
    cli: Any, tmp_path: Path, fmt: str
) -> None:
    cli("platform", "add", "amap")
    cases = JSON_CASES if fmt == "jsonl" else TEXT_CASES
    records = _cases(cases)
    writer = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}[fmt]
    path = writer(tmp_path / f"f.{fmt}", records)
    if fmt == "jsonl":
        # Lines no reader can take whole: not JSON, not UTF-8, longer than 1 MiB.
        extra = [
            b'{"subject": "13900779001", "record_id": ',
            json.dumps(trip("gbk", subject="13900779002", ref="回收"), ensure_ascii=False).encode(
                "gbk"
            ),
            json.dumps(trip("long", subject="13900779003", device="x" * 2**20)).encode(),
        ]
        path.write_bytes(path.read_bytes() + b"\n".join(extra) + b"\n")
    done, receipts = _ingest(cli, path, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr + receipts
    subjects = {r["subject"] for r in records} | {"13900779001", "13900779002", "13900779003"}
    assert [s for s in subjects if s in said] == []
    assert "Traceback" not in done.stderr
    rows = list(csv.DictReader(io.StringIO(receipts)))
    assert len(rows) == len(records) + (3 if fmt == "jsonl" else 0)
    statuses = Counter(r["status"] for r in rows)
    assert statuses == {"credited": len(cases), "rejected": len(rows) - len(cases)}
    assert "ledger sound" in cli("ledger", "verify")
