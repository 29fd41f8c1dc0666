"""An operator erases a citizen from the command line, on SQLite and PostgreSQL: the number
finds nothing afterwards and the ledger still verifies."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.builders import event, write_jsonl

ALICE = "+86 138 0013 8000"


def test_an_operator_erases_a_citizen(cli: Any, tmp_path: Path) -> None:
    cli("platform", "add", "aihuishou")
    records = [event(f"e{i}", platform="aihuishou", subject="13800138000", quantity="30",
                     ref=f"RCPT-{i}", start=f"2026-10-{i + 1:02d}T10:00:00+08:00")
               for i in range(3)]  # fmt: skip
    cli("ingest", "--platform", "aihuishou", str(write_jsonl(tmp_path / "a.jsonl", records)))
    assert "balance" in cli("account", "show", ALICE)

    done = cli("account", "erase", ALICE, "--grounds", "request 2026-117", "--yes")
    assert "3 records lost their details" in done
    assert "13800138000" not in done

    shown = subprocess.run(
        [*cli.argv, "account", "show", ALICE],  # type: ignore[attr-defined]
        capture_output=True, text=True, env=cli.env, check=False,  # type: ignore[attr-defined]
    )  # fmt: skip
    assert shown.returncode == 1
    assert "no account for this citizen" in shown.stderr
    assert "13800138000" not in shown.stdout + shown.stderr
    assert "ledger sound" in cli("ledger", "verify")
