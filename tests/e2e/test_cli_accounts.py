"""An operator runs a points programme and a rewards catalogue from the command line, and acts
on a citizen's account, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from tests.builders import event, write_jsonl

ALICE, BOB = "+86 138 0013 8000", "139-0013-9000"


def test_an_operator_runs_programmes_rewards_and_accounts(cli: Any, tmp_path: Path) -> None:
    cli("platform", "add", "aihuishou")
    records = [event(f"e{i}", platform="aihuishou", subject="13800138000", quantity="30",
                     start=f"2026-10-{i + 1:02d}T10:00:00+08:00") for i in range(5)]  # fmt: skip
    cli("ingest", "--platform", "aihuishou", str(write_jsonl(tmp_path / "a.jsonl", records)))
    cli(
        "programme", "add", "green", "--points-per-kg", "10", "--expiry-days", "365",
        "--since", "2026-01-01T00:00:00+08:00",
    )  # fmt: skip
    assert re.search(r"awarded \d+ points for 5 credits", cli("jobs", "run"))
    assert "awarded 0 points for 0 credits" in cli("jobs", "run")

    cli("reward", "add", "saxaul", "--kind", "tree", "--issuer", "SEE", "--price-g", "17900",
        "--stock", "10", "--project", "阿拉善梭梭林")  # fmt: skip
    cli("reward", "add", "metro", "--kind", "coupon", "--issuer", "subway", "--price-points",
        "50", "--programme", "green")  # fmt: skip
    (tmp_path / "codes.txt").write_text("M-1\nM-2\n\n")
    assert "2 codes added; 2 of 2 left" in cli(
        "reward", "codes", "metro", str(tmp_path / "codes.txt")
    )
    assert "saxaul" in cli("reward", "list")

    tree = cli("account", "redeem", ALICE, "saxaul", "--key", "k1")
    assert '"tree_number": 1' in tree
    assert "(already done: the first answer)" in cli(
        "account", "redeem", ALICE, "saxaul", "--key", "k1"
    )
    assert '"coupon_code": "M-1"' in cli("account", "redeem", ALICE, "metro", "--key", "k2")
    retired = cli(
        "account", "retire", ALICE, "--footprint", "electricity", "--amount", "10",
        "--region", "440300", "--key", "k3",
    )  # fmt: skip
    assert "grid_ef/440000/" in retired  # the explanation, with the factor found for Guangdong
    certificate = re.search(r"PH-\d{8}-[0-9A-F]{10}", retired)
    assert certificate
    cli("account", "give", ALICE, BOB, "1000", "--key", "k4")

    show = cli("account", "show", ALICE)
    assert "retired against own footprint" in show
    assert "points (green):" in show
    assert "balance 1,000 g" in cli("account", "show", BOB)
    ops = cli("account", "operations", ALICE)
    assert "saxaul (tree: tree #1) for 17900 g" in ops
    assert "gave 1000 g" in ops

    html, pdf = tmp_path / "c.html", tmp_path / "c.pdf"
    shown = cli("certificate", "show", certificate.group(0), "--html", str(html), "--pdf", str(pdf))
    assert "retirement certificate" in shown
    assert certificate.group(0) in html.read_text()
    assert pdf.read_bytes().startswith(b"%PDF-")

    # Refusals are clear errors with a non-zero exit; nothing changes.
    refused = subprocess.run(
        [*cli.argv, "account", "redeem", BOB, "saxaul", "--key", "k5"],  # type: ignore[attr-defined]
        capture_output=True, text=True, env=cli.env, check=False,  # type: ignore[attr-defined]
    )  # fmt: skip
    assert refused.returncode == 1
    assert "saxaul costs 17900 g; the account holds 1000 g" in refused.stderr
    assert "ledger sound" in cli("ledger", "verify")


def test_ledger_verify_names_each_broken_invariant_and_exits_1(
    cli: Any, database_url: str, tmp_path: Path
) -> None:
    """A balance changed behind the ledger's back: `ledger verify` says which invariants no
    longer hold, in words, with an example, and exits 1."""
    from sqlalchemy import text

    from puhui.adapters.sql.engine import make_engine

    cli("platform", "add", "aihuishou")
    record = event("e1", platform="aihuishou", subject="13800138000", quantity="30")
    cli("ingest", "--platform", "aihuishou", str(write_jsonl(tmp_path / "a.jsonl", [record])))
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("update balances set balance_g = balance_g + 7 where balance_g > 0"))
    engine.dispose()
    done = subprocess.run(
        [*cli.argv, "ledger", "verify"],  # type: ignore[attr-defined]
        capture_output=True, text=True, env=cli.env, check=False,  # type: ignore[attr-defined]
    )  # fmt: skip
    assert done.returncode == 1
    out = " ".join((done.stdout + done.stderr).split())
    assert "balance_mismatch: 1 — every account's balance is what its transfers brought in" in out
    assert "ledger_total: 1" in out
    assert "e.g. g:7" in out


def test_ledger_verify_prints_stored_values_as_they_are(cli: Any, monkeypatch: Any) -> None:
    """An example of a broken invariant is data: `:key:` stays `:key:`, `[bold]` stays text."""
    from typer.testing import CliRunner

    from puhui.entrypoints import cli as commands
    from puhui.service import ledger

    broken = ledger.Violation("balance_mismatch", 1, ("issuance:key:cn-common@1:7", "[bold]x"))
    monkeypatch.setattr(ledger, "verify", lambda _app, _checkpoints=None: [broken])
    done = CliRunner().invoke(commands.app, ["ledger", "verify"], env=cli.env)
    assert done.exit_code == 1
    assert "e.g. issuance:key:cn-common@1:7, [bold]x" in " ".join(done.output.split())
