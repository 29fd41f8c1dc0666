"""`puhui ledger`: the double-entry ledger as a whole. `reverse` undoes a posting the only way
the append-only ledger allows, by a mirror entry; `verify` re-checks every invariant and names
each broken one in words, with examples, exiting 1; `seal` links the commits written since into
the hash chain, `checkpoint` signs its head (and appends it to the auditor's file),
`public-key` prints the keys that verify the checkpoints (docs/ledger.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from puhui.entrypoints.cli.common import (
    OPERATOR,
    Db,
    Key,
    KeyFile,
    application,
    err,
    out,
    print_outcome,
)
from puhui.service import admin, ledger, wallet

ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)


@ledger_app.command("reverse")
def ledger_reverse(
    entry: Annotated[int, typer.Argument(help="Id of the entry to reverse.")],
    key: Key,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Reverse a credit (with its points), a redemption or a gift by its mirror entry."""
    with application(db, key_file) as a:
        outcome = wallet.reverse(a, entry, key, OPERATOR, reason)
    print_outcome(outcome)


Checkpoints = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="The auditor's file of checkpoints (JSON lines) to check against the ledger.",
        exists=True,
        dir_okay=False,
    ),
]


@ledger_app.command("verify")
def ledger_verify(db: Db = None, key_file: KeyFile = None, checkpoints: Checkpoints = None) -> None:
    """Re-check every ledger invariant; exit 1 if any is broken. Never seals."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        lines = None if checkpoints is None else checkpoints.read_text().splitlines()
        violations = ledger.verify(a, lines)
        totals = ledger.totals(a)
        unsealed = ledger.unsealed(a)
    out.print(
        f"{totals.transfers} transfers, {totals.accounts} accounts, {totals.issued_g} g issued"
    )
    out.print(f"{unsealed} commits not sealed yet (`puhui ledger seal` links them)")
    checks = len(ledger.CHECKS) + (0 if lines is None else len(ledger.FILE_CHECKS))
    if not violations:
        out.print(f"ledger sound: {checks} checks passed")
        return
    for v in violations:
        what = ledger.describe(v.check)
        examples = escape(", ".join(v.examples))  # stored values, not markup
        err.print(f"[red]{v.check}[/red]: {v.count} — {escape(what)}; e.g. {examples}")
    raise typer.Exit(1)


@ledger_app.command("seal")
def ledger_seal(db: Db = None, key_file: KeyFile = None) -> None:
    """Link the commits written since the last seal into the ledger's hash chain."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        sealed = ledger.seal(a)
        position, head = a.chain().head()
    out.print(f"{sealed} commits sealed; chain at position {position}: {head}")


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="The auditor's file (kept outside the database): one JSON line added."
        ),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Seal, then sign the chain's head with the checkpoints key and store the checkpoint."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        signed = ledger.checkpoint(a)
    line = signed.json_line()
    if out_file is not None:
        with out_file.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    out.print(line, markup=False, highlight=False, soft_wrap=True)


@ledger_app.command("public-key")
def ledger_public_key(
    pem: Annotated[bool, typer.Option("--pem", help="PEM instead of hex.")] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Print the Ed25519 public key of each version of the checkpoints key, for auditors."""
    with application(db, key_file) as a:
        keys = ledger.public_keys(a)
    for version, public in keys.items():
        if pem:
            out.print(f"# version {version}", markup=False, highlight=False, soft_wrap=True)
            out.print(
                ledger.public_key_pem(public).rstrip(),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            out.print(f"{version} {public.hex()}", markup=False, highlight=False, soft_wrap=True)
