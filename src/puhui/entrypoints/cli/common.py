"""What every `puhui` command shares: the consoles it prints to, the options that find the
database and the subject key, the application it works in (a refusal of the mechanism becomes
one line on stderr and exit 1), and how the answer of a wallet operation is printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import PuhuiError
from puhui.service import wallet

# What puhui prints is data (ids, codes, reasons): no `:name:` of it becomes an emoji.
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

Db = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: PUHUI_DATABASE_URL, else sqlite:///puhui.db)."
    ),
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file", help="Subject key file (default: PUHUI_KEY_FILE, else beside the database)."
    ),
]
Key = Annotated[
    str,
    typer.Option("--key", help="Idempotency key: the same key again returns the first answer."),
]
OPERATOR = "operator:cli"


@contextmanager
def application(db: str | None, key_file: Path | None) -> Iterator[App]:
    instance = bootstrap(Settings.load(db, key_file))
    try:
        yield instance
    except PuhuiError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        instance.close()


def print_outcome(outcome: wallet.Outcome) -> None:
    note = " (already done: the first answer)" if outcome.replayed else ""
    out.print(f"{outcome.kind} {outcome.operation}{note}")
    # A result names what people typed (a reason, a beneficiary): text, never markup.
    out.print(
        json.dumps(outcome.result, ensure_ascii=False, sort_keys=True, indent=2), markup=False
    )
