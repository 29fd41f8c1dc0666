"""Who may call the exchange: `puhui platform` registers member platforms, issues and rotates
their API credentials and lists what each has submitted; `puhui staff` issues and revokes the
API tokens of the exchange's operators and regulators."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin, credentials, oversight
from puhui.service import consent as consents

platform_app = typer.Typer(help="Member platforms.", no_args_is_help=True)
staff_app = typer.Typer(
    help="API tokens of the exchange's operators and regulators.", no_args_is_help=True
)


@platform_app.command("add")
def platform_add(
    code: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(help="Where its OAuth authorizations may send the citizen back (repeat)."),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Register a member platform and issue its API credentials (shown once)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        for uri in redirect_uri or []:
            consents.check_redirect_uri(uri)
        info = admin.add_platform(a, code, name)
        issued = credentials.issue(a, info.code)
        for uri in redirect_uri or []:
            consents.add_redirect_uri(a, info.code, uri)
    out.print(f"platform {info.code} registered ({info.name})")
    for uri in redirect_uri or []:
        out.print(f"redirect URI: {uri}")
    _print_credentials(issued)


@platform_app.command("rotate-key")
def platform_rotate_key(code: str, db: Db = None, key_file: KeyFile = None) -> None:
    """Issue new API credentials for a platform; its previous key stops working at once."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        issued = credentials.issue(a, code)
    _print_credentials(issued)


def _print_credentials(issued: credentials.Credentials) -> None:
    out.print(f"API key id: {issued.key_id}")
    out.print(f"API secret: {issued.secret}")
    out.print("The secret is shown only now: hand it to the platform over a safe channel.")


@platform_app.command("list")
def platform_list(
    codes: Annotated[
        bool, typer.Option("--codes", help="Print only the codes, one a line.")
    ] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """List member platforms with their records by status and the grams credited."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        platforms = admin.list_platforms(a)
    if codes:
        for p in platforms:
            print(p.code)
        return
    table = Table("code", "name", "credited", "duplicate", "rejected", "credited g")
    for col in table.columns[2:]:
        col.justify = "right"
    for p in platforms:
        table.add_row(
            p.code,
            p.name,
            f"{p.credited:,}",
            f"{p.duplicate:,}",
            f"{p.rejected:,}",
            f"{p.credited_g:,}",
        )
    out.print(table)


@staff_app.command("add")
def staff_add(
    name: Annotated[str, typer.Argument(help="Who holds the token (a person or a system).")],
    role: Annotated[oversight.Role, typer.Option(help="What the token may read.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Issue an API token to an operator or a regulator (shown once)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        issued = oversight.issue_staff_token(a, name, role)
    out.print(f"{issued.role} token for {issued.name}: {issued.token}")
    out.print("The token is shown only now; send it as `Authorization: Bearer <token>`.")


@staff_app.command("revoke")
def staff_revoke(name: str, db: Db = None, key_file: KeyFile = None) -> None:
    """Revoke every token of a holder."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        n = oversight.revoke_staff_tokens(a, name)
    out.print(f"{n} token(s) of {name} revoked")
