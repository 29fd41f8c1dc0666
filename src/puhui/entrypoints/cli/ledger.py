"""`puhui ledger`: the double-entry ledger as a whole. `reverse` undoes a posting the only way
the append-only ledger allows, by a mirror entry; `verify` re-checks every invariant and names
each broken one in words, with examples, exiting 1."""

from __future__ import annotations

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


@ledger_app.command("verify")
def ledger_verify(db: Db = None, key_file: KeyFile = None) -> None:
    """Re-check every ledger invariant; exit 1 if any is broken."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        violations = ledger.verify(a)
        totals = ledger.totals(a)
    out.print(
        f"{totals.transfers} transfers, {totals.accounts} accounts, {totals.issued_g} g issued"
    )
    if not violations:
        out.print(f"ledger sound: {len(ledger.CHECKS)} checks passed")
        return
    for v in violations:
        what = ledger.CHECKS[v.check]
        examples = escape(", ".join(v.examples))  # stored values, not markup
        err.print(f"[red]{v.check}[/red]: {v.count} — {escape(what)}; e.g. {examples}")
    raise typer.Exit(1)
