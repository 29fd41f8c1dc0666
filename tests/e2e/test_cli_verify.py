"""`puhui ledger verify` re-derives every credit from its stored inputs, on SQLite and
PostgreSQL."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from puhui.adapters.sql.engine import make_engine
from tests.builders import event, write_jsonl
from tests.forging import forge


def test_ledger_verify_finds_an_amount_changed_behind_the_ledger(
    cli: Any, database_url: str, tmp_path: Path
) -> None:
    """A record's amount multiplied by 100 in the database: its grams no longer follow from
    it, and `ledger verify` names the check and exits 1."""
    cli("platform", "add", "aihuishou")
    record = event("e1", platform="aihuishou", subject="13800138000", quantity="3")
    cli("ingest", "--platform", "aihuishou", str(write_jsonl(tmp_path / "a.jsonl", [record])))
    assert "ledger sound" in cli("ledger", "verify")
    engine = make_engine(database_url)
    forge(engine, "update records set amount_milli = amount_milli * 100")
    engine.dispose()
    done = subprocess.run(
        [*cli.argv, "ledger", "verify"],
        capture_output=True, text=True, env=cli.env, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    out = " ".join((done.stdout + done.stderr).split())
    assert "credit_not_recomputable: 1 — every credited record's grams are its stored amount" in out
    assert "ledger sound" not in out
