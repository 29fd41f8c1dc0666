"""What citizens earn and spend besides grams: `puhui programme` defines how credits earn
points, `puhui reward` keeps the rewards catalogue (and a coupon's pool of codes), `puhui jobs`
awards and expires points, and `puhui certificate` verifies and renders the certificates that
retirements and trees leave."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin, certificates, retirement_certificates, review, wallet

programme_app = typer.Typer(help="Points programmes.", no_args_is_help=True)
reward_app = typer.Typer(help="The rewards catalogue.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs.", no_args_is_help=True)
certificate_app = typer.Typer(help="Retirement and tree certificates.", no_args_is_help=True)


@programme_app.command("add")
def programme_add(
    code: str,
    points_per_kg: Annotated[
        str, typer.Option(help="Points per kg CO2e credited (up to six decimals).")
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    expiry_days: Annotated[int | None, typer.Option(help="Points expire after.")] = None,
    platform: Annotated[
        str | None, typer.Option(help="Run by this platform: only its records earn points.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Credits from this time on earn points (default: now).")
    ] = None,
    certifies: Annotated[
        bool,
        typer.Option(
            help="Its terms let the exchange certify its members' credits into carbon units, "
            "paid in its points (docs/market.md)."
        ),
    ] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Define how credits earn points (`puhui jobs run` awards them)."""
    with application(db, key_file) as a:
        p = wallet.add_programme(
            a,
            code,
            name or code,
            _decimal(points_per_kg),
            expiry_days,
            platform,
            starts_at=_moment(since),
            certifies=certifies,
        )
    out.print(f"programme {p.code}: {p.points_per_kg} points per kg from {p.starts_at:%Y-%m-%d}")


@programme_app.command("list")
def programme_list(db: Db = None, key_file: KeyFile = None) -> None:
    """Every points programme."""
    with application(db, key_file) as a:
        programmes = wallet.list_programmes(a)
    table = Table("code", "name", "platform", "points per kg", "expiry days", "since", "certifies")
    for p in programmes:
        table.add_row(
            p.code,
            p.name,
            p.platform or "(exchange)",
            str(p.points_per_kg),
            str(p.expiry_days or "never"),
            p.starts_at.isoformat(timespec="seconds"),
            "yes" if p.certifies else "",
        )
    out.print(table)


@reward_app.command("add")
def reward_add(
    code: str,
    kind: Annotated[str, typer.Option(help="coupon, tree or donation.")],
    issuer: Annotated[str, typer.Option(help="Merchant, platform or project owner.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    price_g: Annotated[int | None, typer.Option(help="Price in grams CO2e.")] = None,
    price_points: Annotated[int | None, typer.Option(help="Price in points.")] = None,
    programme: Annotated[str | None, typer.Option(help="Whose points pay for it.")] = None,
    stock: Annotated[int | None, typer.Option(help="Trees or donations available.")] = None,
    limit: Annotated[int | None, typer.Option(help="Redemptions per citizen.")] = None,
    project: Annotated[str | None, typer.Option(help="Planting or donation project.")] = None,
    valid_from: Annotated[str | None, typer.Option(help="RFC 3339 time with offset.")] = None,
    valid_to: Annotated[str | None, typer.Option(help="RFC 3339 time with offset.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Put a reward in the catalogue (a coupon's stock is the codes uploaded for it)."""
    with application(db, key_file) as a:
        r = wallet.add_reward(
            a,
            code,
            name or code,
            kind,
            issuer,
            price_g=price_g,
            price_points=price_points,
            programme=programme,
            stock=stock,
            per_citizen_limit=limit,
            valid_from=_moment(valid_from),
            valid_to=_moment(valid_to),
            project=project,
        )
    out.print(f"reward {r.code}: {r.kind} for {r.price} {r.unit}")


@reward_app.command("codes")
def reward_codes(
    code: str,
    file: Annotated[Path, typer.Argument(help="Text file, one coupon code a line.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Add coupon codes to a coupon's pool (each handed out once)."""
    with application(db, key_file) as a:
        lines = file.read_text(encoding="utf-8").splitlines()
        added = wallet.add_codes(a, code, [line for line in lines if line.strip()])
        r = wallet.get_reward(a, code)
    out.print(f"{added} codes added; {r.remaining} of {r.stock} left")


@reward_app.command("list")
def reward_list(db: Db = None, key_file: KeyFile = None) -> None:
    """The catalogue."""
    with application(db, key_file) as a:
        rewards = wallet.list_rewards(a)
    table = Table("code", "kind", "issuer", "price", "left", "per citizen", "window")
    for r in rewards:
        table.add_row(
            r.code,
            r.kind,
            r.issuer,
            f"{r.price} {r.unit}" + (f" ({r.programme})" if r.programme else ""),
            "unlimited" if r.remaining is None else f"{r.remaining}/{r.stock}",
            str(r.per_citizen_limit or "-"),
            f"{r.valid_from or ''} – {r.valid_to or ''}",
        )
    out.print(table)


@jobs_app.command("run")
def jobs_run(db: Db = None, key_file: KeyFile = None) -> None:
    """End the held records whose corroboration window is over (as their evidence policies
    say), award points for new credits and expire points past their validity (idempotent)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        ended = review.expire_held(a)
        report = wallet.run_jobs(a)
    out.print(
        f"ended {len(ended)} held records whose corroboration window was over; "
        f"awarded {report.awarded_points} points for {report.awarded_credits} credits; "
        f"expired {report.expired_points} points in {report.expired_accounts} accounts"
    )


@certificate_app.command("show")
def certificate_show(
    certificate: Annotated[
        str, typer.Argument(help="Certificate id: PH-… (a citizen's), CR-… (a company's units)")
    ],
    html: Annotated[Path | None, typer.Option(help="Also write it as an HTML page.")] = None,
    pdf: Annotated[Path | None, typer.Option(help="Also write it as a PDF file.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Verify a certificate and show (or write) it."""
    if certificate.strip().startswith("CR-"):
        _units_certificate(certificate, html, pdf, db, key_file)
        return
    with application(db, key_file) as a:
        found = wallet.verify_certificate(a, certificate)
        if html is not None:
            html.write_text(certificates.html(found), encoding="utf-8")
        if pdf is not None:
            pdf.write_bytes(certificates.pdf(found))
    out.print(
        f"{found.certificate}: {found.kind} certificate issued {found.issued_at:%Y-%m-%d %H:%M} UTC"
    )
    out.print(json.dumps(found.result, ensure_ascii=False, sort_keys=True, indent=2))


def _units_certificate(
    certificate: str, html: Path | None, pdf: Path | None, db: str | None, key_file: Path | None
) -> None:
    """A company's retirement of certified units (docs/market.md), verified."""
    with application(db, key_file) as a:
        found = retirement_certificates.find(a, certificate)
        if html is not None:
            html.write_text(retirement_certificates.html(found), encoding="utf-8")
        if pdf is not None:
            pdf.write_bytes(retirement_certificates.pdf(found))
    r = found.retirement
    out.print(
        f"{r.certificate}: retirement of {r.units} certified units by {r.company} "
        f"({r.company_name}) on {found.retired_at:%Y-%m-%d %H:%M} (UTC+8), verified",
        markup=False,
    )
    out.print(f"beneficiary: {r.beneficiary}; purpose: {r.purpose}", markup=False)
    for serial in r.serials:
        out.print(f"  {serial}", markup=False)


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise typer.BadParameter(f"not a number: {value!r}") from None


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an RFC 3339 time: {value!r}") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"give the offset, e.g. {value}+08:00")
    return moment.astimezone(UTC)
