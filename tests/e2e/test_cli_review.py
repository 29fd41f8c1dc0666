"""An operator works the review queue from the command line, on SQLite and PostgreSQL: amap's
metro rides in Shenzhen (November 2026) wait for szmetro; one is corroborated, one released, one
rejected, one times out; the receipts export says when each was decided, the rates count them,
no citizen's number is ever printed, and the ledger verifies."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.builders import trip, write_jsonl

PHONES = {f"r{n}": f"1380013{n:04d}" for n in range(1, 5)}


def ride(record_id: str, day: int, platform: str = "amap", subject: str = "") -> dict[str, Any]:
    on = f"2026-11-{day:02d}"
    return trip(record_id, platform=platform, subject=subject or PHONES[record_id],
                scene="metro", region="440300", start=f"{on}T08:00:00+08:00",
                end=f"{on}T08:30:00+08:00", distance_km=12)  # fmt: skip


def seqs_of(listing: str) -> dict[str, int]:
    """The seq of each record in a `puhui review list` table."""
    rows = re.findall(r"│\s*(\d+)\s*│\s*amap\s*│\s*(r\d)\s*│", listing)
    return {record: int(seq) for seq, record in rows}


def failing(cli: Any, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*cli.argv, *args], capture_output=True, text=True, env=cli.env, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done


def test_an_operator_reviews_held_records_from_the_command_line(cli: Any, tmp_path: Path) -> None:
    cli("platform", "add", "amap")
    cli("platform", "add", "szmetro")
    rides = [ride("r1", 2), ride("r2", 3), ride("r3", 4), ride("r4", 5)]
    ingested = cli("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "a.jsonl", rides)))
    assert re.search(r"held\s*│\s*4", ingested), ingested
    metro = [ride("m1", 2, "szmetro", PHONES["r1"])]  # r1's ride, as the authority saw it
    cli("ingest", "--platform", "szmetro", str(write_jsonl(tmp_path / "m.jsonl", metro)))

    listing = cli("review", "list")
    seqs = seqs_of(listing)
    assert sorted(seqs) == ["r2", "r3", "r4"], listing
    assert "awaiting_corroboration" in listing
    assert "szmetro" in listing  # the policy's reading names the authority
    assert cli("review", "list", "--reason", "velocity").count("│") == 0
    assert sorted(seqs_of(cli("review", "list", "--platform", "amap"))) == ["r2", "r3", "r4"]
    decided = cli("review", "list", "--decided")
    seqs |= seqs_of(decided)
    assert "credited (corroborated) by corroboration" in decided

    shown = cli("review", "show", str(seqs["r1"]))
    assert "corroborated by szmetro m1" in shown
    assert re.search(r"szmetro\s*│\s*m1 \(duplicate of it\)", shown), shown

    assert "error" in failing(cli, "review", "decide", str(seqs["r2"]), "--reason", "x",
                              "--by", "li").stderr  # fmt: skip
    refused = failing(cli, "review", "decide", str(seqs["r2"]), "--release", "--reason", " ",
                      "--by", "li")  # fmt: skip
    assert "a decision needs a reason" in refused.stderr
    released = cli("review", "decide", str(seqs["r2"]), "999999", "--release",
                   "--reason", "card taps match", "--by", "li")  # fmt: skip
    assert f"released: {seqs['r2']}" in released
    assert "skipped (decided already, or never held): 999999" in released
    rejected = cli("review", "decide", str(seqs["r3"]), "--reject", "--reason", "no such ride",
                   "--by", "li")  # fmt: skip
    assert f"rejected: {seqs['r3']}" in rejected
    assert "ledger sound" in cli("ledger", "verify")

    # The window of r4 is not over yet; a week and a day later, it is.
    assert "ended 0 held records" in cli("review", "expire")
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    assert f"ended 1 held records: {seqs['r4']}" in cli("review", "expire", "--at", later)
    assert "error" in failing(cli, "review", "expire", "--at", "next week").stderr
    assert cli("review", "list").count("│") == 0

    receipts = list(csv.DictReader(io.StringIO(cli("receipts", "--platform", "amap"))))
    assert list(receipts[0])[-1] == "decided_at"
    outcome = {r["record_id"]: (r["status"], r["reason"], r["reduction_g"]) for r in receipts}
    assert outcome == {
        "r1": ("credited", "corroborated", "560"),
        "r2": ("credited", "released", "560"),
        "r3": ("rejected", "rejected_on_review", "0"),
        "r4": ("rejected", "not_corroborated", "0"),
    }
    assert all(datetime.fromisoformat(r["decided_at"]) for r in receipts)

    rates = cli("review", "rates")
    row = next(line for line in rates.splitlines() if "amap" in line)
    assert [c.strip() for c in row.split("│")[1:10]] == [
        "amap", "4", "4", "0", "1", "1", "1", "1", "50%",
    ]  # fmt: skip
    assert "FLAGGED" not in rates
    assert "ledger sound" in cli("ledger", "verify")
    printed = listing + decided + shown + released + rejected + rates
    assert all(phone not in printed for phone in PHONES.values())
