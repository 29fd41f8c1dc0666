"""End to end: the demo behind `make run`, in an empty folder, as a new user runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _demo(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DEMO_RECORDS": "2000"}
    env["BIN"] = str(Path(sys.executable).parent)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PUHUI_DATABASE_URL", None)
    env.pop("PUHUI_KEY_FILE", None)
    return subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def _receipts(folder: Path, platform: str) -> list[dict[str, str]]:
    """Every receipt of a platform as `puhui receipts` exports it now."""
    out = folder / f"now-{platform}.csv"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "puhui"),
            "receipts",
            "--platform",
            platform,
            "--out",
            str(out),
        ],
        cwd=folder,
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")},
        timeout=300,
    )
    with out.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_the_demo_loads_sample_files_once_and_leaves_a_sound_ledger(tmp_path: Path) -> None:
    """Every sample file is ingested by its platform; the grams issued are the generator's;
    a second run finds the data there and loads nothing again."""
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    truth = json.loads((tmp_path / "var" / "demo" / "truth.json").read_text(encoding="utf-8"))
    expected_g = truth["summary"]["credited_g"]
    for item in truth["ingest_in_order"]:
        assert f"puhui ingest --platform {item['platform']} " in first.stdout
        receipts = tmp_path / "var" / "demo" / "receipts" / (Path(item["file"]).stem + ".csv")
        assert receipts.is_file(), receipts
    # November's records (evidence policies in force): some were held; the held rides the
    # operators corroborated since are credited now, as the receipts exported now say.
    november = sorted((tmp_path / "var" / "demo" / "receipts").glob("november-*.csv"))
    assert len(november) == 6, november
    held_then = 0
    for path in november:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        held_then += sum(1 for r in rows if r["status"] == "held")
        platform = path.stem.removeprefix("november-")
        ids = {r["record_id"] for r in rows}
        now = _receipts(tmp_path, platform)
        expected_g += sum(
            int(r["reduction_g"])
            for r in now
            if r["record_id"] in ids and r["status"] == "credited"
        )
    assert held_then > 0
    assert f"{expected_g} g issued" in first.stdout
    assert "ledger sound" in first.stdout
    assert "puhui account show" in first.stdout
    assert (tmp_path / "puhui.db").is_file()
    assert (tmp_path / "puhui.key").is_file()

    again = _demo(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "demo data not loaded again" in again.stdout
    assert "puhui ingest" not in again.stdout
    assert f"{expected_g} g issued" in again.stdout
