"""End to end: generated multi-platform files through the `puhui` command line, on SQLite and
PostgreSQL, every receipt checked against the generator's ground truth."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.generate import DEFECTS, Expected, Truth, generate

RECORDS = 4000
SEED = 20261031


def _puhui() -> list[str]:
    script = Path(sys.executable).with_name("puhui")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from puhui.entrypoints.cli import main; main()"]


def _run(args: list[str], db: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("PUHUI_DATABASE_URL", None)
    env.pop("PUHUI_KEY_FILE", None)
    done = subprocess.run(
        [*_puhui(), *args, *db], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if check:
        assert done.returncode == 0, f"puhui {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def _mismatch(expected: Expected, got: dict[str, str] | None) -> str | None:
    where = f"{expected.file}:{expected.row} [{expected.scenario}]"
    if got is None:
        return f"{where}: no receipt"
    reasons = frozenset(r for r in got["reason"].split(";") if r)
    methodology = got["methodology"] or None
    actual = (got["record_id"] or None, got["status"], reasons, int(got["reduction_g"]))
    wanted = (expected.record_id, expected.status, expected.reasons, expected.reduction_g)
    if actual != wanted:
        return f"{where}: expected {wanted}, got {actual}"
    if expected.status != "rejected" and methodology != expected.methodology:
        return f"{where}: expected methodology {expected.methodology}, got {methodology}"
    return None


def _ingest_all(truth: Truth, db: list[str], folder: Path) -> dict[tuple[str, int], dict[str, str]]:
    receipts: dict[tuple[str, int], dict[str, str]] = {}
    for n, (platform, path) in enumerate(truth.files):
        out = folder / f"receipts-{n:02d}.csv"
        _run(["ingest", "--platform", platform, "--receipts", str(out), str(path)], db)
        with out.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                assert row["platform"] == platform
                receipts[(row["file"], int(row["row"]))] = row
    return receipts


def test_generated_files_cover_every_planted_case(tmp_path: Path) -> None:
    """The end-to-end data set holds every defect, both duplicate kinds, caps, replays and
    conflicts, phones and ID numbers (one ending in X), UTC and +08:00 timestamps."""
    truth = generate(tmp_path, records=RECORDS, seed=SEED, fmt="mixed")
    reasons = set(truth.summary()["by_reason"])  # type: ignore[arg-type]
    wanted = {reason for reason, _ in DEFECTS.values()}
    wanted |= {"duplicate_ref", "duplicate_overlap", "capped", "conflict"}
    assert wanted <= reasons
    scenarios = {e.scenario for e in truth.expected}
    assert {"replay", "replay:respelled", "conflict"} <= scenarios
    assert {s.split(":")[1] for s in scenarios if s.startswith("invalid:")} == set(DEFECTS)
    assert any(s.startswith("correction:") for s in scenarios)
    subjects = {e.subject for e in truth.expected if e.subject}
    assert any(s.startswith("m:") for s in subjects)
    assert any(s.startswith("id:") and s.endswith("X") for s in subjects)
    text = "".join(p.read_text(encoding="utf-8") for _, p in truth.files if p.suffix != ".parquet")
    assert re.search(r"T\d\d:\d\d:\d\dZ", text)
    assert re.search(r"T\d\d:\d\d:\d\d\+08:00", text)


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    """Generation is deterministic: same seed, same bytes and same truth."""
    first = generate(tmp_path / "a", records=1500, seed=7, fmt="mixed")
    second = generate(tmp_path / "b", records=1500, seed=7, fmt="mixed")
    assert [p.read_bytes() for _, p in first.files] == [p.read_bytes() for _, p in second.files]
    assert first.table.equals(second.table)
    assert first.total_g == second.total_g > 0


@pytest.mark.slow
def test_every_receipt_of_generated_files_matches_the_truth(
    database_url: str, tmp_path: Path
) -> None:
    """Ingested in truth order through the CLI, each row gets its expected receipt and credits.
    (The same files on Spark, on one session: tests/integration/test_spark_ingest.py; the
    command line on Spark: tests/e2e/test_spark_submit.py.)"""
    truth = generate(tmp_path / "data", records=RECORDS, seed=SEED, fmt="mixed")
    assert {path.suffix for _, path in truth.files} == {".jsonl", ".csv", ".parquet"}
    db = ["--db", database_url, "--key-file", str(tmp_path / "subject.key")]
    _run(["init"], db)
    for platform in truth.platforms:
        _run(["platform", "add", platform], db)

    receipts = _ingest_all(truth, db, tmp_path)

    assert len(receipts) == len(truth.expected) == RECORDS
    problems = [
        problem
        for e in truth.expected
        if (problem := _mismatch(e, receipts.get((e.file, e.row)))) is not None
    ]
    assert not problems, f"{len(problems)} receipts differ from the truth:\n" + "\n".join(
        problems[:25]
    )

    verify = _run(["ledger", "verify"], db, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    credited = sum(
        int(receipts[(e.file, e.row)]["reduction_g"]) for e in truth.expected if not e.replay
    )
    assert credited == truth.total_g
    issued = re.search(r"(\d+) g issued", verify.stdout)
    assert issued is not None
    assert int(issued.group(1)) == truth.total_g

    balances = truth.balances()
    citizen = max(balances, key=lambda s: (balances[s], s))
    spelling = truth.spelling(citizen)
    texts = [p.read_text(encoding="utf-8") for _, p in truth.files if p.suffix != ".parquet"]
    assert all(spelling not in text for text in texts)
    shown = _run(["account", "show", spelling], db)
    balance = re.search(r"balance ([0-9,]+) g", shown.stdout)
    assert balance is not None, shown.stdout
    assert int(balance.group(1).replace(",", "")) == balances[citizen]
