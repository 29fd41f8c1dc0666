"""End to end: the ingest submitted to Spark with `spark-submit`, as docs/scale.md shows it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import trip, write_jsonl

pytest.importorskip("pyspark")


def test_spark_submit_runs_the_ingest_on_the_master_it_was_given(tmp_path: Path) -> None:
    """`spark-submit --master local[2] …/puhui/entrypoints/cli/__main__.py ingest --engine
    spark` settles on the session spark-submit configured (no --spark-master): the receipts
    of three records, one a duplicate of another by its ref, one with a malformed subject."""
    bin_dir = Path(sys.executable).parent
    puhui = [sys.executable, "-m", "puhui.entrypoints.cli"]
    db = ["--db", f"sqlite:///{tmp_path / 'p.db'}", "--key-file", str(tmp_path / "p.key")]
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    for args in (["init"], ["platform", "add", "amap"]):
        subprocess.run([*puhui, *args, *db], check=True, capture_output=True, env=env)
    next_day = {"start": "2026-10-02T08:00:00+08:00", "end": "2026-10-02T08:20:00+08:00"}
    records = write_jsonl(
        tmp_path / "amap.jsonl",
        [
            trip("s-1", ref="TAP-1"),
            trip("s-2", ref="TAP-1", **next_day),
            trip("s-3", subject="bad"),
        ],
    )
    import puhui.entrypoints.cli.__main__ as launcher

    done = subprocess.run(
        [
            str(bin_dir / "spark-submit"),
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            launcher.__file__,
            "ingest",
            "--engine",
            "spark",
            "--platform",
            "amap",
            "--receipts",
            str(tmp_path / "r.csv"),
            str(records),
            *db,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    with (tmp_path / "r.csv").open(encoding="utf-8", newline="") as f:
        got = [(r["record_id"], r["status"], r["reason"]) for r in csv.DictReader(f)]
    assert got == [
        ("s-1", "credited", ""),
        ("s-2", "duplicate", "duplicate_ref"),
        ("s-3", "rejected", "malformed_subject"),
    ]
    assert "credited 1,079 g" in done.stdout
