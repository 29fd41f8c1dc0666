"""`puhui keys`: the keys by purpose (`adapters.keystore`): which versions exist, and rotation
of every purpose but the subject key."""

from __future__ import annotations

import typer
from rich.table import Table

from puhui.adapters.keystore import PURPOSES
from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin

keys_app = typer.Typer(help="Keys by purpose, and their rotation.", no_args_is_help=True)


@keys_app.command("list")
def keys_list(db: Db = None, key_file: KeyFile = None) -> None:
    """Each purpose's key: the version that signs now, and the versions kept."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        table = Table("purpose", "signs with", "versions", "what it keys")
        table.add_row("pseudonyms", str(a.settings.key_file), "-", "citizens' pseudonyms")
        for purpose, what in PURPOSES.items():
            versions = sorted(a.keys(purpose))
            table.add_row(purpose, f"v{versions[-1]}", ", ".join(map(str, versions)), what)
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(purpose: str, db: Db = None, key_file: KeyFile = None) -> None:
    """Write the next version of a purpose's key; it signs from now on.

    Citizen tokens and consent codes of older versions are refused at once; certificates,
    checkpoints and platform credentials made with an older version still verify (reissue a
    platform's credentials with `puhui platform rotate-key` to retire its old secret)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        version = a.keyring.rotate(purpose)
    out.print(f"{purpose}: version {version} signs from now on (restart running servers)")
