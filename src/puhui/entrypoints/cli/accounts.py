"""`puhui account`: a citizen's personal carbon account, found by mobile or ID number (which
is pseudonymised, never stored): its balance, points and history, and the operations done on
it for the citizen (redeem a reward, retire grams against a footprint, give to another
citizen), each under an idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Column, Table

from puhui.domain import china_time, footprints
from puhui.entrypoints.cli.common import (
    OPERATOR,
    Db,
    Key,
    KeyFile,
    application,
    out,
    print_outcome,
)
from puhui.service import erasure, queries, wallet

account_app = typer.Typer(help="Personal carbon accounts.", no_args_is_help=True)

# Columns a terminal needs for the history with its record ids and methodologies.
WIDE_HISTORY = 118


@account_app.command("show")
def account_show(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    limit: Annotated[int, typer.Option(help="History lines to show.")] = 20,
    wide: Annotated[
        bool | None,
        typer.Option(
            "--wide/--narrow",
            help="Show each record id and methodology (default: when the terminal has room).",
        ),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Show a citizen's balance and history (the identifier is pseudonymised, never stored):
    when each behaviour happened and when it was booked, in China time."""
    with application(db, key_file) as a:
        view = queries.account(a, subject, limit)
        held = wallet.holdings(a, view.pseudonym)
    out.print(f"account citizen:{view.pseudonym[:16]}…  balance {view.balance_g:,} g CO2e")
    if held.retired_g:
        out.print(f"retired against own footprint: {held.retired_g:,} g CO2e")
    for programme, points in held.points.items():
        out.print(f"points ({programme}): {points:,}")
    wide = out.width >= WIDE_HISTORY if wide is None else wide
    columns = [
        Column("entry", justify="right"),
        Column("happened"),
        Column("booked"),
        Column("kind"),
        Column("grams", justify="right"),
        Column("scene"),
        Column("platform"),
    ]
    if wide:
        columns += [Column("record"), Column("methodology")]
    for column in columns:
        column.overflow = "fold"  # a narrow terminal wraps a value, never cuts it
    table = Table(
        *columns,
        title="history, newest first (China time, UTC+8)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for line in view.history:
        cells = [
            str(line.entry_id),
            "" if line.happened is None else _china(line.happened, "%Y-%m-%d %H:%M"),
            _china(line.at, "%Y-%m-%d"),
            line.kind,
            f"{line.amount_g:+,d}",
            line.scene,
            line.platform,
        ]
        methodology = line.methodology
        if line.adjustment is not None:
            methodology = f"{', '.join(line.adjustment.methodology_before)} → {methodology}"
        table.add_row(*cells, *([line.record_id, methodology] if wide else []))
    out.print(table)
    if not wide and view.history:
        out.print("record ids and methodologies: --wide (`puhui methodology explain` for each)")
    for line in view.history:
        if line.adjustment is not None:
            _print_adjustment(line.entry_id, line.amount_g, line.adjustment)


def _print_adjustment(entry: int, amount_g: int, adjusted: queries.Adjustment) -> None:
    """The credits a `restated` movement adjusts, each with how to see both calculations."""
    before = ", ".join(adjusted.methodology_before)
    short = ""
    if amount_g != adjusted.delta_g:
        short = f"; {amount_g - adjusted.delta_g:,} g not held (shortfall)"
    out.print(
        f"entry {entry} restated: {before} → {adjusted.methodology} (restatement "
        f"{adjusted.restatement}), {len(adjusted.credits)} credit(s), "
        f"{adjusted.delta_g:+,} g{short}"
    )
    for c in adjusted.credits:
        happened = "" if c.happened_at is None else f", {_china(c.happened_at, '%Y-%m-%d %H:%M')}"
        out.print(
            f"  {c.platform} {c.record_id} ({c.scene}{happened}): {c.grams_before:,} g under "
            f"{c.methodology_before} → {c.grams:,} g under {c.methodology}; "
            f"both: puhui methodology explain {c.record_id} --platform {c.platform}",
            soft_wrap=True,
        )


def _china(moment: datetime, form: str) -> str:
    """A moment as people in China read it."""
    return (moment.astimezone(UTC) + china_time.OFFSET).strftime(form)


@account_app.command("redeem")
def account_redeem(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    reward: Annotated[str, typer.Argument(help="Reward code.")],
    key: Key,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Redeem a reward for a citizen, paid from their grams or points."""
    with application(db, key_file) as a:
        outcome = wallet.redeem(a, queries.pseudonym_of(a, subject), reward, key, OPERATOR)
    print_outcome(outcome)


@account_app.command("retire")
def account_retire(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    key: Key,
    grams: Annotated[
        int | None, typer.Option(help="Grams to retire (default: the footprint's grams).")
    ] = None,
    footprint: Annotated[
        str | None, typer.Option(help=f"Footprint offset: {', '.join(footprints.KINDS)}.")
    ] = None,
    amount: Annotated[
        str | None, typer.Option(help="Of the footprint: km, or kWh for electricity.")
    ] = None,
    region: Annotated[str, typer.Option(help="GB/T 2260 code, for electricity.")] = "CN",
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Retire grams against a citizen's own footprint, for good, with a certificate."""
    with application(db, key_file) as a:
        declared = None
        if footprint is not None:
            declared = footprints.compute(a.catalogue, footprint, Decimal(amount or "0"), region)
            for line in declared.explanation():
                out.print(line)
        if grams is None:
            if declared is None:
                raise typer.BadParameter("give --grams or a --footprint")
            grams = declared.grams
        outcome = wallet.retire(
            a,
            queries.pseudonym_of(a, subject),
            grams,
            key,
            OPERATOR,
            footprint=declared.as_dict() if declared else None,
        )
    print_outcome(outcome)


@account_app.command("give")
def account_give(
    subject: Annotated[str, typer.Argument(help="The giver's mobile or ID number.")],
    to: Annotated[str, typer.Argument(help="The receiver's mobile or ID number.")],
    amount: Annotated[int, typer.Argument(help="Grams, or points with --programme.")],
    key: Key,
    programme: Annotated[str | None, typer.Option(help="Give this programme's points.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Give grams or points from one citizen to another."""
    with application(db, key_file) as a:
        outcome = wallet.transfer(
            a,
            queries.pseudonym_of(a, subject),
            queries.pseudonym_of(a, to),
            amount,
            key,
            OPERATOR,
            programme=programme,
        )
    print_outcome(outcome)


@account_app.command("operations")
def account_operations(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    limit: Annotated[int, typer.Option(help="Operations to show.")] = 20,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """A citizen's operations (redemptions, retirements, gifts, reversals), newest first."""
    with application(db, key_file) as a:
        done = wallet.operations(a, queries.pseudonym_of(a, subject), limit)
    table = Table("operation", "at (UTC)", "kind", "by", "result")
    for o in done:
        table.add_row(
            str(o.operation),
            o.at.isoformat(timespec="seconds"),
            o.kind,
            o.actor,
            _summary(o.kind, o.result),
        )
    out.print(table)


@account_app.command("erase")
def account_erase(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    grounds: Annotated[
        str, typer.Option(help="Why, e.g. the reference of the verified request (no identifier).")
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking.")] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Erase a citizen on a verified request: no number leads to the account any more, the
    behaviour details of their records are deleted, the grams stay on an anonymous account
    (docs/privacy.md)."""
    if not yes:
        typer.confirm("Erase this citizen? This cannot be undone", abort=True)
    with application(db, key_file) as a:
        done = erasure.erase_subject(a, subject, "operator", grounds)
    out.print(
        f"erasure {done.erasure}: {done.records} records lost their details; the account has "
        f"no owner any more"
    )
    if done.scrubbed is False:
        out.print(
            "the write-ahead log is held by another process: earlier versions of the erased "
            "pages leave it at its next full checkpoint, when the server stops at the latest "
            "(docs/privacy.md)"
        )


def _summary(kind: str, r: dict[str, Any]) -> str:
    """One line of what an operation did."""
    if kind == "redeem":
        got = r.get("coupon_code") or (f"tree #{r['tree_number']}" if "tree_number" in r else "")
        return (
            f"{r['reward']} ({r['kind']}{': ' + got if got else ''}) for {r['price']} {r['unit']}"
        )
    if kind == "retire":
        offset = r.get("footprint")
        what = f" offsetting {offset['kind']} {offset['amount']} {offset['unit']}" if offset else ""
        return f"{r['retired_g']} g retired{what}; certificate {r['certificate']}"
    if kind == "transfer":
        return f"gave {r['amount']} {r['unit']}" + (
            f" ({r['programme']})" if r["programme"] else ""
        )
    return f"reversed entry {r['reversed']}: {r['reason']}"
