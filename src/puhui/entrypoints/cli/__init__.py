"""`puhui`: the operator's command line. Each command parses, calls one use case, renders.
This package's root owns the `puhui` application, its `init` command and the console entry
point, and puts every other command in it from the module of its group, in the order
`puhui --help` lists them; what the commands share is in `common`."""

from __future__ import annotations

import typer

from puhui.entrypoints.cli import (
    accounts,
    consent,
    federation,
    intake,
    keys,
    ledger,
    market,
    methodologies,
    platforms,
    review,
    rewards,
    server,
)
from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin

__all__ = ["app", "main"]

app = typer.Typer(
    help="puhui: clearing platform for carbon inclusion (碳普惠).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def init(db: Db = None, key_file: KeyFile = None) -> None:
    """Create or upgrade the database, and create the subject key if there is none."""
    with application(db, key_file) as a:
        report = admin.init(a)
        made = "created" if report.key_created else "kept"
        out.print(f"database at revision {report.revision}; subject key {made}: {report.key_file}")


# Help lists the commands as they are registered, the single commands before the groups.
app.command()(server.serve)
app.command()(intake.ingest)
app.command()(intake.receipts)
app.add_typer(platforms.platform_app, name="platform")
app.add_typer(platforms.staff_app, name="staff")
platforms.platform_app.command("redirect-uri")(consent.platform_redirect_uri)
app.add_typer(accounts.account_app, name="account")
accounts.account_app.command("grants")(consent.account_grants)
accounts.account_app.command("revoke-grant")(consent.account_revoke_grant)
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(review.review_app, name="review")
app.add_typer(federation.federation_app, name="federation")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(methodologies.methodology_app, name="methodology")
app.add_typer(rewards.programme_app, name="programme")
app.add_typer(rewards.reward_app, name="reward")
app.add_typer(rewards.jobs_app, name="jobs")
app.add_typer(rewards.certificate_app, name="certificate")
app.add_typer(market.company_app, name="company")
app.add_typer(market.market_app, name="market")
app.add_typer(market.proof_app, name="proof")
app.add_typer(market.registry_app, name="registry")


def main() -> None:
    """Console entry point."""
    app()
