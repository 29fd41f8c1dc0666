"""Consent on the command line: where a member platform's authorizations may send the citizen
back (`puhui platform redirect-uri`), a citizen's grants (`puhui account grants`), and the
operator's revocation of one on the citizen's verified request (`puhui account
revoke-grant`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import typer
from rich.table import Table

from puhui.domain import china_time, consent
from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin, queries
from puhui.service import consent as consents


def platform_redirect_uri(
    code: Annotated[str, typer.Argument(help="The platform.")],
    uri: Annotated[
        str | None,
        typer.Argument(help="https://…, or http:// on 127.0.0.1 or localhost; none: list them."),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Register a redirect URI of a platform's OAuth authorizations, or list them."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        if uri is not None:
            added = consents.add_redirect_uri(a, code, uri)
            out.print(f"{code}: {uri} " + ("registered" if added else "was registered already"))
            return
        for known in consents.redirect_uris(a, code):
            print(known)


def account_grants(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """A citizen's grants to member platforms, newest first."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = consents.grants(a, queries.pseudonym_of(a, subject))
        now = a.clock()
    table = Table("grant", "platform", "scopes", "granted", "expires", "state")
    for g in found:
        table.add_row(
            g.id, g.platform, consent.scope_text(g.scopes), _china(g.granted_at),
            _china(g.expires_at), g.state(now).value,
        )  # fmt: skip
    out.print(table)


def account_revoke_grant(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    grant_id: Annotated[str, typer.Argument(help="The grant (`puhui account grants`).")],
    reason: Annotated[
        str, typer.Option(help="The citizen's verified request this answers (kept with it).")
    ],
    operator: Annotated[str, typer.Option(help="Who revokes it.")] = "cli",
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Revoke a citizen's grant on their verified request: the platform's next call is
    refused."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        done = consents.revoke_for_operator(a, subject, grant_id, operator, reason)
    revoked = done.revoked_at or done.granted_at
    out.print(f"grant {done.id} of {done.platform} revoked at {_china(revoked)}")


def _china(moment: datetime) -> str:
    return moment.astimezone(timezone(china_time.OFFSET)).strftime("%Y-%m-%d %H:%M")
